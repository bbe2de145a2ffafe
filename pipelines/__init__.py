"""Prefect flows that turn the parts into scheduled, reproducible retrains (the only package importing prefect).

One module per flow, each a thin chain of small typed tasks over trm and DVC: ``prepare_data`` (DVC pull/repro/
push of the dataset's stage), ``train`` (a Ray Train job, then the export), ``tune`` (a Ray Tune search, its best
trial exported), ``evaluate`` (the test split), ``publish`` (the artifact store) and ``retrain``, which chains them
and leaves Prefect artifacts. Deployments are declared in ``prefect.yaml``; ``python -m pipelines.retrain`` runs
the chain without a server.
"""
