"""``anymae report`` on a real run: a short digits fit with a reconstruction grid every epoch, a results CSV with
rows for its checkpoint and for another one, then the page: self-contained, figures large enough, only this run's
scores, every loss column; and, when Debian's chromium is installed, every image loading in a real browser."""

import base64
import csv
import io
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from anymae.cli import main

ROOT = Path(__file__).resolve().parents[2]
RUN = Path("lightning_logs/version_0")


class Page(HTMLParser):
    """The page's images (``src``, ``alt``), its table cells, and every tag name."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.cells: list[str] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        if tag in ("td", "th"):
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None


@pytest.fixture(scope="module")
def run_root(digits_run):
    """The shared digits run's folder (``lightning_logs/version_0``: 2 epochs, a reconstruction grid each) and its
    results CSVs."""
    root = digits_run / "runs" / "teacher"
    checkpoint = RUN / "checkpoints" / "last.ckpt"
    assert (root / checkpoint).is_file()
    fields = ["protocol", "data", "labels_per_class", "seed", "init", "checkpoint", "metric", "value", "time"]
    rows = [  # as anymae knn writes them: the checkpoint relative to the working folder
        ["knn", "digits", 5, seed, init, checkpoint, "val/acc", value, "t"]
        for seed, init, value in [
            (0, "pretrained", 0.8),
            (1, "pretrained", 0.6),
            (0, "random", 0.3),
            (1, "random", 0.3),
        ]
    ]
    rows.append(
        ["knn", "elsewhere", 5, 0, "pretrained", "lightning_logs/version_9/checkpoints/last.ckpt", "val/acc", 0.9, "t"]
    )
    with (root / "anymae-results.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([fields, *rows])
    with (root / "more-results.csv").open("w", newline="") as handle:  # an absolute path, from another folder
        probe = ["linear_probe", "digits", 1, 0, "pretrained", root / checkpoint, "val/acc", 0.7, "t"]
        csv.writer(handle).writerows([fields, probe])
    return root


@pytest.fixture(scope="module")
def report(run_root):
    """The page of ``latest``, with both results CSVs, and what the command printed."""
    cwd = os.getcwd()
    os.chdir(run_root)
    try:
        out = io.StringIO()
        stdout, sys.stdout = sys.stdout, out
        try:
            assert main(["report", "latest", "--results", "more-results.csv", "--masks", "3"]) == 0
        finally:
            sys.stdout = stdout
    finally:
        os.chdir(cwd)
    path = run_root / RUN / "report.html"
    assert f"report: {RUN / 'report.html'}" in out.getvalue()
    return path


def decode(src: str) -> Image.Image:
    match = re.fullmatch(r"data:image/(png|gif);base64,([A-Za-z0-9+/=]+)", src)
    assert match, src[:60]
    image = Image.open(io.BytesIO(base64.b64decode(match.group(2))))
    image.load()
    return image


def test_page_is_self_contained_and_its_figures_are_large(report, run_root):
    text = report.read_text()
    page = Page(text)
    assert not page.tags & {"script", "link", "iframe"}
    assert "http://" not in text and "https://" not in text
    alts = [image["alt"] for image in page.images]
    figures = [a for a in alts if a.startswith("reconstructions/")]
    assert figures == ["reconstructions/epoch=0000.png", "reconstructions/epoch=0001.png", "reconstructions/final.png"]
    assert alts == ["loss curves", *figures, "masks"]
    for image in page.images:
        picture = decode(image["src"])
        assert picture.format == "PNG"
        assert picture.width >= 256, (image["alt"], picture.size)
        assert (int(image["width"]), int(image["height"])) == picture.size
    original = Image.open(run_root / RUN / "reconstructions" / "final.png")
    assert original.width < 256  # the digits grid is small: the page shows it enlarged, pixel for pixel
    enlarged = decode(page.images[alts.index("reconstructions/final.png")]["src"])
    factor = enlarged.width // original.width
    assert factor > 1 and enlarged.size == (original.width * factor, original.height * factor)
    assert (
        enlarged.convert("RGB").resize(original.size, Image.Resampling.NEAREST).tobytes()
        == original.convert("RGB").tobytes()
    )


def test_page_shows_the_config_the_loss_columns_and_only_this_runs_scores(report, run_root):
    text = report.read_text()
    page = Page(text)
    assert "config.yaml" in text and "ImagePatchTokenizer" in text and "last.ckpt" in text
    with (run_root / RUN / "metrics.csv").open() as handle:
        header = next(csv.reader(handle))
    losses = [c for c in header if re.fullmatch(r"(train|val)/loss(_\w+)?", c)]
    assert {"train/loss", "val/loss"} <= set(losses)
    assert set(losses) <= set(page.cells)  # each curve's row in the values table
    assert "digits" in page.cells and "elsewhere" not in text
    assert "0.7000 ± 0.1414 (n=2)" in page.cells  # pretrained over seeds 0 and 1
    assert "0.3000 ± 0.0000 (n=2)" in page.cells  # random init beside it
    assert "linear_probe" in page.cells and "0.7000" in page.cells  # from --results, checkpoint as an absolute path
    assert "RandomMasker on the 8x8 token grid" in text


def test_wrong_paths_get_notes_or_one_error_line(tmp_path, run_root, capsys):
    bare = tmp_path / "version_0"  # logger off, no figure, no checkpoint: a page with a note in each section
    bare.mkdir()
    shutil.copy(run_root / RUN / "config.yaml", bare / "config.yaml")
    assert main(["report", str(bare), "--out", str(tmp_path / "bare.html")]) == 0
    text = (tmp_path / "bare.html").read_text()
    for note in ("no checkpoint in", "no metrics.csv in", "no PNG or GIF figures", "no checkpoint to draw"):
        assert note in text
    assert "<img" not in text
    capsys.readouterr()
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"anymae: error: report: run folder {tmp_path / 'missing'} does not exist (give a lightning_logs/"
        "version_* folder)"
    ]


def test_every_image_loads_in_headless_chromium(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (make venv installs Debian's chromium when run as root)")
    count = len(Page(report.read_text()).images)
    probe = (  # the title becomes "<loaded>/<all>" once the page (every data: image) has loaded
        "<script>window.addEventListener('load', () => { const all = [...document.images]; document.title = "
        "all.filter(i => i.complete && i.naturalWidth > 0).length + '/' + all.length; });</script>"
    )
    page = tmp_path / "probe.html"
    page.write_text(report.read_text().replace("</body>", probe + "</body>"))
    command = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    command += [f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title and title.group(1) == f"{count}/{count}", (title, count)
