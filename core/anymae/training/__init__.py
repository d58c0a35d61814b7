"""Training: the LightningModule that composes the parts (``module.py``) and builds them (``build.py``), MAE's
optimiser and schedule, checkpoints, and the figure callbacks' base."""
