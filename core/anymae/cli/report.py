"""``anymae report``: one self-contained HTML page per run: configuration, loss curves, the figures of each period
side by side, a few masks, and the evaluation rows of the run's checkpoints, pretrained vs random init.

    anymae report latest                                  # the newest anymae fit run under ./lightning_logs
    anymae report lightning_logs/version_3 --results more-results.csv --out version_3.html

The page needs no server and no internet: every image is a ``data:`` URI and there is no external CSS, script or
font. Figures narrower than 256 px (a 32-px digit grid) are enlarged by an integer factor with nearest-neighbour
resampling, so their pixels stay sharp. A section with nothing to show (no ``metrics.csv`` because the logger was
off, no figures, no checkpoint) says so in one line.
"""

import csv
import html
import io
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import yaml

from .parser import command_parser
from .report_html import (
    MAIN_LOSSES,
    MIME,
    MIN_WIDTH,
    STYLE,
    enlarge,
    eval_table,
    img,
    loss_plot,
    note,
    png_size,
)

__all__ = ["enlarge", "find_figures", "loss_columns", "resolve_run", "run", "run_rows", "write_report"]

_EPOCH = re.compile(r"epoch=(\d+)")


def resolve_run(value: str) -> Path:
    """``"latest"`` -> the version folder of the newest ``anymae fit`` checkpoint under ``./lightning_logs``; a
    checkpoint file -> its version folder; any other value is the version folder itself."""
    if value == "latest":
        from ..model.pretrained import resolve_checkpoint

        return resolve_checkpoint("latest").parent.parent
    path = Path(value)
    if path.is_file() and path.suffix == ".ckpt":
        return path.parent.parent
    if not path.is_dir():
        raise FileNotFoundError(f"report: run folder {value} does not exist (give a lightning_logs/version_* folder)")
    if not (path / "checkpoints").is_dir() and any(path.glob("version_*/checkpoints")):
        raise FileNotFoundError(f"report: {value} holds runs; give one of its version_* folders, or latest")
    return path


def run_checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints, ``last.ckpt`` first, then the newest."""
    found = sorted(run_dir.glob("checkpoints/*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    return sorted(found, key=lambda p: p.name != "last.ckpt")


def _period(path: Path) -> tuple[int, int, str]:
    """``epoch=0009`` before ``epoch=0010`` before anything else before ``final``."""
    match = _EPOCH.search(path.stem)
    if match:
        return 0, int(match.group(1)), path.name
    return (2 if path.stem == "final" else 1), 0, path.name


def find_figures(run_dir: Path) -> dict[str, list[Path]]:
    """Every PNG and GIF under ``run_dir`` (checkpoints aside), grouped by folder (GIFs apart: a figure may write
    both), each group in epoch order. Generic on purpose: each plugin's figure writes its own folder."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in run_dir.rglob("*"):
        suffix = path.suffix.lower()
        relative = path.relative_to(run_dir)
        if suffix not in MIME or "checkpoints" in relative.parts or not path.is_file():
            continue
        key = relative.parent.as_posix() if relative.parent != Path(".") else "run folder"
        groups[key + (" (animated)" if suffix == ".gif" else "")].append(path)
    return {key: sorted(paths, key=_period) for key, paths in sorted(groups.items())}


def loss_columns(fields: Sequence[str]) -> list[str]:
    """``train/loss``, ``val/loss``, then the named loss parts (``train/loss_pixels``, ...) in name order."""
    parts = sorted(f for f in fields if f.startswith(("train/loss_", "val/loss_")))
    return [f for f in MAIN_LOSSES if f in fields] + parts


def read_losses(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``{column: [(step, value), ...]}`` of the loss columns of a CSVLogger's ``metrics.csv``."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        columns = loss_columns(reader.fieldnames or [])
    series: dict[str, list[tuple[int, float]]] = {c: [] for c in columns}
    for index, row in enumerate(rows):
        step = int(float(row["step"])) if row.get("step") else index
        for column in columns:
            if row.get(column):
                series[column].append((step, float(row[column])))
    return series


def run_rows(results: Sequence[Path], checkpoints: Sequence[Path], run_dir: Path) -> list[dict[str, str]]:
    """The rows of the results CSVs whose checkpoint is one of the run's (also one it has since deleted). A relative
    checkpoint path is read from the working folder, or from the CSV's folder (where the evaluation ran)."""
    mine = {p.resolve() for p in checkpoints}
    folder = (run_dir / "checkpoints").resolve()
    rows = []
    for path in results:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if not row.get("checkpoint"):
                    continue
                checkpoint = Path(row["checkpoint"])
                bases = [Path()] if checkpoint.is_absolute() else [Path.cwd(), path.parent]
                resolved = {(base / checkpoint).resolve() for base in bases}
                if resolved & mine or any(r.parent == folder for r in resolved):
                    rows.append({**row, "checkpoint": checkpoint.name})
    return rows


def _configuration(run_dir: Path, checkpoints: list[Path]) -> list[str]:
    out = ["<h2>Configuration</h2>"]
    if checkpoints:
        names = ", ".join(str(p) for p in checkpoints)
        out.append(f"<p>checkpoint: <code>{html.escape(names)}</code></p>")
    else:
        out.append(note(f"no checkpoint in {run_dir / 'checkpoints'}"))
    for name in ("config.yaml", "hparams.yaml"):  # LightningCLI's config; hparams.yaml when the run had no CLI
        path = run_dir / name
        if path.is_file():
            text = path.read_text()
            summary = _components(text)
            if summary:
                out.append("<p>" + html.escape(summary) + "</p>")
            lines = text.count("\n")
            out.append(f"<details><summary>{name} ({lines} lines)</summary><pre>{html.escape(text)}</pre></details>")
            return out
    out.append(note(f"no config.yaml or hparams.yaml in {run_dir}"))
    return out


def _components(text: str) -> str:
    """``tokenizer: ImagePatchTokenizer, masker: RandomMasker, ...`` from a config's ``model`` section."""
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return ""
    model = config.get("model", config) if isinstance(config, dict) else {}
    model = model.get("init_args", model) if isinstance(model, dict) else {}
    parts = []
    for key in ("tokenizer", "masker", "encoder", "decoder", "target"):
        value = model.get(key) if isinstance(model, dict) else None
        if isinstance(value, dict) and "class_path" in value:
            parts.append(f"{key}: {value['class_path'].rsplit('.', 1)[-1]}")
    data = config.get("data") if isinstance(config, dict) else None
    if isinstance(data, dict) and "class_path" in data:
        parts.append(f"data: {data['class_path'].rsplit('.', 1)[-1]}")
    return ", ".join(parts)


def _losses(run_dir: Path) -> list[str]:
    out = ["<h2>Loss curves</h2>"]
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return [*out, note(f"no metrics.csv in {run_dir} (the run's logger was off or not a CSVLogger)")]
    series = read_losses(path)
    if not any(series.values()):
        return [*out, note(f"{path} has no train/loss or val/loss values")]
    try:
        picture = loss_plot(series)
        out.append(img(picture, "image/png", png_size(picture), "loss curves"))
    except ImportError:  # matplotlib is the plugins' dependency, not the core's
        out.append(note("matplotlib is not installed (pip install matplotlib draws the curves); the values:"))
    out += ["<table>", "<tr><th>column</th><th>points</th><th>first</th><th>last</th><th>min</th></tr>"]
    for column, points in series.items():
        if points:
            values = [v for _, v in points]
            numbers = (str(len(values)), *(f"{x:.4f}" for x in (values[0], values[-1], min(values))))
            cells = "".join(f'<td class="num">{n}</td>' for n in numbers)
            out.append(f"<tr><td>{html.escape(column)}</td>{cells}</tr>")
    return [*out, "</table>"]


def _figures(run_dir: Path) -> list[str]:
    out = ["<h2>Figures</h2>"]
    groups = find_figures(run_dir)
    if not groups:
        return [*out, note(f"no PNG or GIF figures under {run_dir} (add a figure callback, e.g. ReconstructionGrid)")]
    for name, paths in groups.items():
        out += [f"<h3>{html.escape(name)}</h3>", '<div class="row">']
        for path in paths:
            data, mime, size, enlarged = enlarge(path)
            caption = path.name + (f" (enlarged from {png_size(path.read_bytes())[0]} px)" if enlarged else "")
            figure = img(data, mime, size, f"{name}/{path.name}", pixelated=enlarged)
            out.append(f"<figure>{figure}<figcaption>{html.escape(caption)}</figcaption></figure>")
        out.append("</div>")
    return out


def _masks(checkpoints: list[Path], samples: int, seed: int) -> list[str]:
    out = ["<h2>Masks</h2>"]
    if samples <= 0:
        return [*out, note("masks not drawn (--masks 0)")]
    if not checkpoints:
        return [*out, note("no checkpoint to draw the masks of")]
    import numpy as np
    from PIL import Image

    from .masks import masks_of_checkpoint, render_masks

    try:
        spec, shape, name = masks_of_checkpoint(checkpoints[0], samples, seed)
    except SystemExit as refusal:  # tokens not on a grid: masks draws grids only
        return [*out, note(f"masks not drawn: {str(refusal).removeprefix('anymae masks: ')}")]
    except Exception as error:  # e.g. the run's data moved since: the rest of the page still stands
        print(f"anymae report: warning: masks not drawn: {error}", file=sys.stderr)
        return [*out, note(f"masks not drawn: {type(error).__name__}: {error}")]
    canvas = render_masks(spec, shape).numpy()
    if len(shape) <= 2:  # one sample per row would make a tall strip: put the samples side by side instead
        gap = 4  # render_masks' default
        canvas = np.hstack(np.split(canvas[gap:], spec.mask.shape[0]))
        canvas = np.vstack([np.full((gap, canvas.shape[1]), canvas[-1, 0], dtype=canvas.dtype), canvas])
    buffer = io.BytesIO()
    Image.fromarray(canvas, mode="L").save(buffer, format="PNG")
    data, mime, size, enlarged = enlarge(buffer.getvalue(), min_width=3 * MIN_WIDTH)
    grid = "x".join(map(str, shape))
    out.append(f"<p>{html.escape(f'{name} on the {grid} token grid of the run validation data, seed {seed}')}</p>")
    out.append(img(data, mime, size, "masks", pixelated=enlarged))
    layout = "samples left to right" if len(shape) <= 2 else "one row per sample, time steps left to right"
    legend = f"{layout}; white: visible; dark: hidden, in the loss; "
    return [*out, note(legend + "light grey: hidden, not predicted (decoder masking)")]


def _evaluations(results: Sequence[Path], checkpoints: list[Path], run_dir: Path) -> list[str]:
    out = ["<h2>Evaluations</h2>"]
    if not results:
        return [*out, note("no results CSV (anymae knn/probe/finetune write anymae-results.csv)")]
    rows = run_rows(results, checkpoints, run_dir)
    read = ", ".join(str(p) for p in results)
    if not rows:
        return [*out, note(f"no row of {read} is for a checkpoint of this run")]
    out.append(f"<p>{len(rows)} rows of {html.escape(read)} for this run's checkpoints</p>")
    return [*out, eval_table(rows)]


def write_report(run_dir: Path, out: Path, results: Sequence[Path] = (), masks: int = 4, seed: int = 0) -> Path:
    """Write the page of the run in ``run_dir`` to ``out``."""
    checkpoints = run_checkpoints(run_dir)
    title = f"anymae report: {run_dir}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">written {html.escape(time.strftime("%Y-%m-%d %H:%M:%S"))}</p>',
        *_configuration(run_dir, checkpoints),
        *_losses(run_dir),
        *_figures(run_dir),
        *_masks(checkpoints, masks, seed),
        *_evaluations(results, checkpoints, run_dir),
    ]
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        *body,
        "</body></html>",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(page) + "\n", encoding="utf-8")
    return out


def run(argv: Sequence[str]) -> int:
    parser = command_parser(
        "report",
        "Write one self-contained HTML page of a run: configuration, loss curves, figures, masks and evaluation rows.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a lightning_logs/version_* folder, or latest")
    parser.add_argument(
        "--results",
        type=Path,
        nargs="*",
        default=[],
        metavar="CSV",
        help="results CSVs to read besides ./anymae-results.csv",
    )
    parser.add_argument("--out", type=Path, help="HTML path (default: RUN_DIR/report.html)")
    parser.add_argument("--masks", type=int, default=4, metavar="N", help="masks to draw (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="masking seed of the masks")
    options = parser.parse_args(argv)
    run_dir = resolve_run(options.run_dir)
    results = [Path("anymae-results.csv")] if Path("anymae-results.csv").is_file() else []
    for path in options.results:
        if not path.is_file():
            raise FileNotFoundError(f"report: results file {path} does not exist")
        if all(path.resolve() != known.resolve() for known in results):
            results.append(path)
    out = write_report(run_dir, options.out or run_dir / "report.html", results, options.masks, options.seed)
    print(f"report: {out}")
    return 0
