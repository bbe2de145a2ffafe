"""Multi-node on one machine: a head node and a second node (ray.cluster_utils.Cluster, 1 CPU each, own temp dir);
a 2-worker run joins by address and its workers land on different nodes."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_fixtures import smoke_config

from trm.distributed.train_job import run_ray_training
from trm.train.checkpoint import read_checkpoint


def test_two_workers_are_placed_across_two_nodes(smoke_data_root, tmp_path, monkeypatch):
    import ray
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="trm-ray-", dir="/tmp")
    # Cluster records its address in $RAY_TMPDIR/ray/ray_current_cluster: keep that inside our own folder too.
    monkeypatch.setenv("RAY_TMPDIR", temp_dir)
    (Path(temp_dir) / "ray").mkdir()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": temp_dir})
    try:
        second = cluster.add_node(num_cpus=1, temp_dir=temp_dir)
        cluster.wait_for_nodes()
        node_ids = {cluster.head_node.node_id, second.node_id}
        assert len(node_ids) == 2

        steps = 4
        config = smoke_config(smoke_data_root, f"train.max_steps={steps}", f"train.eval_interval={steps}")
        info = tmp_path / "workers"
        result = run_ray_training(
            config,
            address=cluster.address,
            workers=2,
            storage=tmp_path / "store",
            name="multinode",
            worker_info_dir=info,
        )
        assert not ray.is_initialized(), "a run that connected by address must disconnect afterwards"

        placed = {json.loads((info / f"rank{r}.json").read_text())["node_id"] for r in range(2)}
        assert placed == node_ids, f"workers on {placed}, nodes {node_ids}"
        assert result.steps == steps and result.metrics["world_size"] == 2
        _, meta = read_checkpoint(Path(result.latest_checkpoint))
        assert meta["step"] == steps and meta["world_size"] == 2
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
