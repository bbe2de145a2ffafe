"""Config tree: presets load and validate, dotted overrides are typed, unknown keys fail with a clear message."""

from __future__ import annotations

import pytest

from trm.config import ConfigError, load_config, preset_names

PAPER = {
    "sudoku-extreme-mlp": {
        "L_cycles": 6,
        "mlp_t": True,
        "pos": "none",
        "lr": 1e-4,
        "emb_lr": 1e-4,
        "wd": 1.0,
        "epochs": 50000,
    },
    "sudoku-extreme-att": {
        "L_cycles": 6,
        "mlp_t": False,
        "pos": "rope",
        "lr": 1e-4,
        "emb_lr": 1e-4,
        "wd": 1.0,
        "epochs": 50000,
    },
    "maze-hard": {"L_cycles": 4, "mlp_t": False, "pos": "rope", "lr": 1e-4, "emb_lr": 1e-4, "wd": 1.0, "epochs": 50000},
    "arc-agi-1": {
        "L_cycles": 4,
        "mlp_t": False,
        "pos": "rope",
        "lr": 1e-4,
        "emb_lr": 1e-2,
        "wd": 0.1,
        "epochs": 100000,
    },
    "arc-agi-2": {
        "L_cycles": 4,
        "mlp_t": False,
        "pos": "rope",
        "lr": 1e-4,
        "emb_lr": 1e-2,
        "wd": 0.1,
        "epochs": 100000,
    },
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_presets_match_spec(name):
    want = PAPER[name]
    cfg = load_config(name)
    assert cfg.model.H_cycles == 3 and cfg.model.L_cycles == want["L_cycles"] and cfg.model.L_layers == 2
    assert cfg.model.mlp_t is want["mlp_t"] and cfg.model.pos_encodings == want["pos"]
    assert cfg.model.hidden_size == 512 and cfg.model.puzzle_emb_len == 16 and cfg.model.halt_max_steps == 16
    t = cfg.train
    assert (t.lr, t.puzzle_emb_lr, t.weight_decay, t.puzzle_emb_weight_decay) == (
        want["lr"],
        want["emb_lr"],
        want["wd"],
        want["wd"],
    )
    assert t.global_batch_size == 768 and t.lr_warmup_steps == 2000 and (t.beta1, t.beta2) == (0.9, 0.95)
    assert t.ema and t.ema_rate == 0.999 and t.epochs == want["epochs"] and t.lr_min_ratio == 1.0
    assert t.eval_interval == want["epochs"] / 10 and t.interval_unit == "epochs"


def test_every_preset_loads():
    names = preset_names()
    assert {"smoke", "sudoku-9x9-cpu", "maze-cpu"} <= set(names)
    for name in names:
        load_config(name)


def test_overrides_are_typed():
    cfg = load_config(
        "arc-agi-1",
        [
            "train.lr=3e-4",
            "model.mlp_t=true",
            "eval.modes=[fixed, adaptive]",
            "data.root=/srv/data",
            "train.max_steps=7",
        ],
    )
    assert cfg.train.lr == 3e-4 and cfg.model.mlp_t is True and cfg.eval.modes == ["fixed", "adaptive"]
    assert cfg.data.root == "/srv/data" and cfg.train.max_steps == 7


def test_unknown_key_names_the_key_and_choices():
    with pytest.raises(ConfigError, match=r"unknown key 'lrr' in train.*valid:.*'lr'"):
        load_config("smoke", ["train.lrr=1"])
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        load_config("smoke", ["nope.x=1"])


def test_bad_value_and_bad_preset():
    with pytest.raises(ConfigError, match=r"train.global_batch_size"):
        load_config("smoke", ["train.global_batch_size=-3"])
    with pytest.raises(ConfigError, match=r"model\.pos_encodings"):
        load_config("smoke", ["model.pos_encodings=sinus"])
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("no-such-preset")
    with pytest.raises(ConfigError, match="key=value"):
        load_config("smoke", ["train.lr"])
