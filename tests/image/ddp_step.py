"""One optimisation step of the digits MAE under DDP on 2 CPU processes (gloo), for tests/image/test_ddp.py.

    python tests/image/ddp_step.py OUT.pt

Rank r trains on its half of the first 8 training digits, as the data kit's sampler splits an epoch (``order[r::2]``);
rank 0 writes the updated weights and both ranks' losses to OUT.pt. Lightning starts rank 1 by running this script
again.
"""

import sys
import warnings

import lightning.pytorch as pl
import torch

from anymae import TensorSamples, make_loader
from tests.image.ddp_reference import build_model, first_digits

warnings.filterwarnings("ignore")


class Losses(pl.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        module.step_loss = outputs["loss"].detach()


class EightDigits(pl.LightningDataModule):
    def train_dataloader(self):
        return make_loader(TensorSamples(first_digits()), batch_size=4, train=True, seed=0)


if __name__ == "__main__":
    out = sys.argv[1]
    model = build_model()
    trainer = pl.Trainer(
        strategy="ddp",
        devices=2,
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Losses()],
    )
    trainer.fit(model, EightDigits())
    losses = trainer.strategy.all_gather(model.step_loss)
    if trainer.is_global_zero:
        torch.save({"state": model.state_dict(), "losses": losses.cpu()}, out)
