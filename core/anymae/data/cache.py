"""A per-process cache of decoded samples, for data sets that fit in memory.

A video or audio file is decoded again every epoch, and every protocol run of ``anymae table`` or ``anymae tune``
decodes the whole set again: for short clips decoding, not training, is most of the time. :class:`DecodedCache`
keeps what a decoder returned (tensors, or a dict or tuple of them) under a key that includes the file's modification
time and size, so an edited file is decoded again, and evicts the least recently used entries beyond a byte budget.
A reader caches the *decoded* data only (all frames, the whole waveform) and draws its random crop, frames or
augmentation from it every time, so training sees the same samples with and without the cache.

Each loader worker holds its own copy (persistent workers keep it between epochs); ``ANYMAE_DECODED_CACHE_MB`` sets
the budget of :func:`decoded_cache` (default 1024 MiB, 0 turns it off). ``functools.lru_cache`` bounds entries by
count, not bytes, and keys by arguments only (an edited file would be served stale), hence this class.
"""

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch

__all__ = ["DecodedCache", "decoded_cache"]

T = TypeVar("T")


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 64  # a number or a short string: small


class DecodedCache:
    """Least-recently-used decoded files, at most ``max_bytes`` of tensors.

    Args:
        max_bytes: the budget; an entry larger than it is never kept (0: nothing is kept).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, path: str, key: Hashable, decode: Callable[[], T]) -> T:
        """What ``decode()`` returns for ``path`` (``key``: the decoder's settings, e.g. the sample rate), from the
        cache when ``path`` has not changed since. Errors of ``decode`` propagate and nothing is kept."""
        try:
            stat = os.stat(path)
            full = (path, stat.st_mtime_ns, stat.st_size, key)
        except OSError:
            full = None  # the decoder raises its own error for a missing file
        if full is not None and full in self.entries:
            self.entries.move_to_end(full)
            self.hits += 1
            return self.entries[full][0]
        self.misses += 1
        value = decode()
        size = _nbytes(value)
        if full is not None and size <= self.max_bytes:
            self.entries[full] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self.entries.popitem(last=False)
                self.bytes -= dropped
        return value

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = self.hits = self.misses = 0


_CACHE: DecodedCache | None = None


def decoded_cache() -> DecodedCache:
    """The process's cache (created on first use with ``ANYMAE_DECODED_CACHE_MB`` MiB, default 1024)."""
    global _CACHE
    if _CACHE is None:
        _CACHE = DecodedCache(int(float(os.environ.get("ANYMAE_DECODED_CACHE_MB", "1024")) * 2**20))
    return _CACHE
