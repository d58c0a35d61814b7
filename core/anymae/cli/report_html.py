"""The report page's building blocks: images inlined as ``data:`` URIs (small figures enlarged with sharp pixels),
the loss plot, notes, and the table of evaluation rows, pretrained beside random init (``anymae report``)."""

import base64
import html
import io
import math
import statistics
from collections import defaultdict
from pathlib import Path

__all__ = [
    "MAIN_LOSSES",
    "MIME",
    "MIN_WIDTH",
    "STYLE",
    "enlarge",
    "eval_table",
    "img",
    "loss_plot",
    "note",
    "png_size",
]

MAIN_LOSSES = ("train/loss", "val/loss")


MIN_WIDTH = 256  # px: narrower figures are enlarged by an integer factor until they are at least this wide


MIME = {".png": "image/png", ".gif": "image/gif"}


STYLE = """
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


def img(data: bytes, mime: str, size: tuple[int, int], alt: str, pixelated: bool = False) -> str:
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    css = ' class="px"' if pixelated else ""
    return f'<img src="{uri}" alt="{html.escape(alt)}" width="{size[0]}" height="{size[1]}"{css}>'


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


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


def _cell(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} (n={len(values)})"


def _order(text: str) -> tuple[int, float, str]:
    """Numbers in numeric order (5 before 10), before words ("all")."""
    number = as_number(text)
    return (0, number, "") if number is not None else (1, 0.0, text)


def eval_table(rows: list[dict[str, str]]) -> str:
    """One line per protocol, data set, labels per class, metric and checkpoint; pretrained and random init side by
    side, mean ± standard deviation over the seeds."""
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        key = tuple(row.get(k) or "" for k in ("protocol", "data", "labels_per_class", "metric", "checkpoint"))
        value = as_number(row.get("value") or "")
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


def as_number(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
