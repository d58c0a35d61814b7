"""A pretraining schedule derived from the data set's size, for a config that gives none.

A recipe written in epochs trains a set 5x smaller 5x fewer steps, and the recipe study (docs/recipes.md) found
small sets need many more passes than large ones (GunPoint's 50 series: 1,500 epochs). So when ``anymae fit`` is
given none of ``trainer.max_epochs``, ``max_steps`` and ``max_time`` it trains

    ``max(MIN_STEPS, EPOCHS x steps per epoch)`` optimisation steps

(steps per epoch: the training samples over the effective batch, ranks and gradient accumulation included): 200
epochs for a set large enough (MAE's 800-epoch schedule is 4x longer; its ablation shows most of the gain by 200),
and at least 3,000 steps for a small one, so that a model sees enough updates whatever the set's size: on the photos
tuning set (320 images) 3,000 steps gained 2.4 points more in the probe than 2,000 and as much as 5,000, and
GunPoint's recipe is 4,500 steps (docs/recipes.md). The
warm-up is then given in steps (``lr_schedule.warmup_steps``) or as a share of the schedule
(``lr_schedule.warmup_fraction``, 5% in MAE: 40 of 800 epochs); ``warmup_epochs`` still counts epochs.
"""

import math

import lightning.pytorch as pl

from ..config import ConfigError

__all__ = ["EPOCHS", "MIN_STEPS", "derive_max_steps", "derived_steps"]

EPOCHS = 200
MIN_STEPS = 3000


def derived_steps(num_samples: int, batch_size: int, world_size: int = 1, accumulate: int = 1) -> int:
    """The schedule's length in optimisation steps for ``num_samples`` training samples (see the module docstring)."""
    per_epoch = math.ceil(num_samples / max(batch_size * world_size, 1)) / max(accumulate, 1)
    return max(MIN_STEPS, math.ceil(EPOCHS * per_epoch))


def derive_max_steps(trainer: pl.Trainer, datamodule: pl.LightningDataModule) -> tuple[int, int]:
    """Set ``trainer``'s schedule to :func:`derived_steps` of ``datamodule``'s training split; return the steps and
    the number of training samples."""
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    batch = getattr(loader, "batch_size", None) or 1
    try:
        samples = len(loader.dataset)
    except TypeError:  # an iterable data set (streaming shards): no length to derive a schedule from
        raise ConfigError(
            f"{type(datamodule).__name__} has no length to derive a schedule from: give trainer.max_steps"
        ) from None
    steps = derived_steps(samples, batch, trainer.world_size, trainer.accumulate_grad_batches)
    trainer.fit_loop.epoch_loop.max_steps = steps
    trainer.fit_loop.max_epochs = -1  # until the steps are done
    return steps, samples
