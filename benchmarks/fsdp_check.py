"""Device check: the ViT-B MAE of examples/image/mae_vit_base_fsdp.yaml under FSDP beside DDP, on every visible GPU.

    python benchmarks/fsdp_check.py [--steps 10] [--batch 64]

Lightning runs FSDP on GPUs only, so this is the check to run where one is lent. Random 224 x 224 images, bf16 mixed
precision, the example's model and wrap policy (each timm Block its own shard unit). For each strategy it prints the
loss of the first and last step, the median step time and the peak GPU memory, then the ratios. The first losses must
agree (same weights, same data, same masks); memory under FSDP should be lower with more than one GPU.
"""

import argparse
import statistics
import time

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy
from timm.models.vision_transformer import Block
from torch.utils.data import DataLoader, Dataset

import anymae

CONFIG = "examples/image/mae_vit_base_fsdp.yaml"


class RandomImages(Dataset):
    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": torch.randn(3, 224, 224, generator=torch.Generator().manual_seed(index))}


class Timer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self.losses: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)
        self.losses.append(float(outputs["loss"]))


def run(strategy: pl.strategies.Strategy, steps: int, batch: int) -> dict[str, float]:
    with open(CONFIG) as handle:
        model_config = yaml.safe_load(handle)["model"]
    torch.manual_seed(0)
    model = anymae.MaskedAutoencoder.from_config(model_config)
    timer = Timer()
    torch.cuda.reset_peak_memory_stats()
    trainer = pl.Trainer(
        strategy=strategy,
        accelerator="cuda",
        devices="auto",
        precision="bf16-mixed",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[timer],
    )
    loader = DataLoader(RandomImages(steps * batch * torch.cuda.device_count()), batch_size=batch, num_workers=4)
    trainer.fit(model, loader)
    return {
        "first_loss": timer.losses[0],
        "last_loss": timer.losses[-1],
        "step_s": statistics.median(timer.times[1:]),
        "peak_gb": torch.cuda.max_memory_allocated() / 2**30,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    options = parser.parse_args()
    results = {
        "ddp": run(DDPStrategy(), options.steps, options.batch),
        "fsdp": run(FSDPStrategy(auto_wrap_policy={Block}, state_dict_type="full"), options.steps, options.batch),
    }
    for name, row in results.items():
        print(f"{name:>5}: " + ", ".join(f"{key} {value:.4f}" for key, value in row.items()))
    ddp, fsdp = results["ddp"], results["fsdp"]
    print(
        f"fsdp/ddp: step time {fsdp['step_s'] / ddp['step_s']:.2f}x, "
        f"peak memory {fsdp['peak_gb'] / ddp['peak_gb']:.2f}x, "
        f"first-step loss difference {abs(fsdp['first_loss'] - ddp['first_loss']):.2e}"
    )
