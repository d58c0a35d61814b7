"""One optimisation step of the toy series MAE under DDP on 2 CPU processes (gloo), for tests/core/test_ddp.py.

    python tests/core/ddp_step.py OUT.pt

Rank r trains on its half of 8 series, as the data kit's sampler splits an epoch (``order[r::2]``); rank 0 writes
the updated weights and both ranks' losses to OUT.pt. Lightning starts rank 1 by running this script again.
"""

import sys
import warnings
from functools import partial

import lightning.pytorch as pl
import torch

import anymae
from anymae import TensorSamples, make_loader
from tests.core.toys import quiet_trainer, series_model, sinusoids

warnings.filterwarnings("ignore")


def build_model() -> anymae.MaskedAutoencoder:
    """The toy series MAE with no warm-up (the first step has its full lr) and plain SGD, which applies the gradient
    as it is, so the comparison checks DDP's gradient (Adam's first step divides each gradient by its own magnitude,
    and turns the float noise of gradients that are zero in exact arithmetic into steps of the full lr)."""
    torch.manual_seed(0)
    return series_model(optimizer=partial(torch.optim.SGD, lr=0.5), lr_schedule=anymae.WarmupCosine(warmup_epochs=0))


def eight_series() -> dict[str, torch.Tensor]:
    return {"series": sinusoids(8, seed=3)}


class Losses(pl.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        module.step_loss = outputs["loss"].detach()


class EightSeries(pl.LightningDataModule):
    def train_dataloader(self):
        return make_loader(TensorSamples(eight_series()), batch_size=4, train=True, seed=0)


if __name__ == "__main__":
    model = build_model()
    trainer = quiet_trainer(strategy="ddp", devices=2, max_steps=1, callbacks=[Losses()])
    trainer.fit(model, EightSeries())
    losses = trainer.strategy.all_gather(model.step_loss)
    if trainer.is_global_zero:
        torch.save({"state": model.state_dict(), "losses": losses.cpu()}, sys.argv[1])
    # as anymae's CLI does (anymae.cli._leave_process_group): a gloo group left to the interpreter's exit can abort
    # the process after the work is done ("terminate called without an active exception", exit -6)
    torch.distributed.destroy_process_group()
