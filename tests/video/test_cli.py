"""The video plugin end to end: discovered through its entry point, the VideoMAE example trains from real mp4 files
through the ``anymae`` command and writes frame strips, and the evaluation configs score the encoder."""

from ..commands import assert_listed, evaluate, fit, folder_overlay, short_fit
from .media import numbered_frames, write_video


def test_plugins_command_lists_the_video_plugin(plugins_listing):
    assert_listed(
        plugins_listing,
        "anymae-video 0.3.0 (plugin API 3): anymae_video.plugin",
        "tokenizer: VideoTubeletTokenizer",
        "target: VideoPixelTarget, MotionTarget",
        "datamodule: VideoFolderDataModule, MovingDigitsDataModule",
        "callback: FrameStrips",
        "target: HOGTarget",
    )


def test_videomae_example_trains_from_mp4_files_and_writes_frame_strips(tmp_path):
    """The paper-size VideoMAE config, shrunk by an overlay to 8 frames of 32 x 32 and a tiny ViT, on mp4 files."""
    for i in range(6):
        frames = numbered_frames(24, size=40) // (1 + i % 3)
        frames[:, 8:24, 4 + i : 20 + i] = 255  # a bright square, so clips differ in space as well as in time
        write_video(tmp_path / "videos" / f"clip{i}.mp4", frames)
    tiny = {
        "tokenizer": {"num_frames": 8, "image_size": 32, "patch_size": 8},
        "encoder": {"embed_dim": 32, "depth": 1, "num_heads": 2},
        "decoder": {"embed_dim": 16, "depth": 1, "num_heads": 2},
    }
    overlay = folder_overlay(tmp_path / "videos", tiny, {"num_frames": 8, "sampling_rate": 2, "image_size": 32})
    run = fit("video/videomae_vit_b_kinetics.yaml", tmp_path / "run", overlay=overlay)
    strips = list(run.rglob("frames/final.png"))
    assert len(strips) == 1 and strips[0].stat().st_size > 0
    assert list(run.rglob("last.ckpt"))


def test_moving_digits_knn_and_probe_configs_run_from_a_checkpoint(tmp_path):
    ckpt = short_fit("video/videomae_moving_digits.yaml", tmp_path / "run")
    results = tmp_path / "rows.csv"
    evaluate("knn", "video/knn_moving_digits.yaml", ckpt, results)
    evaluate("probe", "video/probe_moving_digits.yaml", ckpt, results, "--trainer.max_epochs", "2")
    rows = results.read_text().splitlines()
    assert len(rows) == 1 + 4 and all(",moving-digits," in row for row in rows[1:])
