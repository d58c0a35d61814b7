"""The recipe study behind docs/recipes.md: which pretraining recipe and which read-out make pretraining pay on each
modality's embedded set, chosen on validation only.

    python benchmarks/recipes.py gunpoint               # every recipe of a set, its read-outs, k-NN and probe
    python benchmarks/recipes.py shapes --only "example (10 epochs)" "60 epochs"
    python benchmarks/recipes.py gunpoint --protocols finetune --only "1500 epochs, no RevIN"   # fine-tuning
    python benchmarks/recipes.py gunpoint --print      # the set's table from the rows recorded so far

Each recipe is the set's example pretraining config with a few overrides, pretrained once (seed 0) and kept under
``--work`` (a recipe already pretrained there is reused). Each read-out then scores the encoder, and the same shapes
at random init, with 5 labels per class over seeds 0, 1, 2 -- on a validation split carved from the *training*
split (``FewLabels(carve_validation=True)``: the training examples that were not drawn), never on the held-out
split that ``make table`` and the README report. Rows go to ``benchmarks/results/recipes.csv``; a markdown table of
means and gains is printed.
"""

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import QUIET, ROOT, working_folder

SEEDS = (0, 1, 2)
READOUTS = {  # for encoders with a class token
    "class token": ["--model.pool", "cls"],
    "mean": ["--model.pool", "mean"],
    "mean of last 2 blocks": ["--model.pool", "mean", "--model.layers", "2"],
}


def protocol_configs(folder: str, stem: str) -> dict[str, str]:
    """The k-NN, probe and fine-tuning configs of a set: ``examples/<folder>/<protocol>_<stem>.yaml``."""
    return {p: f"examples/{folder}/{p}_{stem}.yaml" for p in ("knn", "probe", "finetune")}


def example_against_twice_as_long(pretrain: str, folder: str, stem: str) -> dict:
    """A set whose pretraining example (30 epochs, fine-tuned for 30) is studied only beside twice its epochs."""
    return {
        "pretrain": pretrain,
        "protocols": protocol_configs(folder, stem),
        "recipes": {"example (30 epochs)": [], "60 epochs": ["--trainer.max_epochs", "60"]},
        "finetunes": {"fine-tune, 30 epochs": []},
        "readouts": READOUTS,
    }


RANDOM = ["--model.masker.class_path", "anymae.RandomMasker", "--model.masker.init_args.mask_ratio"]
DIGIT_LABEL = ["--data.data.init_args.label", "digit", "--model.num_outputs", "10"]
AUGMENT = ["--data.init_args.jitter", "0.05", "--data.init_args.scaling", "0.2", "--data.init_args.crop", "0.2"]
LABELS = 5
PHOTOS = ROOT / "transfer-data/photos"


def photo_folders(prefix: str) -> list[str]:
    """Overrides pointing a folder data module (its arguments under ``prefix``) at the photos tuning set."""
    return [f"{prefix}.root", str(PHOTOS / "train"), f"{prefix}.val_root", str(PHOTOS / "val")]


# set -> pretraining example, protocol configs, recipes (name -> overrides of the pretraining config) and read-outs
# (name -> overrides of the k-NN and probe configs); "data", where given, points both at the set's files
SETS: dict[str, dict] = {
    "gunpoint": {
        "pretrain": "examples/timeseries/patch_mae_ucr.yaml",
        "protocols": protocol_configs("timeseries", "ucr"),
        "recipes": {
            "example (40 epochs)": [],
            "400 epochs": ["--trainer.max_epochs", "400"],
            "400 epochs, mask 0.75": ["--trainer.max_epochs", "400", "--model.masker.init_args.mask_ratio", "0.75"],
            "400 epochs, patches of 5": [
                "--trainer.max_epochs",
                "400",
                "--model.tokenizer.init_args.patch_len",
                "5",
            ],
            "400 epochs, augmented": ["--trainer.max_epochs", "400", *AUGMENT],
            "400 epochs, no RevIN": ["--trainer.max_epochs", "400", "--model.tokenizer.init_args.revin", "false"],
            "1500 epochs, no RevIN": ["--trainer.max_epochs", "1500", "--model.tokenizer.init_args.revin", "false"],
            # the example with OSULeaf's best ratio (the osuleaf set below): does it hold on GunPoint?
            "example, mask 0.6": ["--model.masker.init_args.mask_ratio", "0.6"],
            "1500 epochs, no RevIN, augmented": [
                "--trainer.max_epochs",
                "1500",
                "--model.tokenizer.init_args.revin",
                "false",
                *AUGMENT,
            ],
            "1500 epochs, no RevIN, augmented, mask 0.6": [
                "--trainer.max_epochs",
                "1500",
                "--model.tokenizer.init_args.revin",
                "false",
                *AUGMENT,
                "--model.masker.init_args.mask_ratio",
                "0.6",
            ],
            "400 epochs, 128 wide": [
                "--trainer.max_epochs",
                "400",
                "--model.encoder.init_args.embed_dim",
                "128",
            ],
        },
        "finetunes": {
            "fine-tune, 30 epochs": [],
            "fine-tune, 100 epochs": ["--trainer.max_epochs", "100"],
        },
        "readouts": {
            **READOUTS,
            "class token, probe without BatchNorm": {"probe": ["--model.pool", "cls", "--model.batch_norm", "false"]},
        },
    },
    "digits": example_against_twice_as_long("examples/image/mae_tiny_digits.yaml", "image", "digits"),
    "sounds": example_against_twice_as_long("examples/audio/audiomae_synth_sounds.yaml", "audio", "synth_sounds"),
    # natural pictures (benchmarks/transfer_sets.py --sets photos): the textures' configs on the photos tuning set
    "photos": {
        "pretrain": "examples/transfer/mae_textures.yaml",
        "data": {  # the same folders, on the pretraining config's data module and inside FewLabels
            "pretrain": photo_folders("--data.init_args"),
            "protocols": photo_folders("--data.data.init_args"),
        },
        "protocols": protocol_configs("transfer", "textures"),
        "recipes": {
            "example (750 steps)": [],
            "no norm-pix": ["--model.target.init_args.normalize", "none"],
            "3000 steps": ["--trainer.max_steps", "3000"],
            "3000 steps, no norm-pix": ["--trainer.max_steps", "3000", "--model.target.init_args.normalize", "none"],
            "mask 0.5": ["--model.masker.init_args.mask_ratio", "0.5"],
            # what anymae fit derives for 320 images when a config gives no schedule (training/schedule.py)
            "2000 steps (the derived schedule)": ["--trainer.max_steps", "2000"],
            "5000 steps": ["--trainer.max_steps", "5000"],
        },
        "finetunes": {"fine-tune, the example's schedule": []},
        "readouts": READOUTS,
    },
    # a second series tuning set (aeon's OSULeaf: leaf outlines, 6 classes, 200 training series of 427 steps resampled
    # to 150): the ArrowHead transfer configs with only the set's name and class count changed
    "osuleaf": {
        "pretrain": "examples/transfer/patch_mae_arrowhead.yaml",
        "data": {
            "pretrain": ["--data.init_args.name", "OSULeaf"],
            "protocols": ["--data.data.init_args.name", "OSULeaf", "--model.num_outputs", "6"],
        },
        "protocols": protocol_configs("transfer", "arrowhead"),
        "recipes": {
            "example (4500 steps)": [],
            "mask 0.6": ["--model.masker.init_args.mask_ratio", "0.6"],
            "augmented": AUGMENT,
        },
        "finetunes": {"fine-tune, the example's schedule": []},
        "readouts": READOUTS,
    },
    "moving-digits": {
        "pretrain": "examples/video/videomae_moving_digits.yaml",
        "protocols": protocol_configs("video", "moving_digits"),
        # tube masking at 0.9 learns how a clip moves, not what is in it: masking that leaves appearance to infer
        "recipes": {
            "example (20 epochs)": [],
            "random masking 0.9 (MAE-ST)": [*RANDOM, "0.9"],
            "random masking 0.75": [*RANDOM, "0.75"],
            "tube masking 0.75": ["--model.masker.init_args.mask_ratio", "0.75"],
            "tube masking 0.5": ["--model.masker.init_args.mask_ratio", "0.5"],
            # a token that holds most of the 16-pixel digit: its shape, not a stroke, is what a token must carry
            "patches of 8, tube masking 0.75": [
                "--model.tokenizer.init_args.patch_size",
                "8",
                "--model.masker.init_args.mask_ratio",
                "0.75",
            ],
            # a token per frame: what each frame shows, not a two-frame average, is reconstructed
            "patches of 8, tubelets of 1, tube masking 0.75": [
                "--model.tokenizer.init_args.patch_size",
                "8",
                "--model.tokenizer.init_args.tubelet_size",
                "1",
                "--model.masker.init_args.mask_ratio",
                "0.75",
            ],
            # tubes that move with the digit (after MGMAE): a hidden part of it stays hidden as it moves
            "motion tubes 0.9": ["--model.masker.class_path", "anymae_video.MotionTubeMasker"],
            "motion tubes 0.75": [
                "--model.masker.class_path",
                "anymae_video.MotionTubeMasker",
                "--model.masker.init_args.mask_ratio",
                "0.75",
            ],
            "patches of 8, random masking 0.9": ["--model.tokenizer.init_args.patch_size", "8", *RANDOM, "0.9"],
            "random masking 0.75, 40 epochs": [*RANDOM, "0.75", "--trainer.max_epochs", "40"],
            # the photos' lesson (a longer schedule, mean pooling) tried on what is in the clip
            "random masking 0.75, 3000 steps": [*RANDOM, "0.75", "--trainer.max_steps", "3000"],
            # MAE's decoder-depth ablation: a deeper decoder leaves the encoder more abstract features (its linear
            # probe gains 8 points from 1 to 8 blocks); VideoMAE's decoder has 4 blocks, the example 2
            "decoder of 4 blocks": ["--model.decoder.init_args.depth", "4"],
            "decoder of 8 blocks, 128 wide": [
                "--model.decoder.init_args.depth",
                "8",
                "--model.decoder.init_args.embed_dim",
                "128",
            ],
            # raw pixels: a patch normalised on its own erases how bright a stroke is against the black canvas
            "no norm-pix": ["--model.target.init_args.normalize", "none"],
        },
        "finetunes": {"fine-tune, 30 epochs": [], "fine-tune by digit, 30 epochs": DIGIT_LABEL},
        "readouts": {
            "mean": ["--model.pool", "mean"],
            "max": ["--model.pool", "max"],
            "mean of last 2 blocks": ["--model.pool", "mean", "--model.layers", "2"],
            # what is in the clip: the same clips labelled by digit (10 classes)
            "mean, digit label": [*DIGIT_LABEL, "--model.pool", "mean"],
            "max, digit label": [*DIGIT_LABEL, "--model.pool", "max"],
        },
    },
    "shapes": {
        "pretrain": "examples/pointcloud/point_mae_shapes.yaml",
        "protocols": protocol_configs("pointcloud", "shapes"),
        "recipes": {
            "example (10 epochs)": [],
            "60 epochs": ["--trainer.max_epochs", "60"],
            "60 epochs, mask 0.8": ["--trainer.max_epochs", "60", "--model.masker.init_args.mask_ratio", "0.8"],
            # 1000 other generated clouds (another seed: none of them is a cloud the protocols score), 24 epochs:
            # the same number of steps as 60 epochs on the 320 training clouds
            "24 epochs on 1000 other clouds": [
                "--trainer.max_epochs",
                "24",
                "--data.init_args.per_class",
                "100",
                "--data.init_args.seed",
                "1",
            ],
            "60 epochs, positions once": [
                "--trainer.max_epochs",
                "60",
                "--model.encoder.init_args.pos_every_block",
                "false",
                "--model.decoder.init_args.pos_every_block",
                "false",
            ],
        },
        "finetunes": {
            "fine-tune, 30 epochs": [],
        },
        "readouts": {
            "mean": ["--model.pool", "mean"],
            "max": ["--model.pool", "max"],
            "mean of last 2 blocks": ["--model.pool", "mean", "--model.layers", "2"],
            "mean, probe without BatchNorm": {"probe": ["--model.pool", "mean", "--model.batch_norm", "false"]},
            "max, probe without BatchNorm": {"probe": ["--model.pool", "max", "--model.batch_norm", "false"]},
        },
    },
}


def fit(config: str, root: Path, *extra: str) -> tuple[Path, float]:
    """Pretrain ``config`` (seed 0) under ``root`` unless a checkpoint is already there: its last checkpoint and the
    minutes its pretraining took."""
    found = sorted(root.glob("lightning_logs/*/checkpoints/last.ckpt"))
    if found and (root / "minutes.txt").is_file():
        return found[-1].resolve(), float((root / "minutes.txt").read_text())
    from anymae.cli.fit import AnymaeCLI

    args = ["fit", "--config", str(ROOT / config), "--trainer.default_root_dir", str(root)]
    args += ["--trainer.callbacks", "[]", *QUIET, *extra]
    if "--trainer.max_epochs" in extra:  # a recipe given in epochs: the example's schedule in steps gives way
        args += ["--trainer.max_steps", "-1"]
    start = time.perf_counter()
    cli = AnymaeCLI(args=args)
    minutes = (time.perf_counter() - start) / 60
    (root / "minutes.txt").write_text(f"{minutes:.3f}")
    return Path(cli.trainer.checkpoint_callback.last_model_path).resolve(), minutes


def score(config: str, protocol: str, checkpoint: Path, seed: int, random_init: bool, extra: list[str]) -> float:
    from anymae.cli.evaluate import run_protocol

    args = ["--config", str(ROOT / config), "--model.encoder.checkpoint", str(checkpoint)]
    args += ["--model.encoder.random_init", str(random_init).lower(), "--model.encoder.seed", str(seed)]
    args += ["--data.labels_per_class", str(LABELS), "--data.seed", str(seed), "--seed_everything", str(seed)]
    args += ["--data.carve_validation", "true", "--trainer.logger", "false", "--trainer.enable_checkpointing", "false"]
    args += [*QUIET, *extra]
    return float(run_protocol(protocol, args)["value"])


def study(
    name: str, only: list[str] | None, protocols: list[str], work: Path, out: Path, readouts: list[str] | None = None
) -> list[dict]:
    spec = SETS[name]
    data: dict[str, list[str]] = spec.get("data", {})  # overrides pointing the configs at the set's files
    rows = []
    for recipe, overrides in spec["recipes"].items():
        if only and recipe not in only:
            continue
        folder = work / name / recipe.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        with working_folder(folder):
            checkpoint, minutes = fit(spec["pretrain"], folder / "run", *data.get("pretrain", []), *overrides)
        # fine-tuning trains the whole encoder: the frozen read-outs do not apply; its schedules are compared instead
        frozen = [p for p in protocols if p != "finetune"]
        runs = [
            (protocol, readout, extra[protocol] if isinstance(extra, dict) else extra)  # per protocol, or shared
            for readout, extra in spec["readouts"].items()
            if not readouts or readout in readouts
            for protocol in frozen
            if not isinstance(extra, dict) or protocol in extra
        ]
        if "finetune" in protocols:
            runs += [("finetune", schedule, extra) for schedule, extra in spec["finetunes"].items()]
        for protocol, readout, extra in runs:
            for seed in SEEDS:
                for random_init in (False, True):
                    extra_args = [*data.get("protocols", []), *extra]
                    value = score(spec["protocols"][protocol], protocol, checkpoint, seed, random_init, extra_args)
                    rows.append(
                        {
                            "set": name,
                            "recipe": recipe,
                            "readout": readout,
                            "protocol": protocol,
                            "init": "random" if random_init else "pretrained",
                            "seed": seed,
                            "value": f"{value:.4f}",
                            "pretrain_min": f"{minutes:.2f}",
                        }
                    )
        out.parent.mkdir(parents=True, exist_ok=True)
        new = not out.exists()
        with out.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            if new:
                writer.writeheader()
            writer.writerows(row for row in rows if row["recipe"] == recipe)
        print(table([row for row in rows if row["recipe"] == recipe]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: one line per (recipe, read-out, protocol): pretrained and random-init means and the gain."""
    groups: dict[tuple, dict[str, list[float]]] = {}
    minutes: dict[str, str] = {}
    for row in rows:
        key = (row["set"], row["recipe"], row["readout"], row["protocol"])
        groups.setdefault(key, {}).setdefault(row["init"], []).append(float(row["value"]))
        minutes[row["recipe"]] = row["pretrain_min"]
    lines = [
        "| set | recipe | pretraining min | read-out | protocol | pretrained | random init | gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, recipe, readout, protocol), values in groups.items():
        pre, rnd = statistics.mean(values["pretrained"]), statistics.mean(values["random"])
        spread = statistics.stdev(values["pretrained"]) if len(values["pretrained"]) > 1 else 0.0
        lines.append(
            f"| {name} | {recipe} | {minutes[recipe]} | {readout} | {protocol} | {pre:.3f} ± {spread:.3f} | "
            f"{rnd:.3f} | {100 * (pre - rnd):+.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", choices=sorted(SETS))
    parser.add_argument("--only", nargs="*", help="these recipes (by name) only")
    parser.add_argument(
        "--protocols",
        nargs="+",
        choices=["knn", "probe", "finetune"],
        default=["knn", "probe"],
        help="fine-tuning runs each of the set's schedules",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/anymae-recipes"), help="pretraining runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/recipes.csv")
    parser.add_argument("--readouts", nargs="*", help="these read-outs (by name) only")
    parser.add_argument("--print", action="store_true", help="print the set's table from --out; run nothing")
    args = parser.parse_args(argv)
    if args.print:
        with args.out.open() as handle:
            rows = [row for row in csv.DictReader(handle) if row["set"] == args.set]
        print(table(rows))
        return 0
    rows = study(args.set, args.only, args.protocols, args.work, args.out, args.readouts)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
