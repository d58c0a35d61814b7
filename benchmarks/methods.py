"""The methods of examples/image on the digits: each one's training step time beside plain MAE's (one process, steps
interleaved), and (``--study``) each one's few-label k-NN and linear-probe accuracy beside plain MAE's at the same
pretraining budget (the examples' 30 epochs), over several pretraining seeds.

    python benchmarks/methods.py                 # step times (part of make bench), a few seconds
    python benchmarks/methods.py --study         # make methods: 7 methods x 3 seeds pretrained, about 30 minutes

The study pretrains each method's example config with ``seed_everything`` and the masking seed set to each seed
(MR-MAE's teacher is the tiny digits MAE pretrained once with seed 100), then scores its encoder with the examples'
k-NN and probe configs at 5 labels per class (the labelled subset drawn with the same seed), beside the random-init
encoder. It writes ``benchmarks/results/methods.csv`` and prints a markdown table of mean ± std over the seeds.
"""

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
METHODS = {  # name -> pretraining config
    "MAE": "examples/image/mae_tiny_digits.yaml",
    "CrossMAE": "examples/image/crossmae_digits.yaml",
    "SimMIM": "examples/image/simmim_digits.yaml",
    "MR-MAE": "examples/image/mrmae_digits.yaml",
    "AdaMAE": "examples/image/adamae_digits.yaml",
    "HPM": "examples/image/hpm_digits.yaml",
    "AttMask": "examples/image/attmask_digits.yaml",
}
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@contextmanager
def working_folder(path: Path):
    cwd = os.getcwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(cwd)


def fit(config: str, root: Path, seed: int, *extra: str) -> Path:
    """``anymae fit`` of ``config`` in the current folder; returns the last checkpoint."""
    from anymae.cli.fit import AnymaeCLI

    args = ["fit", "--config", str(ROOT / config), "--seed_everything", str(seed), "--model.seed", str(seed)]
    args += ["--trainer.default_root_dir", str(root), "--trainer.callbacks", "[]", *QUIET, *extra]
    cli = AnymaeCLI(args=args)
    return Path(cli.trainer.checkpoint_callback.last_model_path).resolve()


def teacher(folder: Path, *extra: str) -> None:
    """The tiny digits MAE where mrmae_digits.yaml looks for its teacher (relative to ``folder``)."""
    if not (folder / "runs/teacher/lightning_logs/version_0/checkpoints/last.ckpt").is_file():
        with working_folder(folder):
            fit(METHODS["MAE"], Path("runs/teacher"), 100, *extra)


def score(protocol: str, checkpoint: Path, seed: int, random_init: bool) -> float:
    from anymae.cli.evaluate import run_protocol

    config = ROOT / f"examples/image/{protocol}_digits.yaml"
    args = ["--config", str(config), "--model.encoder.checkpoint", str(checkpoint)]
    args += ["--model.encoder.random_init", str(random_init).lower(), "--model.encoder.seed", str(seed)]
    args += ["--data.labels_per_class", "5", "--data.seed", str(seed), "--seed_everything", str(seed)]
    args += ["--trainer.logger", "false", "--trainer.enable_checkpointing", "false", *QUIET]
    return float(run_protocol(protocol, args)["value"])


def study(seeds: list[int], out: Path, work: Path | None) -> None:
    work = work or Path(tempfile.mkdtemp(prefix="anymae-methods-"))
    teacher(work)
    rows = []
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        for name, config in METHODS.items():
            start = time.perf_counter()
            with working_folder(work):
                checkpoint = fit(config, Path(f"runs/{name}/seed{seed}"), seed)
            minutes = (time.perf_counter() - start) / 60
            inits = [("pretrained", False)] + ([("random", True)] if name == "MAE" else [])
            for init, random_init in inits:
                row = {"method": name if init == "pretrained" else "random init", "seed": seed}
                row.update({p: score(p, checkpoint, seed, random_init) for p in ("knn", "probe")})
                row["pretrain_min"] = round(minutes, 2) if init == "pretrained" else ""
                rows.append(row)
                print(f"seed {seed} {row['method']}: k-NN {row['knn']:.3f}, probe {row['probe']:.3f}", flush=True)
            with open(out, "w", newline="") as f:  # rewritten after each method: a partial study is kept
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    print(study_table(rows))


def study_table(rows: list[dict]) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0:.3f}"

    lines = ["| method | k-NN, 5 labels/class | probe, 5 labels/class | seeds |", "|---|---|---|---|"]
    for name in [*METHODS, "random init"]:
        mine = [r for r in rows if r["method"] == name]
        if mine:
            knn, probe = [float(r["knn"]) for r in mine], [float(r["probe"]) for r in mine]
            lines.append(f"| {name} | {cell(knn)} | {cell(probe)} | {len(mine)} |")
    return "\n".join(lines)


def speed(steps: int = 6, warmup: int = 2, batch: int = 64) -> list[dict]:
    """Training step time (forward, backward, AdamW) of each method's digits model on one batch, steps interleaved
    across the methods, relative to plain MAE."""
    import anymae
    from anymae.cli.fit import AnymaeCLI

    work = Path(tempfile.mkdtemp(prefix="anymae-methods-speed-"))
    teacher(work, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "0")
    images = torch.rand(batch, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    models, optimizers = {}, {}
    with working_folder(work):
        for name, config in METHODS.items():
            torch.manual_seed(0)
            cli = AnymaeCLI(args=["--config", str(ROOT / config), "--trainer.logger", "false"], run=False)
            models[name] = cli.model.train()
            optimizers[name] = anymae.MAEAdamW(models[name].parameters(), lr=1e-3)
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    for i in range(warmup + steps):
        for name, model in models.items():
            generator = torch.Generator().manual_seed(i)
            start = time.perf_counter()
            loss = model({"image": images}, generator=generator).loss
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["MAE"])
    print(f"\nmethods: one training step on the digits (batch {batch}, 32 x 32, the examples' models), vs MAE")
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:9s} {median * 1e3:7.1f} ms  {median / base:5.2f}x MAE")
        rows.append({"case": "methods", "method": name, "median_s": median, "vs_mae": median / base})
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", action="store_true", help="pretrain and score every method (long)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/methods.csv")
    parser.add_argument("--work", type=Path, help="where the study's runs go (default: a new temporary folder)")
    options = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    if options.study:
        study(options.seeds, options.out, options.work)
    else:
        speed()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
