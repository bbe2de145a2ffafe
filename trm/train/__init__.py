"""One training process (optionally in a torch process group): loss, optimizers, EMA, schedules, the step
(``trainer.Trainer``), the loop and its hooks (``loop.train``), checkpoints and the exported model."""
