"""Masking throughput for every built-in masker, and its cost relative to a ViT-B MAE training step.

    python benchmarks/maskers.py [--batch 256] [--step-batch 8] [--device cpu] [--json benchmarks/results/maskers.json]

Prints masks/s at batch 256 for N = 196 (14 x 14, an image at 224 with 16 px patches) and N = 1568 (8 x 14 x 14, a
16-frame video at 224 with 2 x 16 x 16 tubelets), then times one full MAE ViT-B/16 pretraining step (forward,
backward, AdamW; 224 x 224, mask 0.75, norm-pix) in the same process and prints each masker's share of it at the
step's batch size. The issue's bar: masking under 2% of a training step.
"""

import argparse
import math
import platform
import statistics
import time
from pathlib import Path

import torch
from steps import write_results

import anymae
from anymae import GridLayout, TokenBatch

MASKERS = {
    "RandomMasker": lambda: anymae.RandomMasker(mask_ratio=0.75),
    "BlockMasker": lambda: anymae.BlockMasker(),
    "LargePatchMasker": lambda: anymae.LargePatchMasker(scale=2),
    "TubeMasker": lambda: anymae.TubeMasker(),
    "SpectrogramMasker": lambda: anymae.SpectrogramMasker(mode="time_frequency"),
    "FilteredNoiseMasker": lambda: anymae.FilteredNoiseMasker(color="green"),
    "DualMasker": lambda: anymae.DualMasker(masker=anymae.TubeMasker(), decoder_ratio=0.5),
    "NearestBlockMasker": lambda: anymae.NearestBlockMasker(),
}
GRIDS = {"image 14x14": (14, 14), "video 8x14x14": (8, 14, 14)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_masker(masker: anymae.Masker, shape: tuple[int, ...], batch: int, device: torch.device, repeats: int) -> float:
    """Median seconds per call."""
    tokens = TokenBatch(torch.zeros(batch, math.prod(shape), 1, device=device), GridLayout(shape))
    generator = torch.Generator(device=device).manual_seed(0)
    masker(tokens, generator=generator)  # warm-up (and ColorMAE's bank)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        masker(tokens, generator=generator)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def vit_b_step(batch: int, device: torch.device, steps: int) -> float:
    """Median seconds of one MAE ViT-B/16 pretraining step (forward, backward, AdamW)."""
    from anymae_image import ImagePatchTokenizer

    torch.manual_seed(0)
    model = anymae.MaskedAutoencoder(
        tokenizer=ImagePatchTokenizer(image_size=224, patch_size=16, in_chans=3),
        masker=anymae.RandomMasker(mask_ratio=0.75),
        encoder=anymae.ViTEncoder(),
        decoder=anymae.MAEDecoder(),
        target=anymae.PatchTarget(normalize="patch"),
    ).to(device)
    optimizer = anymae.MAEAdamW(model.parameters())
    batch_data = {"image": torch.randn(batch, 3, 224, 224, device=device)}
    times = []
    for i in range(steps + 1):
        sync(device)
        start = time.perf_counter()
        loss = model(batch_data).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--step-batch", type=int, default=8, help="batch of the ViT-B step (CPU: 8 takes ~2.5 s)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/maskers.json"))
    options = parser.parse_args()
    device = torch.device(options.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, {platform.processor() or ''}")

    rows = []
    print(f"\nmasks per second, batch {options.batch}")
    print(f"{'masker':<22}" + "".join(f"{name:>22}" for name in GRIDS))
    for name, make in MASKERS.items():
        cells = []
        for grid_name, shape in GRIDS.items():
            masker = make()
            if name == "SpectrogramMasker" and len(shape) != 2:
                cells.append("n/a")
                continue
            seconds = time_masker(masker, shape, options.batch, device, options.repeats)
            rows.append(
                {
                    "masker": name,
                    "grid": grid_name,
                    "batch": options.batch,
                    "seconds": seconds,
                    "masks_per_second": options.batch / seconds,
                }
            )
            cells.append(f"{options.batch / seconds:,.0f}")
        print(f"{name:<22}" + "".join(f"{c:>22}" for c in cells))

    step = vit_b_step(options.step_batch, device, options.steps)
    print(f"\nMAE ViT-B/16 training step, batch {options.step_batch}, fp32: {step:.3f} s (median of {options.steps})")
    print(f"{'masker':<22}{'ms per step-batch':>20}{'share of the step':>20}")
    shares = []
    for name, make in MASKERS.items():
        seconds = time_masker(make(), (14, 14), options.step_batch, device, options.repeats)
        share = seconds / step
        shares.append({"masker": name, "seconds": seconds, "share_of_step": share})
        print(f"{name:<22}{seconds * 1e3:>20.2f}{share:>19.3%}" + ("" if share < 0.02 else "  OVER 2%"))
    write_results(
        options.json,
        device,
        throughput=rows,
        vit_b_step_seconds=step,
        step_batch=options.step_batch,
        step_share=shares,
    )
    print(f"\nresults: {options.json}")


if __name__ == "__main__":
    main()
