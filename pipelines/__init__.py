"""Prefect flows that turn the parts into scheduled, reproducible retrains.

``pipelines`` is the only package that imports prefect. Each module holds one flow and its small tasks; the work
itself (DVC builds, Ray training, evaluation, the store) is done by ``trm`` and DVC, so the flows stay thin:

    prepare_data  -> dvc (pull) / repro / (push) of the dataset's stage; data path + DVC hash from dvc.lock
    train         -> trm.distributed.run_ray_training (local Ray on demand or a cluster address), then export
    tune          -> trm.distributed tune search; the best trial's checkpoint, exported
    evaluate      -> trm.evaluate on the test split (ARC pass@K when the dataset is ARC)
    publish       -> trm.store ModelStore.publish (retries with backoff while the store is unreachable)
    retrain       -> all of the above, with Prefect artifacts (metrics table, training curve, model link)

Deployments are declared in ``prefect.yaml``; ``scripts/quickstart.sh`` runs ``retrain`` without a server.
"""

from pipelines.project import apply_local_defaults

apply_local_defaults()
