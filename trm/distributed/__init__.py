"""Ray Train / Ray Tune layer (the only package that imports ray). Import the submodules directly:
``trm.distributed.train_job.run_ray_training``, ``trm.distributed.tune.run_tune``,
``trm.distributed.cluster.connect``, ``trm.distributed.storage.resolve_storage``. Nothing here imports ray at
package import time, so ``import trm.distributed`` stays cheap."""
