"""``anymae report``: one self-contained HTML page per run: configuration, loss curves, the figures of each period
side by side, a few masks, and the evaluation rows of the run's checkpoints, pretrained vs random init.

    anymae report latest                                  # the newest anymae fit run under ./lightning_logs
    anymae report lightning_logs/version_3 --results more-results.csv --out version_3.html

The page needs no server and no internet: every image is a ``data:`` URI and there is no external CSS, script or
font. Figures narrower than 256 px (a 32-px digit grid) are enlarged by an integer factor with nearest-neighbour
resampling, so their pixels stay sharp. A section with nothing to show (no ``metrics.csv`` because the logger was
off, no figures, no checkpoint) says so in one line.
"""

import argparse
import base64
import csv
import html
import io
import math
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import yaml

__all__ = ["enlarge", "find_figures", "loss_columns", "resolve_run", "run", "run_rows", "write_report"]

MIN_WIDTH = 256  # px: narrower figures are enlarged by an integer factor until they are at least this wide
MIME = {".png": "image/png", ".gif": "image/gif"}
MAIN_LOSSES = ("train/loss", "val/loss")
_EPOCH = re.compile(r"epoch=(\d+)")
_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
.note { color: #666; font-style: italic; }
.row { display: flex; gap: 1em; overflow-x: auto; align-items: flex-start; padding-bottom: .5em; }
figure { margin: 0; text-align: center; } figcaption { font-size: .85em; color: #555; }
img.px { image-rendering: pixelated; }
table { border-collapse: collapse; font-size: .9em; } td, th { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
"""


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


def enlarge(source: Path | bytes, min_width: int = MIN_WIDTH) -> tuple[bytes, str, tuple[int, int], bool]:
    """The picture's bytes, MIME type and size, enlarged with nearest-neighbour by the smallest integer factor that
    makes it ``min_width`` wide (every frame of a GIF); a wide enough picture keeps its original bytes."""
    from PIL import Image, ImageSequence

    data = source.read_bytes() if isinstance(source, Path) else source
    with Image.open(io.BytesIO(data)) as image:
        kind = "GIF" if image.format == "GIF" else "PNG"
        mime = "image/gif" if kind == "GIF" else "image/png"
        factor = math.ceil(min_width / image.width) if image.width < min_width else 1
        if factor == 1 and image.format in ("PNG", "GIF"):
            return data, mime, image.size, False
        size = (image.width * factor, image.height * factor)
        out = io.BytesIO()
        if kind == "GIF" and getattr(image, "n_frames", 1) > 1:
            frames = [frame.copy().resize(size, Image.Resampling.NEAREST) for frame in ImageSequence.Iterator(image)]
            info = {"duration": image.info.get("duration", 250), "loop": image.info.get("loop", 0)}
            frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], **info)
        else:
            image.resize(size, Image.Resampling.NEAREST).save(out, format=kind)
        return out.getvalue(), mime, size, factor > 1


def _img(data: bytes, mime: str, size: tuple[int, int], alt: str, pixelated: bool = False) -> str:
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    css = ' class="px"' if pixelated else ""
    return f'<img src="{uri}" alt="{html.escape(alt)}" width="{size[0]}" height="{size[1]}"{css}>'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


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


def loss_plot(series: dict[str, list[tuple[int, float]]]) -> bytes:
    """A PNG of the curves: the total loss on the left, the named parts (if any) on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("loss", [c for c in MAIN_LOSSES if series.get(c)])]
    parts = [c for c in series if c not in MAIN_LOSSES and series[c]]
    if parts:
        panels.append(("parts", parts))
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels) + 1.5, 4.5), squeeze=False)
    try:
        for ax, (title, columns) in zip(axes[0], panels, strict=True):
            for column in columns:
                steps, values = zip(*series[column], strict=True)
                ax.plot(steps, values, marker="o" if column.startswith("val/") else None, markersize=3, label=column)
            ax.set(title=title, xlabel="step")
            ax.grid(alpha=0.3)
            ax.legend()
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="png", dpi=100)
    finally:
        plt.close(figure)
    return out.getvalue()


def _float(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


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


def _cell(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} (n={len(values)})"


def _order(text: str) -> tuple[int, float, str]:
    """Numbers in numeric order (5 before 10), before words ("all")."""
    number = _float(text)
    return (0, number, "") if number is not None else (1, 0.0, text)


def eval_table(rows: list[dict[str, str]]) -> str:
    """One line per protocol, data set, labels per class, metric and checkpoint; pretrained and random init side by
    side, mean ± standard deviation over the seeds."""
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        key = tuple(row.get(k) or "" for k in ("protocol", "data", "labels_per_class", "metric", "checkpoint"))
        value = _float(row.get("value") or "")
        if value is not None:
            groups[key][row.get("init") or "pretrained"].append(value)
    head = ("protocol", "data", "labels per class", "metric", "checkpoint", "pretrained", "random init")
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for key, inits in sorted(groups.items(), key=lambda item: [_order(k) for k in item[0]]):
        cells = "".join(f"<td>{html.escape(k)}</td>" for k in key)
        cells += "".join(
            f'<td class="num">{html.escape(_cell(inits.get(i, [])))}</td>' for i in ("pretrained", "random")
        )
        lines.append(f"<tr>{cells}</tr>")
    return "\n".join([*lines, "</table>"])


def _configuration(run_dir: Path, checkpoints: list[Path]) -> list[str]:
    out = ["<h2>Configuration</h2>"]
    if checkpoints:
        names = ", ".join(str(p) for p in checkpoints)
        out.append(f"<p>checkpoint: <code>{html.escape(names)}</code></p>")
    else:
        out.append(_note(f"no checkpoint in {run_dir / 'checkpoints'}"))
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
    out.append(_note(f"no config.yaml or hparams.yaml in {run_dir}"))
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
        return [*out, _note(f"no metrics.csv in {run_dir} (the run's logger was off or not a CSVLogger)")]
    series = read_losses(path)
    if not any(series.values()):
        return [*out, _note(f"{path} has no train/loss or val/loss values")]
    try:
        picture = loss_plot(series)
        out.append(_img(picture, "image/png", _png_size(picture), "loss curves"))
    except ImportError:  # matplotlib is the plugins' dependency, not the core's
        out.append(_note("matplotlib is not installed (pip install matplotlib draws the curves); the values:"))
    out += ["<table>", "<tr><th>column</th><th>points</th><th>first</th><th>last</th><th>min</th></tr>"]
    for column, points in series.items():
        if points:
            values = [v for _, v in points]
            numbers = (str(len(values)), *(f"{x:.4f}" for x in (values[0], values[-1], min(values))))
            cells = "".join(f'<td class="num">{n}</td>' for n in numbers)
            out.append(f"<tr><td>{html.escape(column)}</td>{cells}</tr>")
    return [*out, "</table>"]


def _png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _figures(run_dir: Path) -> list[str]:
    out = ["<h2>Figures</h2>"]
    groups = find_figures(run_dir)
    if not groups:
        return [*out, _note(f"no PNG or GIF figures under {run_dir} (add a figure callback, e.g. ReconstructionGrid)")]
    for name, paths in groups.items():
        out += [f"<h3>{html.escape(name)}</h3>", '<div class="row">']
        for path in paths:
            data, mime, size, enlarged = enlarge(path)
            caption = path.name + (f" (enlarged from {_png_size(path.read_bytes())[0]} px)" if enlarged else "")
            figure = _img(data, mime, size, f"{name}/{path.name}", pixelated=enlarged)
            out.append(f"<figure>{figure}<figcaption>{html.escape(caption)}</figcaption></figure>")
        out.append("</div>")
    return out


def _masks(checkpoints: list[Path], samples: int, seed: int) -> list[str]:
    out = ["<h2>Masks</h2>"]
    if samples <= 0:
        return [*out, _note("masks not drawn (--masks 0)")]
    if not checkpoints:
        return [*out, _note("no checkpoint to draw the masks of")]
    import numpy as np
    from PIL import Image

    from .masks import masks_of_checkpoint, render_masks

    try:
        spec, shape, name = masks_of_checkpoint(checkpoints[0], samples, seed)
    except SystemExit as refusal:  # tokens not on a grid: masks draws grids only
        return [*out, _note(f"masks not drawn: {str(refusal).removeprefix('anymae masks: ')}")]
    except Exception as error:  # e.g. the run's data moved since: the rest of the page still stands
        print(f"anymae report: warning: masks not drawn: {error}", file=sys.stderr)
        return [*out, _note(f"masks not drawn: {type(error).__name__}: {error}")]
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
    out.append(_img(data, mime, size, "masks", pixelated=enlarged))
    layout = "samples left to right" if len(shape) <= 2 else "one row per sample, time steps left to right"
    legend = f"{layout}; white: visible; dark: hidden, in the loss; "
    return [*out, _note(legend + "light grey: hidden, not predicted (decoder masking)")]


def _evaluations(results: Sequence[Path], checkpoints: list[Path], run_dir: Path) -> list[str]:
    out = ["<h2>Evaluations</h2>"]
    if not results:
        return [*out, _note("no results CSV (anymae knn/probe/finetune write anymae-results.csv)")]
    rows = run_rows(results, checkpoints, run_dir)
    read = ", ".join(str(p) for p in results)
    if not rows:
        return [*out, _note(f"no row of {read} is for a checkpoint of this run")]
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
        f"<style>{_STYLE}</style></head><body>",
        *body,
        "</body></html>",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(page) + "\n", encoding="utf-8")
    return out


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="anymae report",
        description="Write one self-contained HTML page of a run: configuration, loss curves, figures, masks and "
        "evaluation rows.",
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
