"""Multi-band images (issue 26): 8- and 16-bit TIFFs and .npy arrays with the band axis first or last, standardised
per band; files with another band count skipped and counted; ``anymae band_stats``; the example config trains."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

import anymae
from anymae.cli import main
from anymae_image import ImagePatchTokenizer, MultiBandFolderDataModule, read_bands

from ..commands import fit
from ..core.toys import quiet_trainer

BANDS = 5
MEAN = [100.0, 200.0, 300.0, 400.0, 500.0]
STD = [10.0, 20.0, 30.0, 40.0, 50.0]


def write_bands(path: Path, pixels: np.ndarray, last: bool = False) -> np.ndarray:
    """Write ``pixels`` ([C, H, W]) to ``path`` (.tif or .npy), band axis last when ``last``; returns ``pixels``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = np.moveaxis(pixels, 0, -1) if last else pixels
    if path.suffix == ".npy":
        np.save(path, stored)
    else:
        tifffile.imwrite(path, stored, photometric="minisblack")  # bands, not RGB, whatever their number
    return pixels


def random_pixels(seed: int, dtype=np.uint16, bands: int = BANDS, size: int = 32) -> np.ndarray:
    high = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1000
    return np.random.default_rng(seed).integers(0, high, (bands, size, size)).astype(dtype)


def write_folder(root: Path, dtype=np.uint16, count: int = 4) -> dict[str, np.ndarray]:
    """``count`` files in the four layouts (TIFF and .npy, band axis first and last), by file name."""
    layouts = [("tif", False), ("tif", True), ("npy", False), ("npy", True)]
    files = {}
    for i in range(count):
        ext, last = layouts[i % 4]
        name = f"{i:02d}_{'last' if last else 'first'}.{ext}"
        files[name] = write_bands(root / name, random_pixels(i, dtype), last)
    return files


def tiny_model(bands: int = BANDS, size: int = 16) -> anymae.MaskedAutoencoder:
    return anymae.MaskedAutoencoder(
        tokenizer=ImagePatchTokenizer(image_size=size, patch_size=8, in_chans=bands),
        masker=anymae.RandomMasker(),
        encoder=anymae.ViTEncoder(embed_dim=16, depth=1, num_heads=2),
        decoder=anymae.MAEDecoder(embed_dim=8, depth=1, num_heads=2),
        target=anymae.PatchTarget(),
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_files_read_band_first_or_last_as_float32_standardised_per_band(tmp_path, dtype):
    files = write_folder(tmp_path, dtype)
    # evaluation transform: resize to int(28 / 0.875) = 32 (the files' size: unchanged), centre crop 28
    dm = MultiBandFolderDataModule(
        root=str(tmp_path), bands=BANDS, mean=MEAN, std=STD, image_size=28, augment=False, num_workers=0
    )
    dm.setup("fit")
    mean, std = np.array(MEAN, np.float32)[:, None, None], np.array(STD, np.float32)[:, None, None]
    for index, (name, pixels) in enumerate(sorted(files.items())):
        image = dm.train_set[index]["image"]
        assert image.shape == (BANDS, 28, 28) and image.dtype == torch.float32, name
        expected = (pixels[:, 2:30, 2:30].astype(np.float32) - mean) / std  # no rescaling to [0, 1], no clipping
        torch.testing.assert_close(image, torch.from_numpy(expected), rtol=1e-6, atol=1e-6)
        assert image[4, 0, 0].item() == pytest.approx((float(pixels[4, 2, 2]) - 500.0) / 50.0, rel=1e-6)
    if dtype == np.uint16:  # 16-bit values far above 255 are kept as they are
        assert float(dm.train_set[0]["image"].max()) > (255 - MEAN[0]) / STD[0]


def test_training_crops_and_flips_all_bands_to_the_image_size(tmp_path):
    write_folder(tmp_path, count=4)
    dm = MultiBandFolderDataModule(root=str(tmp_path), bands=BANDS, mean=MEAN, std=STD, image_size=16, num_workers=0)
    dm.setup("fit")
    batch = dm.on_before_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch["image"].shape == (4, BANDS, 16, 16) and batch["image"].dtype == torch.float32


def test_the_band_axis_is_the_one_of_the_configured_length(tmp_path):
    pixels = random_pixels(0, bands=13, size=12)  # 13 bands of 12 x 12: the band axis is the longer one here
    write_bands(tmp_path / "a.tif", pixels, last=True)
    assert np.array_equal(read_bands(str(tmp_path / "a.tif"), bands=13), pixels)
    assert read_bands(str(tmp_path / "a.tif")).shape == (12, 12, 13)  # unset: the shorter of the first and last
    write_bands(tmp_path / "b.npy", pixels[0, :6])  # 2-D: one band
    assert read_bands(str(tmp_path / "b.npy")).shape == (1, 6, 12)


def test_a_file_with_another_band_count_is_skipped_and_counted_during_fit(tmp_path):
    write_folder(tmp_path, count=5)
    write_bands(tmp_path / "three.tif", random_pixels(9, bands=3))
    dm = MultiBandFolderDataModule(
        root=str(tmp_path), bands=BANDS, mean=MEAN, std=STD, image_size=16, batch_size=3, num_workers=0
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_trainer(max_epochs=2).fit(tiny_model(), dm)
    assert dm.num_skipped == 2  # one file, two epochs
    assert dm.unreadable_sources == {f"file {tmp_path / 'three.tif'}"}
    named = [str(w.message) for w in caught if "skipping unreadable" in str(w.message)]
    assert len(named) == 1 and "three.tif: 3 bands (shape (3, 32, 32)), expected 5" in named[0]


def test_statistics_of_the_wrong_length_or_unset_are_one_line_each(tmp_path):
    with pytest.raises(anymae.ConfigError) as error:
        MultiBandFolderDataModule(root=str(tmp_path), bands=5, mean=[0.0, 1.0, 2.0], std=STD)
    assert str(error.value) == "MultiBandFolderDataModule.mean has 3 values but bands is 5: one per band"
    with pytest.raises(anymae.ConfigError, match="std has 6 values but bands is 5"):
        MultiBandFolderDataModule(root=str(tmp_path), bands=5, mean=MEAN, std=[1.0] * 6)
    write_folder(tmp_path, count=1)
    with pytest.raises(anymae.ConfigError, match=r"mean and std unset: `anymae band_stats --root .* --bands 5`"):
        MultiBandFolderDataModule(root=str(tmp_path), bands=5).setup("fit")


def test_band_stats_prints_each_bands_mean_and_std_as_yaml(tmp_path, capsys):
    files = write_folder(tmp_path / "tiles", count=6)
    (tmp_path / "tiles" / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    assert main(["band_stats", "--root", str(tmp_path / "tiles")]) == 0
    out = capsys.readouterr().out
    stats = yaml.safe_load(out)
    pixels = np.concatenate([p.reshape(BANDS, -1).astype(np.float64) for p in files.values()], axis=1)
    np.testing.assert_allclose(stats["mean"], pixels.mean(axis=1), rtol=1e-7)
    np.testing.assert_allclose(stats["std"], pixels.std(axis=1), rtol=1e-7)
    assert out.startswith("# 5 bands over 6 files under ") and "(1 unreadable)" in out

    write_bands(tmp_path / "tiles" / "three.tif", random_pixels(9, bands=3))  # mixed band counts
    assert main(["band_stats", "--root", str(tmp_path / "tiles")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mixed band counts" in err[0] and "pass --bands N" in err[0]
    assert main(["band_stats", "--root", str(tmp_path / "tiles"), "--bands", "5", "--max-files", "7"]) == 0
    assert "with another band count" in capsys.readouterr().out

    (tmp_path / "empty").mkdir()
    assert main(["band_stats", "--root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"anymae: error: band_stats: no .tif/.tiff/.npy files under {str(tmp_path / 'empty')!r}"]


def test_example_config_trains_on_a_folder_of_tiffs(tmp_path, monkeypatch, capsys):
    bands = 10  # the example's
    for i in range(4):
        write_bands(tmp_path / "tiles" / f"{i}.tif", random_pixels(i, bands=bands, size=40), last=bool(i % 2))
    assert main(["band_stats", "--root", str(tmp_path / "tiles"), "--bands", str(bands)]) == 0
    stats = yaml.safe_load(capsys.readouterr().out)  # pasted under data.init_args, as the header says
    monkeypatch.chdir(tmp_path)
    run = fit(
        "image/mae_multiband_folder.yaml",
        tmp_path,
        *["--data.root", str(tmp_path / "tiles"), "--data.image_size", "32", "--data.batch_size", "2"],
        *["--data.num_workers", "0", "--model.tokenizer.init_args.image_size", "32"],
        *["--model.encoder.init_args.embed_dim", "16", "--model.encoder.init_args.depth", "1"],
        *["--model.encoder.init_args.num_heads", "2", "--model.decoder.init_args.embed_dim", "8"],
        *["--model.decoder.init_args.depth", "1", "--model.decoder.init_args.num_heads", "2"],
        *["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.callbacks", "[]"],
        *["--trainer.precision", "32-true"],
        overlay={"data": {"init_args": stats}},
    )
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_missing_pixels_take_their_bands_mean_and_band_stats_leaves_them_out(tmp_path, capsys):
    """Float rasters mark no-data with NaN or a value of their own (-9999 here): such pixels become the band's
    mean, 0 after standardisation, never a NaN loss; ``band_stats`` counts only the pixels that are there."""
    files = write_folder(tmp_path / "tiles", np.float32, count=2)
    pixels = files["00_first.tif"].copy()
    pixels[1, 2:6, 2:6] = np.nan
    pixels[2, 3, 3] = np.inf
    pixels[3, 2:4, 2:6] = -9999.0
    write_bands(tmp_path / "tiles" / "00_first.tif", pixels)
    dm = MultiBandFolderDataModule(
        root=str(tmp_path / "tiles"), bands=BANDS, mean=MEAN, std=STD, nodata=-9999, image_size=28, augment=False
    )
    dm.num_workers = 0
    dm.setup("fit")
    image = dm.train_set[0]["image"]  # centre crop 28 of 32: pixel (2, 2) of the file is (0, 0) here
    assert image.isfinite().all()
    assert (image[1, 0:4, 0:4] == 0).all() and image[2, 1, 1] == 0 and (image[3, 0:2, 0:4] == 0).all()
    expected = (pixels[0, 2:30, 2:30] - MEAN[0]) / STD[0]  # the other bands' values are kept
    torch.testing.assert_close(image[0], torch.from_numpy(expected), rtol=1e-6, atol=1e-6)
    assert image[1, 5, 5] == pytest.approx((float(pixels[1, 7, 7]) - MEAN[1]) / STD[1], rel=1e-6)

    assert main(["band_stats", "--root", str(tmp_path / "tiles"), "--nodata", "-9999"]) == 0
    out = capsys.readouterr().out
    stats = yaml.safe_load(out)
    values = np.concatenate([pixels.reshape(BANDS, -1), files["01_last.tif"].reshape(BANDS, -1)], axis=1)
    values = np.where(np.isfinite(values) & (values != -9999.0), values, np.nan).astype(np.float64)
    np.testing.assert_allclose(stats["mean"], np.nanmean(values, axis=1), rtol=1e-7)
    np.testing.assert_allclose(stats["std"], np.nanstd(values, axis=1), rtol=1e-7)
    assert "2032 to 2048 pixels per band (25 missing left out)" in out  # 16 NaN, 1 infinite, 8 no-data

    blank = np.full((BANDS, 8, 8), np.nan, np.float32)
    blank[0] = 1.0  # every band but the first is missing everywhere
    write_bands(tmp_path / "blank" / "a.npy", blank)
    assert main(["band_stats", "--root", str(tmp_path / "blank")]) == 2
    assert "band 1, 2, 3, 4 (counting from 0) has no pixel that is not missing" in capsys.readouterr().err
