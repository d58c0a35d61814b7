"""The audio plugin end to end: discovered through its entry point, the Audio-MAE example trains from WAV and FLAC
files through the ``anymae`` command and writes spectrograms, the evaluation configs score the encoder, and
``anymae fbank_stats`` measures a folder."""

from pathlib import Path

import yaml

from anymae.cli import main

from .media import tone, write_audio

ROOT = Path(__file__).resolve().parents[2]


def test_plugins_command_lists_the_audio_plugin(plugins_listing):
    result = plugins_listing
    assert result.returncode == 0, result.stderr
    assert "anymae-audio 0.3.0 (plugin API 3): anymae_audio.plugin" in result.stdout
    for line in (
        "tokenizer: SpectrogramPatchTokenizer",
        "datamodule: AudioFolderDataModule, SynthSoundsDataModule",
        "callback: SpectrogramFigure",
        "command: fbank_stats",
        "decoder: MAEDecoder, WindowDecoder",
    ):
        assert line in result.stdout


def write_clips(folder: Path) -> None:
    for i in range(6):
        suffix = ".wav" if i % 2 else ".flac"
        write_audio(folder / f"clip{i}{suffix}", tone(250 * (i + 1), 0.7, 16000), 16000)


def test_audio_mae_example_trains_from_wav_and_flac_files_and_writes_spectrograms(tmp_path):
    """The paper-size Audio-MAE config, shrunk by an overlay to 64 frames x 32 bins and a tiny ViT."""
    write_clips(tmp_path / "clips")
    overlay = {
        "trainer": {"max_epochs": 2, "precision": "32-true", "enable_progress_bar": False},
        "model": {
            "tokenizer": {"init_args": {"target_length": 64, "num_mel_bins": 32}},
            "encoder": {"init_args": {"embed_dim": 32, "depth": 1, "num_heads": 2}},
            "decoder": {"init_args": {"embed_dim": 16, "depth": 2, "num_heads": 2}},
        },
        "data": {
            "init_args": {
                "root": str(tmp_path / "clips"),
                "target_length": 64,
                "num_mel_bins": 32,
                "val_fraction": 0.34,
                "batch_size": 2,
                "num_workers": 2,
            }
        },
    }
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(overlay))
    args = ["fit", "--config", str(ROOT / "examples/audio/audiomae_vit_b_audioset.yaml")]
    args += ["--config", str(tmp_path / "small.yaml"), "--trainer.default_root_dir", str(tmp_path / "run")]
    assert main(args) == 0
    figures = list((tmp_path / "run").rglob("spectrograms/final.png"))
    assert len(figures) == 1 and figures[0].stat().st_size > 0


def test_synth_knn_probe_and_esc50_finetune_configs_run_from_a_checkpoint(tmp_path):
    root = tmp_path / "run"
    args = ["fit", "--config", str(ROOT / "examples/audio/audiomae_synth_sounds.yaml"), "--trainer.max_epochs", "1"]
    args += ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.callbacks", "[]"]
    args += ["--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false"]
    assert main(args) == 0
    ckpt = next(root.rglob("*.ckpt"))
    results = tmp_path / "rows.csv"
    common = ["--model.encoder.checkpoint", str(ckpt), "--results", str(results), "--trainer.logger", "false"]
    common += ["--trainer.default_root_dir", str(tmp_path), "--trainer.enable_checkpointing", "false"]
    for protocol in ("knn", "probe"):
        args = [protocol, "--config", str(ROOT / f"examples/audio/{protocol}_synth_sounds.yaml"), "--compare-random"]
        if protocol == "probe":
            args += ["--trainer.max_epochs", "2"]
        assert main(args + common) == 0
    # ESC-50's layout: audio/*.wav and meta/esc50.csv with folds
    rows = ["filename,fold,target,category"]
    for i in range(10):
        write_audio(tmp_path / "esc" / "audio" / f"{i}.wav", tone(200 + 100 * i, 1.0, 44100), 44100)
        rows.append(f"{i}.wav,{i % 5 + 1},{i % 2},{'dog' if i % 2 else 'rain'}")
    (tmp_path / "esc" / "meta").mkdir()
    (tmp_path / "esc" / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    args = ["finetune", "--config", str(ROOT / "examples/audio/finetune_esc50.yaml"), "--model.num_outputs", "2"]
    args += ["--data.root", str(tmp_path / "esc" / "audio"), "--data.labels_csv", str(tmp_path / "esc/meta/esc50.csv")]
    args += ["--data.target_length", "128", "--data.batch_size", "4", "--data.num_workers", "0"]
    args += ["--trainer.max_epochs", "1", "--trainer.precision", "32-true"]
    assert main(args + common) == 0
    lines = results.read_text().splitlines()
    esc = f",{tmp_path / 'esc' / 'audio'},"  # a folder's rows name the folder
    assert len(lines) == 1 + 4 + 1 and sum(esc in line for line in lines) == 1
    assert sum(",synth-sounds," in line for line in lines) == 4


def test_fbank_stats_command(tmp_path, capsys):
    write_clips(tmp_path / "clips")
    (tmp_path / "clips" / "bad.wav").write_bytes(b"not audio")
    assert main(["fbank_stats", str(tmp_path / "clips")]) == 0
    out = capsys.readouterr().out
    assert "fbank over 6 files (1 unreadable): mean " in out and "std: " in out
