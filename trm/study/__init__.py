"""Ablation studies: a search space with a ``study`` block (trm/presets/spaces/ablations.yaml) trained as one Tune
run, every trial tested once on its val-selected checkpoint, and a report that sets each variant's mean over seeds
beside the paper's number (docs/fidelity.md).

- ``trials``: which trial is which variant and seed, and where its checkpoint and metrics log are.
- ``measure``: export a trial's selected checkpoint and measure it on the test split.
- ``summary``: mean and spread over seeds, each row's verdict against the baseline, the paper's ordering.
- ``time_to_accuracy``: a depth curriculum against the fixed-depth baseline at equal steps and equal wall time.
- ``report``: the markdown and the figure.
"""
