"""The audio plugin end to end: discovered through its entry point, the Audio-MAE example trains from WAV and FLAC
files through the ``anymae`` command and writes spectrograms, the evaluation configs score the encoder, and
``anymae fbank_stats`` measures a folder."""

from pathlib import Path

import numpy as np
import soundfile

from anymae.cli import main

from ..commands import assert_listed, evaluate, fit, folder_overlay, short_fit
from .media import tone, write_audio


def test_plugins_command_lists_the_audio_plugin(plugins_listing):
    assert_listed(
        plugins_listing,
        "anymae-audio 0.3.0 (plugin API 3): anymae_audio.plugin",
        "tokenizer: SpectrogramPatchTokenizer",
        "datamodule: AudioFolderDataModule, SynthSoundsDataModule",
        "callback: SpectrogramFigure",
        "command: fbank_stats",
        "decoder: MAEDecoder, WindowDecoder",
    )


def write_clips(folder: Path) -> None:
    for i in range(6):
        suffix = ".wav" if i % 2 else ".flac"
        write_audio(folder / f"clip{i}{suffix}", tone(250 * (i + 1), 0.7, 16000), 16000)


def test_audio_mae_example_trains_from_wav_and_flac_files_and_writes_spectrograms(tmp_path):
    """The paper-size Audio-MAE config, shrunk by an overlay to 64 frames x 32 bins (a 4 x 2 grid, so 2 x 2 windows)
    and a tiny ViT."""
    write_clips(tmp_path / "clips")
    tiny = {
        "tokenizer": {"target_length": 64, "num_mel_bins": 32},
        "encoder": {"embed_dim": 32, "depth": 1, "num_heads": 2},
        "decoder": {"embed_dim": 16, "depth": 2, "num_heads": 2, "window": [2, 2], "shift": [1, 0]},
    }
    overlay = folder_overlay(tmp_path / "clips", tiny, {"target_length": 64, "num_mel_bins": 32})
    run = fit("audio/audiomae_vit_b_audioset.yaml", tmp_path / "run", overlay=overlay)
    figures = list(run.rglob("spectrograms/final.png"))
    assert len(figures) == 1 and figures[0].stat().st_size > 0


def test_synth_knn_probe_and_esc50_finetune_configs_run_from_a_checkpoint(tmp_path):
    ckpt = short_fit("audio/audiomae_synth_sounds.yaml", tmp_path / "run")
    results = tmp_path / "rows.csv"
    evaluate("knn", "audio/knn_synth_sounds.yaml", ckpt, results)
    evaluate("probe", "audio/probe_synth_sounds.yaml", ckpt, results, "--trainer.max_epochs", "2")
    # ESC-50's layout: audio/*.wav and meta/esc50.csv with folds
    rows = ["filename,fold,target,category"]
    for i in range(10):
        write_audio(tmp_path / "esc" / "audio" / f"{i}.wav", tone(200 + 100 * i, 1.0, 44100), 44100)
        rows.append(f"{i}.wav,{i % 5 + 1},{i % 2},{'dog' if i % 2 else 'rain'}")
    (tmp_path / "esc" / "meta").mkdir()
    (tmp_path / "esc" / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    flags = ["--model.num_outputs", "2", "--data.root", str(tmp_path / "esc" / "audio")]
    flags += ["--data.labels_csv", str(tmp_path / "esc/meta/esc50.csv"), "--data.target_length", "128"]
    flags += ["--data.batch_size", "4", "--data.num_workers", "0", "--trainer.max_epochs", "1"]
    evaluate(
        "finetune", "audio/finetune_esc50.yaml", ckpt, results, *flags, "--trainer.precision", "32-true", random=False
    )
    lines = results.read_text().splitlines()
    esc = f",{tmp_path / 'esc' / 'audio'},"  # a folder's rows name the folder
    assert len(lines) == 1 + 4 + 1 and sum(esc in line for line in lines) == 1
    assert sum(",synth-sounds," in line for line in lines) == 4


def test_fbank_stats_command(tmp_path, capsys):
    write_clips(tmp_path / "clips")
    (tmp_path / "clips" / "bad.wav").write_bytes(b"not audio")
    holes = tone(300, 0.5, 16000)
    holes[5] = np.inf  # a float file's infinite sample: left out, not a NaN mean
    soundfile.write(str(tmp_path / "clips" / "inf.wav"), holes, 16000, subtype="FLOAT")
    assert main(["fbank_stats", str(tmp_path / "clips")]) == 0
    out = capsys.readouterr().out
    assert "fbank over 6 files (2 unreadable): mean " in out and "std: " in out and "nan" not in out
