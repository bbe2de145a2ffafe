"""prefect.yaml refers only to things that exist: the flow entrypoint, its parameters, presets, DVC stages; every
schedule is inactive; runs work in the checkout that deployed (build step output -> pull step)."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {"smoke", "sudoku-extreme", "maze-hard", "arc-agi-1"}  # the retrain deployments
REPRODUCE = "reproduce"
STUDY = "ablations"


def load() -> dict:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


def test_every_deployment_targets_the_retrain_flow_with_valid_parameters() -> None:
    from pipelines.retrain import retrain
    from trm.config import load_config, preset_names

    declared = load()
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    dvc_params = yaml.safe_load((REPO / "params.yaml").read_text())
    accepted = set(inspect.signature(retrain.fn).parameters)
    assert {d["name"] for d in declared["deployments"]} == EXPECTED | {REPRODUCE, STUDY}
    for deployment in [d for d in declared["deployments"] if d["name"] in EXPECTED]:
        where = f"deployment {deployment['name']}"
        path, _, function = deployment["entrypoint"].partition(":")
        assert (REPO / path).is_file() and function == "retrain", where
        assert deployment["flow_name"] == retrain.name, where
        params = deployment["parameters"]
        assert set(params) <= accepted, f"{where}: unknown parameters {set(params) - accepted}"
        assert params["preset"] in preset_names(), where
        assert params["dataset"] in stages, f"{where}: {params['dataset']} is not a DVC stage"
        config = load_config(params["preset"], [*params["overrides"], f"data.name={params['dataset']}"])
        assert config.data.name == params["dataset"], where
        assert params["dataset"] in dvc_params, f"{where}: params.yaml has no section for the data DVC builds"
        assert deployment["work_pool"]["name"] == "trm-local", where
        assert deployment["schedules"] and all(s["active"] is False and s["cron"] for s in deployment["schedules"])


def test_runs_work_in_the_checkout_that_deployed() -> None:
    declared = load()
    (build,) = declared["build"]
    step = build["prefect.deployments.steps.run_shell_script"]
    assert step["script"].strip() == "pwd"
    (pull,) = declared["pull"]
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == f"{{{{ {step['id']}.stdout }}}}"


def test_the_reproduce_deployment_targets_the_reproduce_flow() -> None:
    from pipelines.reproduce import reproduce

    (deployment,) = [d for d in load()["deployments"] if d["name"] == REPRODUCE]
    path, _, function = deployment["entrypoint"].partition(":")
    assert (REPO / path).is_file() and function == "reproduce" and deployment["flow_name"] == reproduce.name
    assert set(deployment["parameters"]) <= set(inspect.signature(reproduce.fn).parameters)
    assert deployment["work_pool"]["name"] == "trm-local"


def test_the_ablations_deployment_runs_a_study_space_on_a_preset() -> None:
    from pipelines.study import study
    from trm.config import load_config
    from trm.distributed.space import check_variants, load_space

    (deployment,) = [d for d in load()["deployments"] if d["name"] == STUDY]
    path, _, function = deployment["entrypoint"].partition(":")
    assert (REPO / path).is_file() and function == "study" and deployment["flow_name"] == study.name
    params = deployment["parameters"]
    assert set(params) <= set(inspect.signature(study.fn).parameters)
    space = load_space(params["space"])
    assert space.study is not None and space.search.scheduler == "fifo"
    check_variants(load_config(params["preset"], params["overrides"]), space)  # every row trains on this preset
    assert deployment["work_pool"]["name"] == "trm-local"
