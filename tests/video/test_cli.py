"""The video plugin end to end: discovered through its entry point, the VideoMAE example trains from real mp4 files
through the ``anymae`` command and writes frame strips, and the evaluation configs score the encoder."""

from pathlib import Path

import yaml

from anymae.cli import main

from .media import numbered_frames, write_video

ROOT = Path(__file__).resolve().parents[2]


def test_plugins_command_lists_the_video_plugin(plugins_listing):
    result = plugins_listing
    assert result.returncode == 0, result.stderr
    assert "anymae-video 0.3.0 (plugin API 3): anymae_video.plugin" in result.stdout
    for line in (
        "tokenizer: VideoTubeletTokenizer",
        "target: VideoPixelTarget, MotionTarget",
        "datamodule: VideoFolderDataModule, MovingDigitsDataModule",
        "callback: FrameStrips",
        "target: HOGTarget",
    ):
        assert line in result.stdout


def test_videomae_example_trains_from_mp4_files_and_writes_frame_strips(tmp_path):
    """The paper-size VideoMAE config, shrunk by an overlay to 8 frames of 32 x 32 and a tiny ViT, on mp4 files."""
    for i in range(6):
        frames = numbered_frames(24, size=40) // (1 + i % 3)
        frames[:, 8:24, 4 + i : 20 + i] = 255  # a bright square, so clips differ in space as well as in time
        write_video(tmp_path / "videos" / f"clip{i}.mp4", frames)
    overlay = {
        "trainer": {"max_epochs": 2, "precision": "32-true", "enable_progress_bar": False},
        "model": {
            "tokenizer": {"init_args": {"num_frames": 8, "image_size": 32, "patch_size": 8}},
            "encoder": {"init_args": {"embed_dim": 32, "depth": 1, "num_heads": 2}},
            "decoder": {"init_args": {"embed_dim": 16, "depth": 1, "num_heads": 2}},
        },
        "data": {
            "init_args": {
                "root": str(tmp_path / "videos"),
                "num_frames": 8,
                "sampling_rate": 2,
                "image_size": 32,
                "val_fraction": 0.34,
                "batch_size": 2,
                "num_workers": 2,
            }
        },
    }
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(overlay))
    args = ["fit", "--config", str(ROOT / "examples/video/videomae_vit_b_kinetics.yaml")]
    args += ["--config", str(tmp_path / "small.yaml"), "--trainer.default_root_dir", str(tmp_path / "run")]
    assert main(args) == 0
    strips = list((tmp_path / "run").rglob("frames/final.png"))
    assert len(strips) == 1 and strips[0].stat().st_size > 0
    assert list((tmp_path / "run").rglob("last.ckpt"))


def test_moving_digits_knn_and_probe_configs_run_from_a_checkpoint(tmp_path):
    root = tmp_path / "run"
    args = ["fit", "--config", str(ROOT / "examples/video/videomae_moving_digits.yaml"), "--trainer.max_epochs", "1"]
    args += ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.callbacks", "[]"]
    args += ["--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false"]
    assert main(args) == 0
    ckpt = next(root.rglob("*.ckpt"))
    results = tmp_path / "rows.csv"
    for protocol in ("knn", "probe"):
        args = [protocol, "--config", str(ROOT / f"examples/video/{protocol}_moving_digits.yaml")]
        args += ["--model.encoder.checkpoint", str(ckpt), "--compare-random", "--results", str(results)]
        args += ["--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"]
        args += ["--trainer.enable_checkpointing", "false"]
        if protocol == "probe":
            args += ["--trainer.max_epochs", "2"]
        assert main(args) == 0
    rows = results.read_text().splitlines()
    assert len(rows) == 1 + 4 and all(",moving-digits," in row for row in rows[1:])
