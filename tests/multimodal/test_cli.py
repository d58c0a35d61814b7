"""Multi-modal models from the ``anymae`` command: the embedded examples train and draw every modality, the paper-size
CAV-MAE config trains on mp4 files with their own sound, the evaluation configs read one modality or both, retrieval
runs, and ``anymae table`` reports each protocol of a suite under its own name."""

import csv

import yaml

from anymae.cli import main

from ..commands import QUIET, ROOT, evaluate, fit, folder_overlay
from .media import numbered_frames, tone, write_video

SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
FIGURES_AT_END = {
    "trainer": {"callbacks": [{"class_path": "anymae.ModalityFigures", "init_args": {"every_n_epochs": 0}}]}
}


def test_plugins_command_lists_the_multimodal_plugin(plugins_listing):
    assert plugins_listing.returncode == 0, plugins_listing.stderr
    assert "anymae-multimodal 0.3.0 (plugin API 3): anymae_multimodal.plugin" in plugins_listing.stdout
    assert (
        "PairedFolderDataModule" in plugins_listing.stdout and "AudioVisualDigitsDataModule" in plugins_listing.stdout
    )


def test_cav_mae_example_draws_both_modalities_and_every_protocol_reads_its_modalities(tmp_path):
    run = fit("multimodal/cav_mae_av_digits.yaml", tmp_path / "run", *SHORT)
    for modality in ("video", "audio"):  # the example's ModalityFigures: each modality by its plugin's figure
        assert (run / "reconstructions" / modality / "final.png").stat().st_size > 0
    ckpt = run / "checkpoints" / "last.ckpt"
    results = tmp_path / "rows.csv"
    for which in ("both", "audio", "video"):
        evaluate("knn", f"multimodal/knn_av_digits_{which}.yaml", ckpt, results, random=False)
    evaluate("probe", "multimodal/probe_av_digits_audio.yaml", ckpt, results, "--trainer.max_epochs", "2")
    evaluate("retrieval", "multimodal/retrieval_av_digits.yaml", ckpt, results)
    rows = list(csv.DictReader(results.open()))
    knn = [float(r["value"]) for r in rows if r["protocol"] == "knn"]
    assert len(knn) == 3 and len(set(knn)) == 3  # three different read-outs of one encoder
    retrieval = [r for r in rows if r["protocol"] == "retrieval"]
    assert {r["metric"] for r in retrieval} == {
        f"val/R@{k} {a}->{b}" for k in (1, 5, 10) for a, b in (("audio", "video"), ("video", "audio"))
    }
    assert {r["init"] for r in retrieval} == {"pretrained", "random"} and all(r["data"] == "av-digits" for r in rows)


def test_one_modality_baseline_and_the_other_embedded_examples_train_and_draw(tmp_path):
    for config, modalities in (
        ("cav_mae_av_digits_audio_only", ["audio"]),
        ("multimae_rgbd_scenes", ["rgb", "depth"]),
        ("mae_video_imu_digits", ["video", "imu"]),
    ):
        run = fit(f"multimodal/{config}.yaml", tmp_path / config, *SHORT)
        drawn = sorted(p.parent.name for p in (run / "reconstructions").glob("*/final.png"))
        assert drawn == sorted(modalities), config


def test_paper_size_cav_mae_config_trains_on_mp4_files_with_their_own_sound(tmp_path):
    for i in range(6):
        frames = numbered_frames(12, size=40) // (1 + i % 3)
        write_video(tmp_path / "videos" / f"clip{i}.mp4", frames, sound=tone(0.5, 16000, 300.0 + 100 * i))
    tokenizers = {
        "video": {"init_args": {"image_size": 32, "patch_size": 8}},
        "audio": {"init_args": {"target_length": 64, "num_mel_bins": 32, "patch_size": 8}},
    }
    tiny = {
        "tokenizer": {"tokenizers": tokenizers},
        "encoder": {"embed_dim": 24, "depth": 2, "modality_depth": 1, "num_heads": 2},
        "decoder": {"embed_dim": 12, "depth": 1, "num_heads": 2},
    }
    sizes = {"image_size": 32, "num_mel_bins": 32, "target_length": 64, "num_workers": 0}
    trainer = {"max_epochs": 1, "accelerator": "cpu", "strategy": "auto", "devices": 1}
    overlay = folder_overlay(tmp_path / "videos", tiny, sizes, **trainer)
    run = fit("multimodal/cav_mae_vit_b_av_folder.yaml", tmp_path / "run", overlay=overlay)
    assert list(run.rglob("last.ckpt"))
    assert sorted(p.parent.name for p in (run / "reconstructions").glob("*/final.png")) == ["audio", "video"]
    losses = list(csv.DictReader((run / "metrics.csv").open()))
    assert any(r.get("val/loss_audio") and r.get("val/loss_video") and r.get("val/loss_contrastive") for r in losses)


def test_table_names_each_protocol_of_a_suite_and_runs_retrieval_once_per_seed(tmp_path, monkeypatch):
    config = yaml.safe_load((ROOT / "examples" / "multimodal" / "cav_mae_av_digits.yaml").read_text())
    config["trainer"].update(max_epochs=1, limit_train_batches=2, limit_val_batches=1, callbacks=[])
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(config))
    suite = [
        {
            "name": "av",
            "pretrain": str(tmp_path / "pretrain.yaml"),
            "protocols": {
                "knn:audio": str(ROOT / "examples" / "multimodal" / "knn_av_digits_audio.yaml"),
                "retrieval": str(ROOT / "examples" / "multimodal" / "retrieval_av_digits.yaml"),
            },
        }
    ]
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    monkeypatch.chdir(tmp_path)
    args = ["table", "--suite", "suite.yaml", "--labels", "5", "--seeds", "0", "--root", "t", "--results", "t/r.csv"]
    assert main(args) == 0
    rows = list(csv.DictReader((tmp_path / "t" / "r.csv").open()))
    assert {r["protocol"] for r in rows} == {"knn:audio", "retrieval"}
    assert sum(r["protocol"] == "retrieval" for r in rows) == 2 * 6  # both inits, 6 recalls, no label counts
    table = (tmp_path / "t" / "table.md").read_text()
    assert "| av | knn:audio | 5 | val/acc |" in table and "| av | retrieval | all | val/R@1 audio->video |" in table


def test_a_missing_modality_in_an_evaluation_is_one_line(tmp_path, capsys):
    run = fit("multimodal/cav_mae_av_digits_audio_only.yaml", tmp_path / "run", *SHORT, "--trainer.callbacks", "[]")
    args = ["knn", "--config", str(ROOT / "examples" / "multimodal" / "knn_av_digits_video.yaml")]
    args += ["--model.encoder.checkpoint", str(run / "checkpoints" / "last.ckpt"), "--trainer.logger", "false", *QUIET]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "anymae: error: MultiModalTokenizer: cannot use modalities ['video']; it has ['audio']"


def test_a_multimodal_run_and_retrieval_under_ddp(tmp_path):
    """CAV-MAE with modality dropout and the centred contrastive term on 2 CPU processes (gloo): one figure per
    modality, written once; then retrieval gathers both ranks' clips before ranking them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    anymae = Path(sys.executable).with_name("anymae")
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu", *QUIET]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    fit = [
        str(anymae),
        "fit",
        "--config",
        str(ROOT / "examples" / "multimodal" / "cav_mae_av_digits.yaml"),
        *ddp,
        *SHORT,
    ]
    fit += ["--model.masker.init_args.drop_modality", "0.3", "--trainer.default_root_dir", str(tmp_path)]
    result = subprocess.run(fit, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("reconstructions: ") == 1
    run = tmp_path / "lightning_logs" / "version_0"
    assert sorted(p.parent.name for p in (run / "reconstructions").glob("*/final.png")) == ["audio", "video"]
    retrieval = [
        str(anymae),
        "retrieval",
        "--config",
        str(ROOT / "examples" / "multimodal" / "retrieval_av_digits.yaml"),
    ]
    retrieval += [*ddp, "--model.encoder.checkpoint", str(run / "checkpoints" / "last.ckpt"), "--results", "rows.csv"]
    result = subprocess.run(retrieval, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert len(rows) == 6 and all(0.0 <= float(r["value"]) <= 1.0 for r in rows)  # one rank wrote, once
