"""One run, one process: our image MAE beside HF transformers' ViTMAEForPreTraining and a full-token control.

    python benchmarks/bench.py                 # make bench
    python benchmarks/bench.py --quick         # fewer steps, smaller cases (a smoke test)

For each case (ViT-S/16 batch 32 and ViT-B/16 batch 8, fp32 and bf16 autocast; 224 x 224, mask 0.75, norm-pix) it
times a full pretraining step (forward, backward, AdamW) of

* ``ours``: ``anymae.MaskedAutoencoder`` (asymmetric: the encoder sees the visible 25%) with ``MAEAdamW`` (torch's
  fused kernel),
* ``plain``: the same model with plain ``torch.optim.AdamW``, HF's optimiser: the lead it keeps is the model's own,
* ``bf16w`` (bf16 only): the same model trained in bf16 throughout (Lightning's ``precision: bf16-true``) with
  ``MAEAdamW(master_weights=True)``: fp32 master weights in the optimiser, no weight cast in forward and backward,
* ``hf``: ``transformers.ViTMAEForPreTraining`` at the same configuration (SDPA attention) with plain AdamW. It is
  also the stand-in for the reference MAE code (facebookresearch/mae, not on PyPI): the same computation (every patch
  embedded, every token decoded and predicted) and the same optimiser,
* ``full``: the full-token control, the library's own SimMIM-style path (``ViTEncoder(mask_token=True)``): the
  encoder sees all tokens, hidden ones replaced by a mask token (MAE's "encoder w/ [M]" ablation),

and prints median/min/max step time (the implementations' steps interleaved, so that a drift in the machine's speed
affects them alike), images/s, analytic GFLOP per step, MFU against a matmul ceiling measured in the same run, peak
memory (each implementation alone), and each one's speed-up over HF. Then the profile of our bf16 step
(``benchmarks/profile_step.py``), masks/s of every masker, the tokenizers' throughput, point-cloud FPS beside open3d's,
data-loader samples/s beside the step rate, the fixed cost of an epoch on each plugin's embedded data
(``benchmarks/epochs.py``) and the few-label probe on cached features beside the live one. The video case
(``benchmarks/video.py``, ``--only video``): our VideoMAE beside HF's ``VideoMAEForPreTraining`` at ViT-S, 16 x 224 x
224, batch 2, fp32 and bf16, and PyAV decoding in 2 workers beside that step. The audio case (``benchmarks/audio.py``,
``--only audio``): Audio-MAE's step with the local decoder beside the global one and a full-token control, and fbank
extraction beside it. Everything also goes to a JSON file.
"""

import argparse
import contextlib
import ctypes
import os
import platform
import resource
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

import anymae

sys.path.insert(0, str(Path(__file__).parent))
from maskers import GRIDS, MASKERS, time_masker
from steps import SIZES, build, inputs, mae_gflop, matmul_ceiling, step_fn, sync, write_results


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc: give freed heap back, so RSS starts from what lives
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):  # Linux: reset VmHWM, so each case reports its own peak RSS
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_case(kind: str, size: str, batch: int, bf16: bool, device: torch.device) -> float:
    """Peak memory (MB) of one training step of one implementation, alone in the process."""
    reset_peak(device)
    module, optimizer = build(kind, size, device)
    step = step_fn(kind, module, optimizer, *inputs(kind, batch, bf16, device))
    step()
    step()
    peak = peak_memory_mb(device)
    del module, optimizer, step
    return peak


def time_cases(
    kinds: list[str], size: str, batch: int, bf16: bool, device: torch.device, steps: int, warmup: int
) -> dict[str, dict]:
    """Step times of several implementations, their steps interleaved (ours, hf, full, ours, ...) so that a drift in
    the machine's speed affects them alike; then each one's peak memory, measured alone."""
    steps_of = {}
    for kind in kinds:
        module, optimizer = build(kind, size, device)
        module.train()
        steps_of[kind] = step_fn(kind, module, optimizer, *inputs(kind, batch, bf16, device))
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for i in range(warmup + steps):
        for kind in kinds:
            sync(device)
            start = time.perf_counter()
            steps_of[kind]()
            sync(device)
            if i >= warmup:
                times[kind].append(time.perf_counter() - start)
    del steps_of
    return {
        kind: {
            "median": statistics.median(t),
            "min": min(t),
            "max": max(t),
            # memory of ours and HF's (what the README reports); the other lines are about time
            "peak_mb": peak_case(kind, size, batch, bf16, device) if kind in ("ours", "hf") else float("nan"),
        }
        for kind, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 steps, 1 warm-up, ViT-S batch 4 only")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench.json"))
    parser.add_argument("--only", choices=["all", "image", "video", "audio"], default="all", help="run one case only")
    options = parser.parse_args()
    device = torch.device(options.device)
    cases = [("ViT-S/16", 32), ("ViT-B/16", 8)]
    if options.quick:
        options.steps, options.warmup, cases = 2, 1, [("ViT-S/16", 4)]
    import transformers

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {device}, "
        f"{torch.get_num_threads()} threads, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    ceiling = {"fp32": matmul_ceiling(torch.float32, device), "bf16": matmul_ceiling(torch.bfloat16, device)}
    print(f"matmul ceiling: fp32 {ceiling['fp32']:.0f} GFLOP/s, bf16 {ceiling['bf16']:.0f} GFLOP/s")

    rows, video_rows, audio_rows = [], [], []
    started = time.perf_counter()
    took: dict[str, float] = {}

    def mark(name: str) -> None:  # the seconds each part of the run took, printed at the end
        took[name] = time.perf_counter() - started - sum(took.values())

    if options.only in ("all", "video"):
        video_rows = video_case(device, ceiling, options)
        mark("video")
    if options.only in ("all", "audio"):
        audio_rows = audio_case(device, ceiling, options)
        mark("audio")
    if options.only in ("video", "audio"):
        write_results(options.json, device, video=video_rows, audio=audio_rows)
        return
    header = (
        f"{'case':<26}{'impl':<7}{'median s':>9}{'min':>7}{'max':>7}{'img/s':>8}{'GFLOP':>8}{'MFU':>7}"
        f"{'peak MB':>9}{'HF/impl':>9}"
    )
    print("\n" + header)
    # fp32 at ViT-S and the full-token control at ViT-S bf16 only: they tell the same at ViT-B, and make bench must
    # stay under 10 minutes on 2 cores
    for size, batch in cases:
        (dim, depth, _), dec = SIZES[size]
        for precision in ("fp32", "bf16") if size == cases[0][0] else ("bf16",):
            kinds = ["ours", "plain", "hf"] + (["bf16w"] if precision == "bf16" else [])
            kinds += ["full"] if precision == "bf16" and size == cases[0][0] else []
            results = time_cases(kinds, size, batch, precision == "bf16", device, options.steps, options.warmup)
            for kind, timing in results.items():
                gflop = batch * mae_gflop(dim, depth, dec, 196, 49, 768, full=kind == "full", hf=kind == "hf")
                timing.update(
                    gflop=gflop,
                    images_per_s=batch / timing["median"],
                    mfu=gflop / timing["median"] / ceiling[precision],
                    over_hf=results["hf"]["median"] / timing["median"],
                )
            for kind, r in results.items():
                print(
                    f"{f'{size} b{batch} {precision}':<26}{kind:<7}{r['median']:>9.3f}{r['min']:>7.3f}{r['max']:>7.3f}"
                    f"{r['images_per_s']:>8.1f}{r['gflop']:>8.0f}{r['mfu']:>7.1%}{r['peak_mb']:>9.0f}"
                    f"{r['over_hf']:>8.2f}x"
                )
                rows.append({"model": size, "batch": batch, "precision": precision, "impl": kind, **r})
            line = (
                f"{'':<26}over HF: ours {results['ours']['over_hf']:.2f}x (fused AdamW), "
                f"{results['plain']['over_hf']:.2f}x with HF's plain AdamW"
            )
            if precision == "bf16":
                line += f", {results['bf16w']['over_hf']:.2f}x bf16 throughout (MFU {results['bf16w']['mfu']:.0%})"
            if "full" in results:
                asym = results["full"]["median"] / results["ours"]["median"]
                flop_ratio = results["full"]["gflop"] / results["ours"]["gflop"]
                line += f"; asymmetric vs full-token {asym:.2f}x (FLOP ratio {flop_ratio:.2f}x)"
            print(line)

    mark("image steps")
    import profile_step

    profile = profile_step.profile_step("ViT-S/16", 32 if not options.quick else 4, "bf16", device, steps=2)
    print("\n" + profile_step.format_profile(profile))

    fastest = min((r for r in rows if r["impl"] == "ours"), key=lambda r: r["median"] / r["batch"])
    print(
        f"\nmasks per second at batch 256, and each masker's share of our fastest step per image "
        f"({fastest['model']} b{fastest['batch']} {fastest['precision']}, {fastest['median']:.3f} s)"
    )
    mark("profile")
    masks = []
    for name, make in MASKERS.items():
        cells = []
        for grid_name, shape in GRIDS.items():
            if name == "SpectrogramMasker" and len(shape) != 2:
                cells.append("n/a")
                continue
            rate = 256 / time_masker(make(), shape, 256, device, 5)
            masks.append({"masker": name, "grid": grid_name, "masks_per_s": rate})
            cells.append(f"{rate:,.0f}")
        share = time_masker(make(), (14, 14), fastest["batch"], device, 5) / fastest["median"]
        masks.append({"masker": name, "share_of_step": share})
        print(f"  {name:<22}" + "".join(f"{c:>16}" for c in cells) + f"{share:>10.3%}")

    mark("maskers")
    tokenizers = tokenizer_throughput(device)
    mark("tokenizers and point clouds")
    loaders = loader_throughput()
    mark("loaders")
    import epochs

    print("\nfixed cost of an epoch (its wall time minus its training steps), epochs after the first")
    epoch_rows = epochs.run(epochs=2, max_batches=2) if options.quick else epochs.run(max_batches=4)
    print(epochs.format_rows(epoch_rows))
    mark("epochs")
    probes = probe_speed(options.quick)
    mark("probe")
    import methods

    method_rows = methods.speed(steps=2 if options.quick else 6, warmup=1 if options.quick else 2)
    mark("methods")
    print_targets(rows, profile, epoch_rows, probes, tokenizers)
    write_results(
        options.json,
        device,
        ceiling=ceiling,
        steps=rows,
        maskers=masks,
        tokenizers=tokenizers,
        loaders=loaders,
        video=video_rows,
        audio=audio_rows,
        profile=profile,
        epochs=epoch_rows,
        probe=probes,
        methods=method_rows,
    )
    print(
        f"\nresults: {options.json}; took {time.perf_counter() - started:.0f} s: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in took.items())
    )


def video_case(device: torch.device, ceiling: dict[str, float], options: argparse.Namespace) -> list[dict]:
    """Our VideoMAE beside HF's VideoMAE, then the decoding pipeline beside our bf16 step (``benchmarks/video.py``)."""
    try:
        import video
    except ImportError as error:  # anymae-video not installed
        print(f"\nvideo: skipped ({error})")
        return []
    steps, warmup = (1, 1) if options.quick else (5, 2) if options.only == "video" else (2, 1)
    rows = video.run(device, ceiling, steps=steps, warmup=warmup)
    bf16 = next(r["median"] for r in rows if r["impl"] == "ours" and r["precision"] == "bf16")
    return [*rows, video.decoding(bf16)]


def audio_case(device: torch.device, ceiling: dict[str, float], options: argparse.Namespace) -> list[dict]:
    """Audio-MAE with the local decoder beside the global one and a full-token control, then fbank extraction beside
    the step (``benchmarks/audio.py``)."""
    try:
        import audio
    except ImportError as error:  # anymae-audio not installed
        print(f"\naudio: skipped ({error})")
        return []
    # alone (--only audio) as measured for the README; within make bench lighter, to keep it under 10 minutes
    steps, warmup, batch = (1, 1, 2) if options.quick else (3, 1, 8) if options.only == "audio" else (1, 1, 4)
    rows = audio.run(device, ceiling, steps=steps, warmup=warmup, batch=batch)
    local = next(r["median"] for r in rows if r.get("impl") == "local")
    return [*rows, audio.features(local, batch=batch)]


def tokenizer_rate(tokenizer, batch: dict, device: torch.device, repeats: int) -> float:
    """Samples per second through ``tokenizer`` (after one warm-up call), without autograd."""
    with torch.no_grad():
        tokenizer(batch)
        start = time.perf_counter()
        for _ in range(repeats):
            tokenizer(batch)
        sync(device)
    return repeats * len(next(iter(batch.values()))) / (time.perf_counter() - start)


def tokenizer_throughput(device: torch.device) -> list[dict]:
    """Samples/s of each installed plugin's tokenizer on its usual input."""
    from anymae_image import ImagePatchTokenizer

    print("\ntokenizer throughput")
    out = []

    def record(name: str, label: str, rate: float, unit: str) -> None:
        print(f"  {label}: {rate:,.0f} {unit}/s")
        out.append({"tokenizer": name, "samples_per_s": rate})

    images = {"image": torch.randn(256, 3, 224, 224, device=device)}
    rate = tokenizer_rate(ImagePatchTokenizer(image_size=224, patch_size=16), images, device, 5)
    record("ImagePatchTokenizer", "ImagePatchTokenizer 224x224/16", rate, "images")
    try:
        from anymae_timeseries import SeriesPatchTokenizer

        series = {"series": torch.randn(256, 6, 512, device=device)}
        for mode in ("mixed", "independent"):
            tokenizer = SeriesPatchTokenizer(channels=6, length=512, patch_len=16, mode=mode, revin=True)
            rate = tokenizer_rate(tokenizer, series, device, 5)
            record(f"SeriesPatchTokenizer/{mode}", f"SeriesPatchTokenizer 6 x 512, {mode}", rate, "series")
    except ImportError:
        pass
    try:
        from anymae_pointcloud import PointGroupTokenizer, VoxelPatchTokenizer
    except ImportError:
        return out
    import pointcloud

    clouds = {"points": torch.rand(32, 1024, 3, device=device) * 2 - 1}
    for tokenizer in (PointGroupTokenizer().to(device), VoxelPatchTokenizer()):
        name = type(tokenizer).__name__
        record(name, f"{name} (1,024 points, defaults)", tokenizer_rate(tokenizer, clouds, device, 3), "clouds")
    print("  point grouping beside open3d's FPS, batch 32:")
    out.append({"grouping": pointcloud.run(32, str(device))})
    return out


def print_targets(
    rows: list[dict], profile: dict, epoch_rows: list[dict], probes: list[dict], tokenizers: list
) -> None:
    """Issue 15's targets beside what this run measured."""
    step = {(r["model"], r["precision"], r["impl"]): r for r in rows}
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        ours, best = step[(model, "bf16", "ours")], step[(model, "bf16", "bf16w")]
        lines.append(
            (f"{model} bf16 step over HF", ">= 1.80x", f"{ours['over_hf']:.2f}x ({best['over_hf']:.2f}x bf16w)")
        )
        lines.append((f"{model} bf16 MFU", ">= 65%", f"{ours['mfu']:.0%} ({best['mfu']:.0%} bf16w)"))
        if (model, "fp32", "ours") in step:
            fp32 = step[(model, "fp32", "ours")]["over_hf"]
            lines.append((f"{model} fp32 step over HF", ">= 1.10x", f"{fp32:.2f}x"))
    share = profile["matmul_gflops"] / profile["ceiling_gflops"]
    lines.append(("matmuls of the bf16 step, of the ceiling", "-", f"{share:.0%}"))
    cached, live = probes
    lines.append(("few-label probe, live / cached", ">= 10x", f"{live['s'] / cached['s']:.1f}x"))
    worst = max(epoch_rows, key=lambda r: r["fixed_pct"])
    lines.append(("fixed cost of an epoch, worst case", "< 10%", f"{worst['fixed_pct']:.1f}% ({worst['case']})"))
    overhead = {r["case"]: 100 * (r["fixed_s"] - r["val_s"]) / r["epoch_s"] for r in epoch_rows}
    case = max(overhead, key=overhead.get)
    lines.append(("  the same without validation", "-", f"{overhead[case]:.1f}% ({case})"))
    grouping = next((t["grouping"] for t in tokenizers if "grouping" in t), [])
    for r in grouping:
        lines.append(
            (f"FPS at {r['points']:,} points over open3d", ">= 1.0x", f"{r['fps_per_s'] / r['open3d_fps_per_s']:.2f}x")
        )
    print("\nissue 15's targets, measured in this run")
    for name, target, value in lines:
        print(f"  {name:<44}{target:>10}{value:>28}")


def probe_speed(quick: bool) -> list[dict]:
    """``anymae probe`` with ``examples/image/probe_digits.yaml`` (5 labels per class) on cached features beside the
    live, augmented probe, from the checkpoint of a short pretraining: seconds of each command in this process, so
    after start-up (imports), and the accuracy of each."""
    import csv
    import tempfile

    from anymae.cli import main as anymae_main

    root = Path(__file__).resolve().parent.parent
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    out, here = [], os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            pretrain = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2" if quick else "20"]
            anymae_main(["fit", "--config", str(root / "examples/image/mae_tiny_digits.yaml"), *pretrain, *quiet])
            for cached in ("true", "false"):
                start = time.perf_counter()
                epochs = ["--trainer.max_epochs", "3"] if quick else []
                config = str(root / "examples/image/probe_digits.yaml")
                anymae_main(["probe", "--config", config, "--model.cache_features", cached, *epochs, *quiet])
                seconds = time.perf_counter() - start
                with open("anymae-results.csv") as handle:
                    accuracy = float(list(csv.DictReader(handle))[-1]["value"])
                out.append({"probe": "digits", "cache_features": cached == "true", "s": seconds, "acc": accuracy})
        finally:
            os.chdir(here)
    cached, live = out
    print(
        f"\nfew-label probe, digits, 5 labels per class: cached features {cached['s']:.2f} s "
        f"(acc {cached['acc']:.3f}), live {live['s']:.2f} s (acc {live['acc']:.3f}) -> {live['s'] / cached['s']:.1f}x"
    )
    return out


def loader_throughput() -> list[dict]:
    """Data-loader samples/s with 2 workers against the demo model's step rate on the same data."""
    import tempfile

    import numpy as np
    from PIL import Image

    from anymae_image import DigitsDataModule, ImageFolderDataModule, ImagePatchTokenizer

    print("\ndata loading (2 workers) vs training step")
    out = []

    def rate(loader, limit: int = 40) -> float:
        iterator = iter(loader)
        next(iterator)  # workers up
        count, start = 0, time.perf_counter()
        for i, batch in enumerate(iterator):
            count += len(batch["image"])
            if i + 1 >= limit:
                break
        return count / (time.perf_counter() - start)

    digits = DigitsDataModule(image_size=32, batch_size=64, num_workers=2)
    digits.setup("fit")
    demo = anymae.MaskedAutoencoder(
        tokenizer=ImagePatchTokenizer(image_size=32, patch_size=4, in_chans=1),
        masker=anymae.RandomMasker(mask_ratio=0.75),
        encoder=anymae.ViTEncoder(embed_dim=96, depth=4, num_heads=3),
        decoder=anymae.MAEDecoder(embed_dim=64, depth=2, num_heads=4),
        target=anymae.PatchTarget(),
    )
    optimizer = anymae.MAEAdamW(demo.parameters())
    batch = next(iter(digits.train_dataloader()))
    step = step_fn("ours", demo, optimizer, batch["image"], nullcontext)
    step()
    start = time.perf_counter()
    for _ in range(10):
        step()
    step_rate = 10 * 64 / (time.perf_counter() - start)
    load_rate = rate(digits.train_dataloader())
    print(
        f"  digits (embedded): loader {load_rate:,.0f} samples/s, demo step {step_rate:,.0f} samples/s "
        f"-> {load_rate / step_rate:.1f}x"
    )
    out.append({"data": "digits", "loader_per_s": load_rate, "step_per_s": step_rate})
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        for i in range(128):
            Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(f"{folder}/{i}.jpg")
        images = ImageFolderDataModule(root=folder, image_size=224, batch_size=32, num_workers=2)
        images.setup("fit")
        load_rate = rate(images.train_dataloader(), limit=3)
        print(
            f"  JPEG folder, MAE crop at 224: loader {load_rate:,.0f} samples/s "
            f"(the ViT-S/16 step above consumes about 16-35 images/s on this machine)"
        )
        out.append({"data": "jpeg-folder-224", "loader_per_s": load_rate})
    return out


if __name__ == "__main__":
    main()
