"""Image data modules on real files the tests write, and on the embedded digits."""

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import anymae
from anymae.cli import main
from anymae_image import DigitsDataModule, ImageFolderDataModule, ImagePatchTokenizer

from ..core.toys import quiet_trainer

ROOT = Path(__file__).resolve().parents[2]


def tiny_image_model() -> anymae.MaskedAutoencoder:
    """A 1-block MAE on 16 x 16 RGB images in 8 x 8 patches."""
    return anymae.MaskedAutoencoder(
        tokenizer=ImagePatchTokenizer(image_size=16, patch_size=8),
        masker=anymae.RandomMasker(),
        encoder=anymae.ViTEncoder(embed_dim=16, depth=1, num_heads=2),
        decoder=anymae.MAEDecoder(embed_dim=8, depth=1, num_heads=2),
        target=anymae.PatchTarget(),
    )


def write_images(root, names, size=(40, 30), mode="RGB"):
    rng = np.random.default_rng(0)
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(path)


def test_digits_shapes_labels_and_normalisation():
    dm = DigitsDataModule(image_size=16, batch_size=32, val_fraction=0.2, in_chans=3)
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 1797
    assert len(dm.val_set) == round(1797 * 0.2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (32, 3, 16, 16) and batch["label"].shape == (32,)
    train = dm.train_set.tensors["image"]
    assert abs(train.mean().item()) < 1e-3 and train.std().item() == pytest.approx(1.0, abs=1e-3)
    assert set(dm.val_set.labels.tolist()) == set(range(10))


def test_digits_shuffle_depends_only_on_seed_and_epoch():
    dm = DigitsDataModule(image_size=8, batch_size=16)
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(3)
    a = next(iter(loader))["label"]
    loader.sampler.set_epoch(4)
    b = next(iter(loader))["label"]
    loader.sampler.set_epoch(3)
    assert torch.equal(next(iter(loader))["label"], a) and not torch.equal(a, b)


def test_folder_unlabeled_recursive_with_mae_crop(tmp_path):
    write_images(tmp_path, ["a.png", "sub/b.jpg", "sub/deeper/c.jpeg", "d.PNG"])
    (tmp_path / "notes.txt").write_text("not an image")
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=24, batch_size=2, num_workers=0, val_fraction=0.25)
    dm.setup("fit")
    assert len(dm.train_set) == 3 and len(dm.val_set) == 1
    batch = dm.on_before_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch["image"].shape == (2, 3, 24, 24) and "label" not in batch
    assert batch["image"].mean().abs() < 3  # normalised


def test_folder_labeled_and_grayscale(tmp_path):
    write_images(tmp_path / "train", ["cat/1.png", "cat/2.png", "dog/1.png"], mode="L")
    write_images(tmp_path / "val", ["cat/3.png", "dog/2.png"], mode="L")
    dm = ImageFolderDataModule(
        root=str(tmp_path / "train"),
        val_root=str(tmp_path / "val"),
        labeled=True,
        in_chans=1,
        image_size=16,
        batch_size=8,
        num_workers=0,
    )
    dm.setup("fit")
    assert dm.classes == ["cat", "dog"]
    val = dm.on_before_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert val["image"].shape == (2, 1, 16, 16) and val["label"].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("suffix", "values", "mode"),
    [
        (".png", np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16), "I;16"),  # medical, depth PNGs
        (".tif", np.linspace(0, 1, 32 * 32).reshape(32, 32).astype(np.float32), "F"),  # float TIFFs, fractions
        (".tif", np.linspace(-5, 15, 32 * 32).reshape(32, 32).astype(np.float32), "F"),  # by their own range
    ],
)
def test_wide_grayscale_images_keep_their_range(tmp_path, suffix, values, mode):
    """A 16-bit or float image reads as the same picture an 8-bit one of it does, not clipped white by PIL."""
    Image.fromarray(values).save(tmp_path / f"wide{suffix}")
    assert Image.open(tmp_path / f"wide{suffix}").mode == mode
    eight = np.rint((values - values.min()) / (values.max() - values.min()) * 255).astype(np.uint8)
    Image.fromarray(eight).save(tmp_path / "eight.png")
    data = ImageFolderDataModule(
        str(tmp_path), in_chans=1, image_size=32, augment=False, mean=(0.0,), std=(1.0,), num_workers=0
    )
    data.setup("fit")
    reader = data.reader(train=False)
    wide, reference = (reader(str(tmp_path / name))["image"] for name in (f"wide{suffix}", "eight.png"))
    assert torch.allclose(wide, reference, atol=1 / 255 + 1e-6)
    assert wide.min() == 0 and wide.max() == 1 and 0.45 < float(wide.mean()) < 0.55  # a gradient, not white


def test_a_float_images_missing_pixels_are_black_and_the_rest_keeps_its_range(tmp_path):
    """A float TIFF marks no-data with NaN (or infinity): those pixels read as 0 and count in no range; before, one
    NaN made the whole picture black."""
    values = np.linspace(-5, 15, 32 * 32).reshape(32, 32).astype(np.float32)
    values[:4, :4] = np.nan
    values[10, 10] = np.inf
    Image.fromarray(values).save(tmp_path / "holes.tif")
    data = ImageFolderDataModule(
        str(tmp_path), in_chans=1, image_size=32, augment=False, mean=(0.0,), std=(1.0,), num_workers=0
    )
    data.setup("fit")
    image = data.reader(train=False)(str(tmp_path / "holes.tif"))["image"][0]
    assert image.isfinite().all() and (image[:4, :4] == 0).all() and image[10, 10] == 0
    finite = np.isfinite(values)
    lowest, highest = values[finite].min(), values[finite].max()
    expected = np.rint((values - lowest) / (highest - lowest) * 255) / 255
    torch.testing.assert_close(image[finite], torch.from_numpy(expected[finite]).float(), atol=1e-6, rtol=0)


def test_a_photo_taken_turned_reads_upright(tmp_path):
    """A phone's JPEG stores its pixels as the sensor saw them and an EXIF orientation (6: turn 90 degrees
    clockwise to view): it reads as a viewer shows it, tall, with the bright band on top."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = 255  # a bright band on the left, as stored
    photo = Image.fromarray(pixels)
    exif = photo.getexif()
    exif[0x0112] = 6
    photo.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    data = ImageFolderDataModule(
        str(tmp_path), image_size=32, augment=False, in_chans=1, mean=(0.0,), std=(1.0,), num_workers=0
    )
    data.setup("fit")
    image = data.reader(train=False)(str(tmp_path / "phone.jpg"))["image"][0]  # the whole photo, 32 x 32
    assert image[:6].mean() > 0.9 and image[12:].mean() < 0.1  # the band is on top (a quarter), the rest dark


def test_corrupt_files_are_skipped_and_counted_during_fit(tmp_path):
    write_images(tmp_path, [f"{i}.png" for i in range(7)], size=(16, 16))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (tmp_path / "truncated.jpg").write_bytes((tmp_path / "0.png").read_bytes()[:40])
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=16, batch_size=3, num_workers=0, hflip=False)
    model = tiny_image_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_trainer(max_epochs=2).fit(model, dm)
    assert dm.num_skipped == 4  # two bad files, two epochs
    assert any("skipping unreadable file" in str(w.message) and "broken.png" in str(w.message) for w in caught)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no \.jpg/\.jpeg/\.png.* files under"):
        ImageFolderDataModule(root=str(tmp_path)).setup("fit")
    with pytest.raises(anymae.ConfigError, match="mean/std need 1 values"):
        ImageFolderDataModule(root=str(tmp_path), in_chans=1, mean=(0.1, 0.2, 0.3), std=(1, 1, 1))


def test_missing_optional_dependency_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # as if scikit-learn were not installed
    with pytest.raises(ImportError, match=r"pip install 'anymae-image\[digits\]'"):
        DigitsDataModule().setup("fit")


def test_augmentation_depends_only_on_seed_epoch_and_index(tmp_path):
    """Random crops are drawn per sample from (seed, epoch, index): a resumed run augments exactly as an uninterrupted
    one, with or without worker processes, and training's own random state is left alone."""
    write_images(tmp_path, [f"{i}.png" for i in range(6)], size=(64, 48))

    def epoch_batches(epoch, workers):
        dm = ImageFolderDataModule(root=str(tmp_path), image_size=16, batch_size=3, num_workers=workers)
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return torch.cat([dm.on_before_batch_transfer(b, 0)["image"] for b in loader])

    torch.manual_seed(0)
    first = epoch_batches(1, workers=0)
    torch.manual_seed(123)  # another global state changes nothing
    assert torch.equal(epoch_batches(1, workers=0), first)
    assert torch.equal(epoch_batches(1, workers=2), first)
    assert not torch.equal(epoch_batches(2, workers=0), first)


def test_unreadable_files_are_named_once_whatever_the_workers_and_totalled_per_epoch(tmp_path, capsys):
    write_images(tmp_path, [f"{i}.png" for i in range(7)], size=(16, 16))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=16, batch_size=4, num_workers=2, hflip=False)
    model = tiny_image_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_trainer(max_epochs=3).fit(model, dm)
    named = [str(w.message) for w in caught if "skipping unreadable" in str(w.message)]
    assert len(named) == 1 and "broken.png" in named[0]  # once, from the main process, not once per worker or epoch
    out = capsys.readouterr().out
    assert out.count("unreadable samples skipped, ") == 3
    assert "1 unreadable file skipped in all (3 reads: each epoch and each validation reads a file again)" in out


def test_a_folder_of_only_unreadable_files_stops_with_one_line(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(b"not a png")
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=16, batch_size=2, num_workers=0)
    model = tiny_image_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(anymae.ConfigError, match=r"every training sample of epoch 0 was unreadable \(2 skipped\)"):
            quiet_trainer(max_epochs=2).fit(model, dm)


@pytest.mark.slow
def test_unreadable_files_are_totalled_once_over_ranks_under_ddp(tmp_path):
    """Under DDP (2 CPU processes) each rank reads another share of the folder each epoch: the run's total names the
    broken file once, with the reads of it over both ranks, printed by rank 0 alone. The files are those a list file
    names (``file_list``): a broken file it does not name is never read."""
    images = tmp_path / "images"
    write_images(images, [f"{i}.png" for i in range(7)], size=(32, 32))
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (images / "unlisted.png").write_bytes(b"not listed, never read")
    (tmp_path / "train.txt").write_text("".join(f"{i}.png\n" for i in range(7)) + "broken.png\n")
    config = ROOT / "examples" / "image" / "mae_tiny_digits.yaml"
    fit = [sys.executable, "-m", "anymae.cli", "fit", "--config", str(config), "--trainer.max_epochs", "3"]
    fit += ["--data", "anymae_image.ImageFolderDataModule", "--data.root", str(images), "--data.image_size", "32"]
    fit += ["--data.file_list", str(tmp_path / "train.txt")]
    fit += ["--data.batch_size", "2", "--model.tokenizer.init_args.in_chans", "3", "--trainer.callbacks", "[]"]
    fit += ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    fit += ["--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(fit, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    totals = [line for line in result.stdout.splitlines() if "skipped in all" in line]
    assert totals == ["1 unreadable file skipped in all (3 reads: each epoch and each validation reads a file again)"]


def test_a_crop_scale_with_its_bounds_swapped_is_refused_when_parsed_and_when_built(tmp_path, capsys):
    """``anymae.ScaleRange``: the order of a crop's area bounds is a constrained type, checked by the CLI's parser
    before anything is built, and by the constructor from Python."""
    message = "crop_scale: the lower bound (first) is above the upper bound"
    with pytest.raises(anymae.ConfigError, match=re.escape(f"ImageFolderDataModule.{message} (got (0.9, 0.3))")):
        ImageFolderDataModule(str(tmp_path), crop_scale=(0.9, 0.3))
    assert ImageFolderDataModule(str(tmp_path), crop_scale=(0.5, 0.5)).crop_scale == (0.5, 0.5)
    config = ROOT / "examples" / "image" / "mae_vit_base_ddp.yaml"
    args = ["fit", "--config", str(config), "--data.init_args.crop_scale", "[0.9, 0.3]"]
    assert main([*args, "--trainer.default_root_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"anymae: error: data.{message} (got [0.9, 0.3])"


def test_a_zero_std_fails_when_the_config_is_parsed(tmp_path, capsys):
    """A standard deviation of 0 would divide every pixel by zero (torchvision then refuses each image at read time,
    and every sample is skipped): the config is refused instead, naming the field."""
    with pytest.raises(anymae.ConfigError, match=r"ImageFolderDataModule\.std\.1: Input should be greater than 0"):
        ImageFolderDataModule(str(tmp_path), std=(0.2, 0.0, 0.2))
    config = ROOT / "examples" / "image" / "mae_vit_base_imagefolder.yaml"
    args = ["fit", "--config", str(config), "--data.init_args.root", str(tmp_path)]
    assert main([*args, "--data.init_args.std", "[0.2, 0, 0.2]"]) == 2
    assert capsys.readouterr().err.strip() == "anymae: error: data.std: Input should be greater than 0 (got 0)"
