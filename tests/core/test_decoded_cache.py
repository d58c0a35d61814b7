"""DecodedCache: decoded once per file version, evicted beyond its byte budget, errors kept out."""

import os
from pathlib import Path

import pytest
import torch

from anymae import DecodedCache


def test_a_file_is_decoded_once_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "clip.bin"
    path.write_bytes(b"one")
    cache, calls = DecodedCache(10_000), []

    def decode() -> torch.Tensor:
        calls.append(1)
        return torch.full((4,), float(len(path.read_bytes())))

    first = cache.get(str(path), 16000, decode)
    assert torch.equal(cache.get(str(path), 16000, decode), first) and len(calls) == 1
    cache.get(str(path), 8000, decode)  # other decoder settings: another entry
    assert len(calls) == 2
    path.write_bytes(b"three")  # an edited file (another size and time) is decoded again
    os.utime(path, ns=(1, 1))
    assert cache.get(str(path), 16000, decode)[0] == 5 and len(calls) == 3
    assert (cache.hits, cache.misses) == (1, 3)


def test_the_budget_evicts_the_least_recently_used(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.bin" for i in range(3)]
    for p in paths:
        p.write_bytes(b"x")
    cache = DecodedCache(2 * 400)  # two entries of 100 float32
    for p in paths[:2]:
        cache.get(str(p), None, lambda: torch.zeros(100))
    cache.get(str(paths[0]), None, lambda: torch.zeros(100))  # 0 used last: 1 goes first
    cache.get(str(paths[2]), None, lambda: {"a": torch.zeros(50), "b": torch.zeros(50)})
    kept = {key[0] for key in cache.entries}
    assert kept == {str(paths[0]), str(paths[2])} and cache.bytes == 800
    cache.get(str(paths[1]), None, lambda: torch.zeros(1000))  # larger than the budget: returned, never kept
    assert str(paths[1]) not in {key[0] for key in cache.entries}


def test_a_decoding_error_keeps_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(b"?")
    cache = DecodedCache(10_000)

    def broken() -> torch.Tensor:
        raise ValueError("not a clip")

    with pytest.raises(ValueError, match="not a clip"):
        cache.get(str(path), None, broken)
    assert not cache.entries and cache.bytes == 0
