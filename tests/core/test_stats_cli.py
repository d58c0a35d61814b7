"""``anymae stats``: the mean and standard deviation of a data module's raw samples (its normalisation off), per
channel or as one number as the data module takes them, with the lines to paste; unreadable samples skipped and
counted, ``--limit`` a seeded subset, ``--key`` one entry."""

import itertools

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from anymae import DataModule, TensorSamples
from anymae.cli import main

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64)


def raw_signals() -> torch.Tensor:
    return torch.randn(10, 2, 8, generator=torch.Generator().manual_seed(0)) * 3 + 5


class HalvedFbank(DataModule):
    """As the audio plugin normalises fbanks: one ``mean`` and ``std`` for every value, ``(x - mean) / (2 std)``."""

    def __init__(self, mean: float = -4.0, std: float = 4.0, batch_size: int = 4, num_workers: int = 0) -> None:
        super().__init__(batch_size, num_workers, seed=0)
        self.mean, self.std = mean, std

    def build(self) -> tuple[TensorSamples, None]:
        raw = raw_signals()
        signal = (raw - self.mean) / (2 * self.std)
        return TensorSamples({"signal": signal, "frames": torch.full((10,), 8), "label": torch.arange(10) % 2}), None


class Plain(DataModule):
    """No ``mean`` and ``std``: its samples are measured as it gives them."""

    def __init__(self, batch_size: int = 4, num_workers: int = 0) -> None:
        super().__init__(batch_size, num_workers, seed=0)

    def build(self) -> tuple[TensorSamples, None]:
        return TensorSamples({"signal": raw_signals(), "label": torch.arange(10) % 2}), None


def write_pngs(folder, count: int, seed: int = 0) -> list[torch.Tensor]:
    """``count`` random 8x8 RGB PNGs; their pixels in [0, 1], ``[3, 8, 8]`` each, in file order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        pixels[..., 0] //= 2  # channels with different statistics
        Image.fromarray(pixels).save(folder / f"{i}.png")
        images.append(torch.from_numpy(pixels).permute(2, 0, 1).double() / 255)
    return images


def config(tmp_path, data: dict) -> str:
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"max_epochs": 1}, "data": data}))
    return str(path)


def folder_config(tmp_path, root) -> str:
    init = {"root": str(root), "image_size": 8, "num_workers": 0}  # mean and std unset: ImageNet's
    return config(tmp_path, {"class_path": "anymae_image.ImageFolderDataModule", "init_args": init})


def pasted(out: str) -> dict:
    """The printed ``data:`` lines, parsed."""
    return yaml.safe_load(out[out.index("data:\n") :])["data"]["init_args"]


def per_channel(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.stack(images).transpose(0, 1).reshape(3, -1)
    return values.mean(1), values.std(1, unbiased=False)


def test_an_image_folder_is_measured_raw_per_channel_skipping_unreadable_files(tmp_path, capsys):
    images = write_pngs(tmp_path / "images", 5)
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    assert main(["stats", "--config", folder_config(tmp_path, tmp_path / "images")]) == 0
    out = capsys.readouterr().out
    assert "ImageFolderDataModule: 5 training samples of 6 read (1 unreadable skipped)" in out
    found = pasted(out)
    mean, std = per_channel(images)
    assert len(found["mean"]) == len(found["std"]) == 3
    torch.testing.assert_close(torch.tensor(found["mean"], dtype=torch.float64), mean, atol=2e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(found["std"], dtype=torch.float64), std, atol=2e-6, rtol=0)
    # the data module's own normalisation (ImageNet's, unset in the config) was off: normalised pixels would give these
    normalised = per_channel([(image - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None] for image in images])
    assert (torch.tensor(found["std"], dtype=torch.float64) - normalised[1]).abs().min() > 0.3  # 4x these
    assert "label" not in out


def test_limit_reads_a_seeded_random_subset(tmp_path, capsys):
    images = write_pngs(tmp_path / "images", 6, seed=1)
    args = ["stats", "--config", folder_config(tmp_path, tmp_path / "images"), "--limit", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "3 training samples of 6 read (0 unreadable skipped)" in first
    found = torch.tensor(pasted(first)["mean"], dtype=torch.float64)
    subsets = [per_channel([images[i] for i in ids])[0] for ids in itertools.combinations(range(6), 3)]
    assert any(torch.allclose(found, subset, atol=2e-6, rtol=0) for subset in subsets)  # the figures of 3 files
    assert not torch.allclose(found, per_channel(images)[0], atol=1e-3, rtol=0)  # not of all 6
    assert main(args) == 0 and capsys.readouterr().out == first  # the same seed, the same subset
    outputs = set()
    for seed in range(4):
        assert main([*args, "--seed", str(seed)]) == 0
        outputs.add(capsys.readouterr().out)
    assert len(outputs) > 1  # another seed, another subset


def test_a_scalar_normalisation_by_twice_the_std_gives_one_raw_mean_and_std(tmp_path, capsys):
    path = config(tmp_path, {"class_path": "tests.core.test_stats_cli.HalvedFbank"})
    assert main(["stats", "--config", path]) == 0
    out = capsys.readouterr().out
    found = pasted(out)
    raw = raw_signals().double()
    assert isinstance(found["mean"], float) and isinstance(found["std"], float)
    assert found["mean"] == pytest.approx(float(raw.mean()), abs=2e-6)
    assert found["std"] == pytest.approx(float(raw.std(unbiased=False)), abs=2e-6)  # not half of it
    assert "frames" not in out and "signal (one number)" in out  # an integer entry is left out


def test_a_data_module_without_mean_and_std_is_measured_as_it_gives_samples(tmp_path, capsys):
    path = config(tmp_path, {"class_path": "tests.core.test_stats_cli.Plain"})
    assert main(["stats", "--config", path, "--key", "signal"]) == 0
    out = capsys.readouterr().out
    assert "Plain takes no mean and std" in out and "data:\n" not in out
    values = raw_signals().double().transpose(0, 1).reshape(2, -1)
    expected = ", ".join(f"{v:.6f}" for v in values.mean(1).tolist())
    assert f"signal (2 channels): mean [{expected}]" in out


class ChannelsLast(Plain):
    """Samples ``[L, C]``, channels last (as a point cloud's ``[N, 3]``), said by ``channel_axes``."""

    channel_axes = {"signal": -1}

    def build(self) -> tuple[TensorSamples, None]:
        return TensorSamples({"signal": raw_signals().transpose(1, 2)}), None


def test_channels_last_entries_are_measured_per_channel_where_the_data_module_says(tmp_path, capsys):
    path = config(tmp_path, {"class_path": "tests.core.test_stats_cli.ChannelsLast"})
    assert main(["stats", "--config", path]) == 0
    values = raw_signals().double().transpose(0, 1).reshape(2, -1)
    expected = ", ".join(f"{v:.6f}" for v in values.mean(1).tolist())
    assert f"signal (2 channels): mean [{expected}]" in capsys.readouterr().out  # not 8 channels of 2 values


def test_a_key_the_samples_lack_is_one_line(tmp_path, capsys):
    path = config(tmp_path, {"class_path": "tests.core.test_stats_cli.Plain"})
    assert main(["stats", "--config", path, "--key", "video"]) == 2
    assert capsys.readouterr().err.strip() == "anymae: error: stats: Plain's samples have no entry 'video'"
    (tmp_path / "empty.yaml").write_text("trainer: {max_epochs: 1}\n")
    assert main(["stats", "--config", str(tmp_path / "empty.yaml")]) == 2
    assert "no data: section to measure" in capsys.readouterr().err
