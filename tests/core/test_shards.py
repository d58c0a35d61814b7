"""Streaming shards end to end, locally: `anymae shard` writes a data module's samples (here the digits, and an image
folder with a corrupt file), StreamingDataModule reads back exactly the same samples, and `anymae fit` trains on
them (both commands through their entry point, in this process)."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import anymae
from anymae.cli import main
from anymae_image import DigitsDataModule, ImageFolderDataModule

ROOT = Path(__file__).resolve().parents[2]


def every_sample(loader) -> dict[int, tuple[torch.Tensor, int]]:
    """Samples keyed by a hash of their pixels (streaming order is not the source's)."""
    out = {}
    for batch in loader:
        for image, label in zip(batch["image"], batch["label"], strict=True):
            out[hash(image.numpy().tobytes())] = (image, int(label))
    return out


@pytest.mark.slow
def test_shard_round_trip_and_training(tmp_path, capsys):
    config = tmp_path / "digits.yaml"
    config.write_text(
        yaml.safe_dump(
            {"data": {"class_path": "anymae_image.DigitsDataModule", "init_args": {"image_size": 8, "batch_size": 64}}}
        )
    )
    assert main(["shard", "--config", str(config), "--out", str(tmp_path / "shards")]) == 0
    out = capsys.readouterr().out
    assert "train: 1617 samples to " in out and "val: 180 samples to " in out

    source = DigitsDataModule(image_size=8, batch_size=64)
    source.setup("fit")
    streamed = anymae.StreamingDataModule(
        train_dir=str(tmp_path / "shards" / "train"), val_dir=str(tmp_path / "shards" / "val"), batch_size=100
    )
    streamed.num_workers = 0
    for split, dataset in (("train", source.train_set), ("val", source.val_set)):
        loader = streamed.train_dataloader() if split == "train" else streamed.val_dataloader()
        loader.dataset.drop_last = False  # every sample, to compare
        got = every_sample(loader)
        want = {
            hash(img.numpy().tobytes()): (img, int(lab)) for img, lab in zip(*dataset.tensors.values(), strict=True)
        }
        assert got.keys() == want.keys(), split
        assert all(got[k][1] == want[k][1] for k in want)  # labels travel with their images

    fit = [
        "fit",
        "--config",
        str(ROOT / "examples" / "image" / "mae_tiny_digits.yaml"),
        "--data",
        "anymae.StreamingDataModule",
        "--data.train_dir",
        str(tmp_path / "shards" / "train"),
        "--data.val_dir",
        str(tmp_path / "shards" / "val"),
        "--data.num_workers",
        "0",
        "--model.tokenizer.init_args.image_size",
        "8",
        "--trainer.callbacks",
        "null",
        "--trainer.max_steps",
        "3",
        "--trainer.limit_val_batches",
        "1",
        "--model.lr_schedule.warmup_steps",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path),
    ]
    assert main(fit) == 0
    assert (tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_shards_skip_unreadable_files_and_keep_the_evaluation_view(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    module = ImageFolderDataModule(root=str(tmp_path), image_size=16, num_workers=0)
    written = anymae.data.streaming.write_shards(module.export_samples("train"), str(tmp_path / "out"))
    assert written == 5  # the corrupt file is left out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = module.export_samples("train")[0]["image"]
    assert torch.equal(again, module.export_samples("train")[0]["image"])  # no random crop: the same every time
