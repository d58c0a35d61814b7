"""Weights from elsewhere, through the core's machinery (the formats themselves: each plugin's test_published.py):
``read_weights`` asks the registered readers and says what an unknown file holds; ``init_from`` loads each part a
file holds, checks shapes in one line and adapts a token embedding to other input channels; ``load_model``,
``anymae convert`` and ``anymae embed`` (one process and DDP) on the digits run."""

import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml

import anymae
from anymae.cli import main
from anymae.config import instantiate_component
from anymae.training.weights import init_weights

from .toys import SeriesTokenizer, series_model

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "image" / "mae_tiny_digits.yaml"


class ToyReader(anymae.WeightsReader):
    """A made-up published layout: {"weights": {"enc.<anymae encoder key>": ...}}, sizes in "meta"."""

    format = "toy"

    def detect(self, file: anymae.WeightsFile) -> bool:
        return "meta" in file.contents and any(k.startswith("enc.") for k in file.contents.get("weights", {}))

    def read(self, file: anymae.WeightsFile) -> anymae.ImportedWeights:
        meta, weights = file.contents["meta"], file.contents["weights"]
        parts = {
            "tokenizer": {"class_path": "tests.core.toys.SeriesTokenizer", "init_args": {"channels": meta["channels"]}},
            "encoder": {"class_path": "anymae.ViTEncoder", "init_args": {"embed_dim": meta["width"], "depth": 2}},
        }
        state = {f"encoder.{k.removeprefix('enc.')}": v for k, v in weights.items() if k.startswith("enc.")}
        left = [k for k in weights if not k.startswith("enc.")]
        return anymae.ImportedWeights("a toy file", parts, state, left_out=left, missing=["decoder: none here"])


def toy_file(path: Path, channels: int = 2) -> anymae.MaskedAutoencoder:
    model = series_model(tokenizer=SeriesTokenizer(channels=channels), encoder=anymae.ViTEncoder(32, 2, 2))
    weights = {f"enc.{k}": v for k, v in model.encoder.state_dict().items()} | {"head.weight": torch.zeros(3, 32)}
    torch.save({"meta": {"channels": channels, "width": 32}, "weights": weights}, path)
    return model


def test_a_reader_maps_a_file_and_an_unknown_file_says_what_it_holds(tmp_path):
    model = toy_file(tmp_path / "toy.pth")
    imported = anymae.read_weights(tmp_path / "toy.pth", readers=[ToyReader])
    assert imported.report()[0] == f"read a toy file: {len(model.encoder.state_dict())} tensors mapped (encoder)"
    assert "left out: head.weight" in imported.report() and "missing: decoder: none here" in imported.report()
    torch.save({"model": {"head.weight": torch.zeros(3, 8), "blocks.0.x": torch.zeros(2)}}, tmp_path / "cls.pth")
    with pytest.raises(anymae.ConfigError, match=r"cls\.pth: no known weights format \(2 tensors \(head\.weight, "):
        anymae.read_weights(tmp_path / "cls.pth", readers=[ToyReader])
    clip = {"token_embedding.weight": torch.zeros(4, 2), "visual.conv1.weight": torch.zeros(2, 3, 4, 4)}
    torch.save(clip, tmp_path / "clip.pt")
    with pytest.raises(anymae.ConfigError, match=r"clip\.pt: no known weights format \(2 tensors .* a text tower"):
        anymae.read_weights(tmp_path / "clip.pt", readers=[ToyReader])
    (tmp_path / "cut.pth").write_bytes((tmp_path / "toy.pth").read_bytes()[:3000])  # truncated
    with pytest.raises(anymae.ConfigError, match=r"cut\.pth cannot be read as a checkpoint"):
        anymae.read_weights(tmp_path / "cut.pth", readers=[ToyReader])


def test_init_from_loads_what_the_file_holds_and_names_a_shape_mismatch(tmp_path):
    trained = series_model()
    torch.save({"hyper_parameters": {}, "state_dict": trained.state_dict()}, tmp_path / "run.ckpt")
    torch.manual_seed(1)
    fresh = series_model()
    lines = init_weights(fresh, tmp_path / "run.ckpt")
    assert lines[0].startswith(f"init_from: the anymae checkpoint {tmp_path / 'run.ckpt'}: decoder, encoder loaded")
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, msg=key)
    wider = series_model(encoder=anymae.ViTEncoder(embed_dim=48, depth=2, num_heads=2))
    mismatch = r"init_from: encoder\.cls_token is \[1, 1, 32\] in the file and \[1, 1, 48\] in this model"
    with pytest.raises(anymae.ConfigError, match=mismatch):
        init_weights(wider, tmp_path / "run.ckpt")


def test_init_from_adapts_a_token_embedding_to_other_input_channels(tmp_path):
    """timm's rule (adapt_input_conv): 2 -> 5 channels repeats the kernel over channels, scaled by 2/5."""
    source = toy_file(tmp_path / "toy.pth", channels=2)
    model = series_model(tokenizer=SeriesTokenizer(channels=5), encoder=anymae.ViTEncoder(32, 2, 2))
    from anymae.model.published import read_weights

    with pytest.MonkeyPatch.context() as patch:  # the toy format is not a plugin's: read it with the toy reader
        patch.setattr("anymae.training.weights.read_weights", lambda path: read_weights(path, readers=[ToyReader]))
        lines = init_weights(model, tmp_path / "toy.pth")
    assert "init_from: decoder left as initialised (not in the file)" in lines
    theirs = source.encoder.token_embed.weight.reshape(32, 4, 2)  # [D, cells, channels]: our tokens are channel-last
    ours = model.encoder.token_embed.weight.reshape(32, 4, 5)
    expected = theirs.repeat(1, 1, 3)[..., :5] * (2 / 5)
    torch.testing.assert_close(ours, expected)


def test_load_from_checkpoint_does_not_read_init_from_again(tmp_path):
    model = series_model()
    torch.save({"hyper_parameters": {}, "state_dict": model.state_dict()}, tmp_path / "run.ckpt")
    torch.manual_seed(3)
    started = series_model(init_from=str(tmp_path / "run.ckpt"))
    saved = tmp_path / "started.ckpt"
    torch.save({"hyper_parameters": dict(started.hparams), "state_dict": started.state_dict()}, saved)
    (tmp_path / "run.ckpt").unlink()  # the file it started from is gone: its weights are in the checkpoint
    again = anymae.MaskedAutoencoder.load_from_checkpoint(saved)
    torch.testing.assert_close(again.encoder.norm.weight, model.encoder.norm.weight)


@pytest.fixture(scope="module")
def converted(digits_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "digits"
    checkpoint = digits_run / "runs/teacher/lightning_logs/version_0/checkpoints/last.ckpt"
    assert main(["convert", str(checkpoint), "--out", str(out)]) == 0
    return out


def test_convert_writes_a_folder_every_loader_reads(converted, digits_run, capsys):
    assert sorted(p.name for p in converted.iterdir()) == ["config.yaml", "decoder.safetensors", "encoder.safetensors"]
    config = yaml.safe_load((converted / "config.yaml").read_text())
    assert {"tokenizer", "encoder", "decoder", "target", "masker"} <= set(config)
    checkpoint = digits_run / "runs/teacher/lightning_logs/version_0/checkpoints/last.ckpt"
    batch = {"image": torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))}
    ours, original = anymae.load_model(converted), anymae.MaskedAutoencoder.load_from_checkpoint(checkpoint).eval()
    noise = torch.rand(2, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(batch, noise=noise).loss, original(batch, noise=noise).loss)
        features = anymae.load_encoder(converted)(batch).pooled
        torch.testing.assert_close(features, anymae.load_encoder(checkpoint)(batch).pooled)


def test_convert_of_an_unknown_file_is_one_line(tmp_path, capsys):
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "resnet.pth")
    assert main(["convert", str(tmp_path / "resnet.pth"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anymae: error: ")
    assert "resnet.pth: no known weights format (1 tensors (fc.weight, ...) with a classifier head)" in err
    assert not (tmp_path / "out").exists()


def test_embed_writes_every_sample_once_in_one_process_and_under_ddp(converted, tmp_path):
    """The digits split as the data module holds it: 1,617 training and 180 validation samples, labels and ids, the
    same features under DDP (2 CPU processes, rank zero writes)."""
    args = ["embed", "--config", str(TINY), "--checkpoint", str(converted), "--out", str(tmp_path / "one.npz")]
    assert main(args) == 0
    one = np.load(tmp_path / "one.npz")
    assert one["train_features"].shape == (1617, 96) and one["val_features"].shape == (180, 96)
    assert list(one["val_ids"][:3]) == [0, 1, 2] and one["train_labels"].shape == (1617,)
    data = instantiate_component(yaml.safe_load(TINY.read_text())["data"], pl.LightningDataModule)
    data.setup("fit")
    sample = data.export_samples("val")[5]
    with torch.no_grad():
        expected = anymae.load_encoder(converted)({"image": sample["image"][None]}).pooled[0]
    np.testing.assert_allclose(one["val_features"][5], expected.numpy(), atol=1e-5)
    assert one["val_labels"][5] == int(sample["label"])
    ddp = [sys.executable, "-m", "anymae.cli", *args[:-1], str(tmp_path / "two.npz")]
    ddp += ["--devices", "2", "--strategy", "ddp", "--accelerator", "cpu"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(ddp, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("wrote ") == 1
    two = np.load(tmp_path / "two.npz")
    for key in one:
        np.testing.assert_allclose(two[key], one[key], atol=1e-5, err_msg=key)


def test_embed_skips_and_counts_unreadable_files(converted, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.full((32, 32), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    data = {"class_path": "anymae_image.ImageFolderDataModule", "init_args": {"root": str(folder), "image_size": 32}}
    data["init_args"] |= {"in_chans": 1, "num_workers": 0, "batch_size": 4}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"data": data}))
    args = ["embed", "--config", str(tmp_path / "data.yaml"), "--checkpoint", str(converted)]
    assert main([*args, "--out", str(tmp_path / "f.npz"), "--splits", "train"]) == 0
    assert "train: 5 samples embedded (1 unreadable skipped)" in capsys.readouterr().out
    ids = np.load(tmp_path / "f.npz")["train_ids"]
    assert sorted(Path(p).name for p in ids) == [f"{i}.png" for i in range(5)]  # the file paths


def test_a_resumed_run_does_not_read_init_from_and_pickles_stay_refused(tmp_path, capsys):
    """``--ckpt_path`` resumes from the checkpoint's weights: the file init_from named may be gone. ``--weights_only
    false`` (which would let Lightning unpickle a checkpoint) is refused in one line."""
    from .test_wrong_paths import CONFIG

    started = series_model(  # the sizes of CONFIG's model
        encoder=anymae.ViTEncoder(embed_dim=16, depth=1, num_heads=2),
        decoder=anymae.MAEDecoder(embed_dim=8, depth=1, num_heads=2),
    )
    torch.save({"hyper_parameters": {}, "state_dict": started.state_dict()}, tmp_path / "start.ckpt")
    config = {**CONFIG, "trainer": {**CONFIG["trainer"], "logger": True, "enable_checkpointing": True}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    args = ["fit", "--config", str(tmp_path / "config.yaml"), "--trainer.default_root_dir", str(tmp_path / "runs")]
    assert main([*args, "--model.init_from", str(tmp_path / "start.ckpt")]) == 0
    (tmp_path / "start.ckpt").unlink()
    resume = [*args, "--model.init_from", str(tmp_path / "start.ckpt"), "--ckpt_path", "last"]
    assert main([*resume, "--trainer.max_epochs", "2"]) == 0
    assert "resumed from " in capsys.readouterr().out
    assert main([*args, "--weights_only", "false"]) == 2
    assert "weights_only: anymae reads checkpoints as tensors and plain data only" in capsys.readouterr().err


def test_init_from_a_whole_model_over_other_channels_keeps_the_prediction_head(tmp_path):
    """An MAE with a decoder, started on 5 channels from a 2-channel file: the token embedding is adapted, every other
    weight loaded, and the decoder's prediction head (which predicts other values) stays as initialised."""
    source = series_model()
    torch.save({"hyper_parameters": {}, "state_dict": source.state_dict()}, tmp_path / "two.ckpt")
    model = series_model(tokenizer=SeriesTokenizer(channels=5))
    lines = init_weights(model, tmp_path / "two.ckpt")
    head = [
        k for k, v in model.state_dict().items() if k.startswith("decoder.") and v.shape != source.state_dict()[k].shape
    ]
    assert head and f"init_from: {', '.join(head)} left as initialised (it predicts other channels)" in lines
    torch.testing.assert_close(model.encoder.blocks[0].attn.qkv.weight, source.encoder.blocks[0].attn.qkv.weight)
    torch.testing.assert_close(model.decoder.blocks[0].mlp.fc1.weight, source.decoder.blocks[0].mlp.fc1.weight)


def test_files_that_are_no_checkpoint_are_one_line_and_legacy_files_load(tmp_path):
    from anymae.model.published import load_checkpoint

    (tmp_path / "garbage.pth").write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00" + bytes(50))
    for mmap in (False, True):
        with pytest.raises(anymae.ConfigError, match=r"garbage\.pth cannot be read as a checkpoint \(Unpickling"):
            load_checkpoint(tmp_path / "garbage.pth", mmap=mmap)
    torch.save({"model": {"w": torch.ones(2)}}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(tmp_path / "legacy.pth", mmap=True)["model"]["w"], torch.ones(2))


def test_a_broken_folder_is_one_line_and_an_export_leaves_no_stale_decoder(converted, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(converted, folder)
    assert main(["export", str(folder), "--out", str(folder)]) == 0  # an encoder export into a folder with a decoder
    assert not (folder / "decoder.safetensors").exists()  # which would no longer match the encoder
    (folder / "config.yaml").write_text("encoder: [unclosed\n")
    with pytest.raises(anymae.ConfigError, match=r"config\.yaml is not valid YAML"):
        anymae.load_encoder(folder)
    (folder / "config.yaml").write_text((converted / "config.yaml").read_text())
    (folder / "encoder.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(anymae.ConfigError, match=r"encoder\.safetensors cannot be read"):
        anymae.load_encoder(folder)
