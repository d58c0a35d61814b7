"""The anymae command on toy components: YAML in, checkpoint out; configuration errors end in one line."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from anymae.cli import main

TOY_CONFIG = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 2, "accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False},
    "model": {
        "tokenizer": {"class_path": "tests.core.toys.SeriesTokenizer"},
        "masker": {"class_path": "RandomMasker", "init_args": {"mask_ratio": 0.5}},  # a registered short name
        "encoder": {"class_path": "anymae.ViTEncoder", "init_args": {"embed_dim": 16, "depth": 1, "num_heads": 2}},
        "decoder": {"class_path": "anymae.MAEDecoder", "init_args": {"embed_dim": 8, "depth": 1, "num_heads": 2}},
        "target": {"class_path": "anymae.PatchTarget", "init_args": {"normalize": "channel"}},
        "lr_schedule": {"warmup_epochs": 1},
    },
    "data": {"class_path": "tests.core.toys.SeriesData", "init_args": {"n": 64}},
}


@pytest.fixture
def toy_config(tmp_path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(TOY_CONFIG))
    return path


def test_import_pulls_no_plugin_and_no_heavy_modality_library():
    code = (
        "import sys, anymae; "
        "bad = [m for m in ('torchaudio', 'open3d', 'anymae_image', 'sklearn') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fit_from_yaml_writes_checkpoint_and_config(toy_config, tmp_path, capsys):
    assert main(["fit", "--config", str(toy_config), "--trainer.default_root_dir", str(tmp_path)]) == 0
    run = tmp_path / "lightning_logs" / "version_0"
    checkpoints = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert checkpoints == ["epoch=1-step=4.ckpt", "last.ckpt"]  # the latest epoch's, and last.ckpt to resume from
    assert f"checkpoint: {run / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["masker"]["init_args"]["mask_ratio"] == 0.5
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    val = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert len(val) == 2 and all(v > 0 for v in val)  # one real validation loss per epoch


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (["--model.masker.mask_ratio", "1.5"], "model.masker.mask_ratio: Input should be less than 1 (got 1.5)"),
        (
            ["--model.masker", "NoSuchMasker"],
            "model.masker: unknown component 'NoSuchMasker': no installed plugin registers it (plugins installed: "
            "anymae-audio",
        ),
        (["--model.target.normalize", "pixels"], "model.target.normalize: allowed: 'none', 'patch', 'channel'"),
        (["--model.decoder.out_dim", "3"], "MAEDecoder.out_dim is 3 but the target predicts 8 values per token"),
        (["--model.encoder.num_heads", "3"], "ViTEncoder.embed_dim (16) must be divisible by num_heads (3)"),
        (["--trainer.max_epochs", "many"], "trainer.max_epochs: expected int (got many)"),
        (["--data", "tests.core.toys.Nope"], "data: module 'tests.core.toys' has no attribute 'Nope'"),
        (
            ["--model.masker", "anymae.ViTEncoder"],
            "model.masker: anymae.ViTEncoder is registered as an encoder, not as a masker",
        ),
        (["--model.optimizer.lr", "-1"], "model.optimizer.lr: Input should be greater than 0 (got -1)"),
        (  # parses (0 < 0.999 < 1), but keeps no token of 8 visible: the build's dry run says so
            ["--model.masker.mask_ratio", "0.999"],
            "model.masker: RandomMasker failed on the tokenizer's example batch: ValueError: RandomMasker keeps 0 of 8",
        ),
    ],
)
def test_configuration_errors_are_one_line(toy_config, tmp_path, capsys, override, expected):
    args = ["fit", "--config", str(toy_config), "--trainer.default_root_dir", str(tmp_path), *override]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anymae: error: ") and expected in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "lightning_logs").exists()  # nothing trained, nothing written


MASK_GRIDS = {
    "RandomMasker": "14x14",
    "BlockMasker": "14x14",
    "LargePatchMasker": "14x14",
    "TubeMasker": "8x14x14",
    "SpectrogramMasker": "64x8",
    "FilteredNoiseMasker": "14x14",
    "DualMasker": "8x14x14",
    "NearestBlockMasker": "14x14",
    "AdaptiveMasker": "14x14",  # the learned maskers, drawn without a model: random (--checkpoint draws learned ones)
    "HardPatchesMasker": "14x14",
    "AttentionMasker": "14x14",
}


def test_every_registered_masker_has_a_masks_example(capsys):
    from anymae import load_plugins

    registered = {c.name for c in load_plugins(autoload=False).registry.of_kind("masker")}
    # MultiModalMasker masks several modalities' tokens at once: on one grid it says so in one line
    assert registered == {*MASK_GRIDS, "MultiModalMasker"}
    assert main(["masks", "--masker", "MultiModalMasker", "--grid", "4x4", "--out", "unused.png"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anymae: error: MultiModalMasker masks a multi-modal tokenizer's tokens") and "\n" not in err


@pytest.mark.parametrize(("masker", "grid"), MASK_GRIDS.items())
def test_masks_command_writes_a_png(masker, grid, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "masks.png"
    args = ["masks", "--masker", masker, "--grid", grid, "--samples", "3", "--out", str(out)]
    if masker == "DualMasker":
        args += ["--args", "masker={class_path: TubeMasker}", "decoder_ratio=0.5"]
    assert main(args) == 0
    assert f"{out}: 3 masks of {masker}" in capsys.readouterr().out
    dims = [int(n) for n in grid.split("x")]
    frames, (h, w) = (dims[0] if len(dims) == 3 else 1), dims[-2:]
    with Image.open(out) as image:  # 3 rows of frames of 8-px tokens, 4-px gaps
        assert image.size == (4 + frames * (w * 8 + 4), 4 + 3 * (h * 8 + 4))
        assert len(np.unique(np.asarray(image))) >= 3  # background, visible, hidden
