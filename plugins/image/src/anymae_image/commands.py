"""``anymae band_stats``: the per-band mean and standard deviation of a folder of multi-band images (``.tif``,
``.tiff``, ``.npy``), printed as the YAML lines ``mean: [...]`` and ``std: [...]`` for
:class:`~anymae_image.MultiBandFolderDataModule`'s ``data.init_args``.

    anymae band_stats --root /path/to/tiles --bands 13 --max-files 2000 --nodata -9999

Every pixel of every file counts once, in the files' own units (8- or 16-bit values as they are), without resizing,
except missing ones (NaN, infinite, or equal to ``--nodata``), which are left out of their band and counted;
the files are read one at a time and accumulated in float64 (per-file moments merged exactly, Chan et al.), so the
folder never has to fit in memory. The standard deviation is the population one (``numpy.std``). Unreadable files are
skipped and counted; with ``--bands``, so are files with another band count, and without it a folder of mixed band
counts is an error.
"""

import argparse
import random
from collections.abc import Sequence

import numpy as np

from anymae import ConfigError, scan_folder

from .data import BAND_EXTENSIONS, MultiBandFolderDataModule, bands_first, load_raster

__all__ = ["BandStats", "band_stats", "run"]


class BandStats:
    """Running per-band count, mean and sum of squared deviations (float64), merged file by file; missing pixels
    (NaN, infinite, or equal to ``nodata``) are left out of their band and counted in :attr:`missing`."""

    def __init__(self, bands: int, nodata: float | None = None) -> None:
        self.nodata = nodata
        self.count = np.zeros(bands, dtype=np.int64)
        self.mean = np.zeros(bands, dtype=np.float64)
        self.m2 = np.zeros(bands, dtype=np.float64)
        self.missing = 0

    def add(self, pixels: np.ndarray) -> None:
        """Add one ``[C, H, W]`` array's pixels."""
        values = pixels.reshape(len(pixels), -1).astype(np.float64)
        valid = np.isfinite(values) if self.nodata is None else np.isfinite(values) & (values != self.nodata)
        self.missing += int(valid.size - valid.sum())
        n = valid.sum(axis=1)
        if not n.any():
            return
        mean = np.where(valid, values, 0.0).sum(axis=1) / np.maximum(n, 1)
        m2 = np.square(np.where(valid, values - mean[:, None], 0.0)).sum(axis=1)
        total = self.count + n
        share = n / np.maximum(total, 1)
        delta = mean - self.mean
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + m2 + np.square(delta) * self.count * share
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count)


def band_stats(
    paths: Sequence[str], bands: int | None = None, nodata: float | None = None
) -> tuple[BandStats, int, int]:
    """Per-band statistics of the readable files, with the numbers of unreadable files and of files skipped for
    another band count than ``bands``. Without ``bands``, the first readable file sets it and another count is a
    :class:`~anymae.ConfigError`; no readable file is one too, and so is a band with no pixel that is not missing
    (NaN, infinite, or ``nodata``)."""
    stats: BandStats | None = None
    first, unreadable, other = "", 0, 0
    for path in paths:  # one file at a time: the folder may not fit in memory
        try:
            pixels = bands_first(load_raster(path), bands)
        except MultiBandFolderDataModule.read_errors:
            unreadable += 1
            continue
        if bands is not None and len(pixels) != bands:
            other += 1
            continue
        if stats is None:
            stats, first = BandStats(len(pixels), nodata), path
        elif len(pixels) != len(stats.mean):
            raise ConfigError(
                f"band_stats: mixed band counts: {first} has {len(stats.mean)} bands, {path} has {len(pixels)}; "
                "pass --bands N to count only the files with N bands"
            )
        stats.add(pixels)
    if stats is None:
        kind = f"{bands}-band " if bands is not None else ""
        raise ConfigError(
            f"band_stats: no readable {kind}file among {len(paths)} ({unreadable} unreadable, {other} with another "
            "band count)"
        )
    empty = [str(band) for band in np.flatnonzero(stats.count == 0)]
    if empty:
        raise ConfigError(
            f"band_stats: band {', '.join(empty)} (counting from 0) has no pixel that is not missing (NaN, infinite "
            f"or --nodata {nodata}) in the files read"
        )
    return stats, unreadable, other


def _yaml_list(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(v):.8g}" for v in values) + "]"


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="anymae band_stats", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="a folder of .tif/.tiff/.npy files (searched recursively)")
    parser.add_argument(
        "--bands",
        type=int,
        default=None,
        help="count only the files with this many bands (default: all, which must agree)",
    )
    parser.add_argument("--max-files", type=int, default=0, help="a random sample of this many files (0: all)")
    parser.add_argument(
        "--nodata",
        type=float,
        default=None,
        help="the value marking a missing pixel, left out as NaN and infinite ones are (the data module's nodata)",
    )
    options = parser.parse_args(argv)
    if options.bands is not None and options.bands < 1:
        parser.error(f"--bands must be positive, got {options.bands}")
    if options.max_files < 0:
        parser.error(f"--max-files must be 0 (all) or positive, got {options.max_files}")
    # scanned afresh (not the per-process cache); a missing folder is a FileNotFoundError, one line
    paths = list(scan_folder(options.root, BAND_EXTENSIONS, refresh=True).paths)
    if not paths:
        raise ConfigError(f"band_stats: no {'/'.join(BAND_EXTENSIONS)} files under {options.root!r}")
    if options.max_files and len(paths) > options.max_files:
        paths = sorted(random.Random(0).sample(paths, options.max_files))
    stats, unreadable, other = band_stats(paths, options.bands, options.nodata)
    used = len(paths) - unreadable - other
    skipped = f"{unreadable} unreadable" + (f", {other} with another band count" if options.bands is not None else "")
    low, high = int(stats.count.min()), int(stats.count.max())
    counted = f"{low} pixels per band" if low == high else f"{low} to {high} pixels per band"
    if stats.missing:
        counted += f" ({stats.missing} missing left out)"
    print(
        f"# {len(stats.mean)} bands over {used} files under {options.root} ({skipped}), {counted}; "
        "paste under data.init_args:"
    )
    print(f"mean: {_yaml_list(stats.mean)}")
    print(f"std: {_yaml_list(stats.std)}")
    return 0
