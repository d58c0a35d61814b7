"""``anymae fbank_stats``: the mean and standard deviation of a folder's fbank features, for the data module's
``mean`` and ``std`` (Audio-MAE normalises AudioSet with -4.2677 and 4.5690, ESC-50 with -6.6268 and 5.3585).
It counts each clip's real frames only; Audio-MAE's figures were taken over clips padded or cropped to their
``target_length``, so this gives other numbers on the same data when clips are shorter or longer.

``anymae stats --config CONFIG`` is the generic command: it measures any data module's samples as the config's
``data:`` section builds them (here, clips padded or cropped to ``target_length``, as Audio-MAE measured), with the
data module's normalisation off. This one reads a folder of audio files directly, without a config.

    anymae fbank_stats /path/to/audio --sample-rate 16000 --num-mel-bins 128 --limit 2000
"""

import argparse
import random
from collections.abc import Sequence

import torch

from anymae import scan_folder

from .features import AUDIO_EXTENSIONS, Fbank, read_audio

__all__ = ["fbank_stats", "run"]


def fbank_stats(paths: Sequence[str], sample_rate: int = 16000, num_mel_bins: int = 128) -> tuple[float, float, int]:
    """Mean and standard deviation of every fbank value of the readable files (their real frames: no padding), and
    the number of files that could not be read."""
    features = Fbank(sample_rate, num_mel_bins)
    total, square, count, bad = 0.0, 0.0, 0, 0
    for path in paths:  # one file at a time: the folder may not fit in memory
        try:
            fbank = features.raw(read_audio(path, sample_rate)).double()
        except (OSError, ValueError, RuntimeError):
            bad += 1
            continue
        total, square, count = total + float(fbank.sum()), square + float(fbank.square().sum()), count + fbank.numel()
    if not count:
        raise ValueError("no readable audio file")
    mean = total / count
    return mean, (square / count - mean**2) ** 0.5, bad


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, prog="anymae fbank_stats", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("root", help="a folder of audio files (searched recursively)")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--num-mel-bins", type=int, default=128)
    parser.add_argument("--limit", type=int, default=0, help="a random sample of this many files (0: all)")
    options = parser.parse_args(argv)
    try:
        paths = list(scan_folder(options.root, AUDIO_EXTENSIONS).paths)
    except FileNotFoundError as error:
        parser.error(str(error))
    if not paths:
        parser.error(f"no audio files under {options.root!r}")
    if options.limit and len(paths) > options.limit:
        paths = random.Random(0).sample(paths, options.limit)
    with torch.no_grad():
        mean, std, bad = fbank_stats(paths, options.sample_rate, options.num_mel_bins)
    print(f"fbank over {len(paths) - bad} files ({bad} unreadable): mean {mean:.6f}, std {std:.6f}")
    print(f"data:\n  init_args:\n    mean: {mean:.6f}\n    std: {std:.6f}")
    return 0
