"""Run as a script: a Ray driver that joins the cluster at ADDRESS and trains the smoke preset on 2 workers with
the given storage (S3 settings from the AWS_* environment). test_train_job.py kills it mid-run to stop the run."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_fixtures import smoke_config

from trm.distributed.train_job import run_ray_training


def main() -> None:
    address, data_root, storage, name, *overrides = sys.argv[1:]
    config = smoke_config(Path(data_root), *overrides)
    run_ray_training(config, address=address, workers=2, storage=storage, name=name)


if __name__ == "__main__":
    main()
