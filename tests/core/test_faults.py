"""Faults that used to end in a traceback, lose good data or name the wrong thing, each now one line naming the file,
field or plugin and what to do: exit 2 for a configuration or an input, 1 for a run that stopped.

A full disk (a real tmpfs, mounted in a user namespace where the machine allows one), a checkpoint holding pickled
code, a config with a Python tag, an option given by a prefix, a window larger than the token grid, short names of a
plugin that failed to import or is not installed, a stored config outside ``ANYMAE_ALLOWED_MODULES`` loaded from
Python, and a target that masks slots through ``token_loss``'s tokens. (Resume: tests/core/test_resume.py; a bad
``.ts`` case: tests/timeseries/test_ts_rows.py; unreadable files counted once: tests/image/test_data.py.)
"""

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

import anymae
from anymae.training.checkpointing import AtomicCheckpointIO
from tests.core.test_wrong_paths import CONFIG, install, one_error, run_batch

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "image" / "mae_tiny_digits.yaml"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def error_lines(stderr: str) -> list[str]:
    return [line.removeprefix("anymae: error: ") for line in stderr.splitlines() if line.startswith("anymae: error: ")]


# ------------------------------------------------------------------------------------------------------ disk full
def can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.skipif(not can_mount_tmpfs(), reason="no user namespaces here to mount a small tmpfs in")
@pytest.mark.parametrize("ddp", [False, True], ids=["one process", "ddp"])
def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_last_good_checkpoint(tmp_path, ddp):
    """A 10 MB tmpfs holds one 6.8 MB checkpoint, not two: epoch 0's is written, epoch 1's cannot be. The run exits 1
    with one line (the folder, the space it needs, the checkpoint kept), leaves no partial file, and the logs keep
    every epoch's row. Under DDP (2 CPU processes) every rank stops (none waits at the save's barrier) and one
    says why."""
    disk = tmp_path / "disk"
    disk.mkdir()
    fit = [sys.executable, "-m", "anymae.cli", "fit", "--config", str(TINY), "--trainer.max_epochs", "3"]
    fit += ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", *QUIET]
    fit += ["--trainer.default_root_dir", str(disk)]
    fit += ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"] if ddp else []
    # the run and the look at what it left, inside the namespace: the tmpfs is gone when it ends
    script = (
        f'mount -t tmpfs -o size=10m tmpfs "{disk}" && {{ {" ".join(map(repr, fit))}; echo "exit $?" >&2; }}; '
        f'cd "{disk}/lightning_logs/version_0" && ls -a checkpoints >&2 && cat metrics.csv >&2 && '
        f'cp checkpoints/last.ckpt "{tmp_path}/kept.ckpt"'
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ANYMAE_STRICT_PLUGINS": "1"}
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert "exit 1" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    [line] = error_lines(result.stderr)
    folder = f"{disk}/lightning_logs/version_0/checkpoints"
    assert line.startswith(f"checkpoint {folder}/last.ckpt not saved: no space left on the device (")
    assert f"the last good checkpoint is {folder}/last.ckpt, intact: free some space and resume" in line
    assert "the checkpoint needs at least 6." in line  # MB: what to free
    assert ".partial" not in result.stderr  # ls of the folder: no partial file left on the full disk
    assert "\n0,1," in result.stderr and "\n1,3," in result.stderr  # metrics.csv: both epochs' validation rows
    assert torch.load(tmp_path / "kept.ckpt", weights_only=True)["epoch"] == 0  # epoch 0's checkpoint, whole


def test_a_write_that_fills_the_disk_removes_its_partial_file_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    """Where the space runs out during the write (torch reports it as 'unexpected pos'), the partial file goes and
    the checkpoint it would have replaced stays."""
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.ones(4)}, target)

    def full_disk(obj, handle):
        handle.write(b"PK" + bytes(100))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(anymae.CheckpointNotSaved, match=r"last\.ckpt not saved: no space left on the device") as caught:
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(4)}, target)
    assert f"the last good checkpoint is {target}, intact" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(4))


# -------------------------------------------------------------------------------------- through the real command
class Evil:
    """Pickles as a call of os.system: what a malicious checkpoint holds."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> dict:
    """Each case through the command's entry point, in one process whose only extra plugin, anymae-tabular, fails to
    import (it needs a library that is not installed)."""
    root = tmp_path_factory.mktemp("faults")
    site = root / "site"
    install(site, "anymae-tabular", {"parts.py": "import sklearn_that_is_not_installed  # noqa\n", "plugin.py": "pass"})
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    evil = root / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Evil(root / "pwned")}, "epoch": 0}, evil)
    tagged = root / "tagged.yaml"
    call = f"!!python/object/apply:os.system ['touch {root / 'pwned'}']"
    tagged.write_text(f"trainer:\n  max_epochs: 1\nmodel:\n  masker:\n    x: {call}\n")
    base = ["fit", "--config", str(config), "--trainer.default_root_dir", str(root / "runs")]
    tiny = ["fit", "--config", str(TINY), "--trainer.default_root_dir", str(root / "runs"), "--trainer.max_epochs", "1"]
    cases = {
        "short-name-of-a-broken-plugin": [*base, "--data", "SklearnTabularDataModule"],
        "pickled-ckpt_path": [*base, "--ckpt_path", str(evil)],
        "pickled-encoder-checkpoint": [
            "knn", "--config", str(ROOT / "examples" / "image" / "knn_digits.yaml"),
            "--model.encoder.checkpoint", str(evil), "--trainer.default_root_dir", str(root / "runs"),
        ],
        "python-tag": [*base, "--config", str(tagged)],
        "python-tag-in-a-shard-config": ["shard", "--config", str(tagged), "--out", str(root / "runs" / "shards")],
        "option-prefix": [*tiny, "--trainer.max_epoch", "2"],
        "window-larger-than-grid": [*tiny, "--model.decoder", "WindowDecoder", "--model.decoder.window", "[16, 16]"],
    }  # fmt: skip
    return run_batch(cases, root, site)


EXPECTED = {  # case: what its one line says
    "short-name-of-a-broken-plugin": (
        "data: unknown component 'SklearnTabularDataModule': no loaded plugin registers it, and anymae-tabular is "
        "BROKEN (failed to import: ModuleNotFoundError: No module named 'sklearn_that_is_not_installed'): if it comes "
        "from there, repair that plugin"
    ),
    "pickled-ckpt_path": "evil.ckpt refused: it holds a pickled Python object (posix.system) that could run code",
    "pickled-encoder-checkpoint": "evil.ckpt refused: it holds a pickled Python object (posix.system)",
    "python-tag": (
        "tagged.yaml, line 5: the tag !!python/object/apply:os.system is not allowed: a config holds plain data"
    ),
    "python-tag-in-a-shard-config": "tagged.yaml, line 5: the tag !!python/object/apply:os.system is not allowed",
    "option-prefix": "unrecognized arguments: --trainer.max_epoch 2",
    "window-larger-than-grid": "WindowDecoder.window [16, 16] is larger than the token grid 8x8",
}


@pytest.mark.parametrize("case", EXPECTED)
def test_each_fault_is_one_line_with_exit_2_and_runs_nothing(batch, case):
    assert EXPECTED[case] in one_error(batch[case])
    assert "weights_only=False" not in batch[case]["stderr"]  # no advice to load it anyway
    assert not (batch["root"] / "pwned").exists()  # no pickled or tagged call ran
    assert not (batch["root"] / "runs").exists()  # nothing trained


def test_a_short_name_no_installed_plugin_registers_says_what_to_do(capsys, tmp_path):
    from anymae.cli import main

    args = ["fit", "--config", str(TINY), "--trainer.default_root_dir", str(tmp_path), "--data", "TabularDataModule"]
    assert main(args) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(
        "data: unknown component 'TabularDataModule': no installed plugin registers it (plugins installed: anymae-audio"
    )
    assert "install the plugin that provides it (pip install <its distribution>) or give its full class path" in line
    assert "registered datamodules: " in line and "ImageFolderDataModule" in line


def test_a_misspelt_short_name_is_pointed_to_the_registered_one(capsys, tmp_path):
    from anymae.cli import main

    args = ["fit", "--config", str(TINY), "--trainer.default_root_dir", str(tmp_path), "--model.masker", "BlokMasker"]
    assert main(args) == 2
    assert "unknown component 'BlokMasker' (did you mean BlockMasker?)" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- from Python
def test_load_encoder_and_load_from_checkpoint_hold_to_the_allow_list(tmp_path, monkeypatch):
    """A stored config naming a module outside ANYMAE_ALLOWED_MODULES is refused before the module is imported, from
    Python as in the commands (an export folder, and a checkpoint)."""
    marker = tmp_path / "imported"
    (tmp_path / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').close()\n\n\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ANYMAE_ALLOWED_MODULES", "anymae_image")
    exported = tmp_path / "exported"
    exported.mkdir()
    thing = {"class_path": "evilmod.Thing"}
    (exported / "config.yaml").write_text(yaml.safe_dump({"tokenizer": thing, "encoder": thing}))
    save_file({"encoder.w": torch.zeros(1)}, exported / "encoder.safetensors")
    with pytest.raises(anymae.ConfigError, match=rf"^{exported}: evilmod\.Thing is outside ANYMAE_ALLOWED_MODULES"):
        anymae.load_encoder(exported)
    checkpoint = tmp_path / "stored.ckpt"
    torch.save({"hyper_parameters": {"tokenizer": thing, "encoder": thing}, "state_dict": {}}, checkpoint)
    with pytest.raises(anymae.ConfigError, match=r"evilmod\.Thing is outside ANYMAE_ALLOWED_MODULES"):
        anymae.load_encoder(checkpoint)
    with pytest.raises(anymae.ConfigError, match=rf"^{checkpoint}: evilmod\.Thing is outside ANYMAE_ALLOWED_MODULES"):
        anymae.MaskedAutoencoder.load_from_checkpoint(checkpoint)
    assert not marker.exists()


def test_a_pickled_checkpoint_is_refused_from_python_with_the_same_line(tmp_path):
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Evil(tmp_path / "pwned")}}, evil)
    for load in (anymae.load_encoder, anymae.MaskedAutoencoder.load_from_checkpoint):
        with pytest.raises(anymae.ConfigError, match=r"evil\.ckpt refused: it holds a pickled Python object \("):
            load(evil)
    assert not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------------------- token_loss sees the step's tokens
class SlotTokenizer(anymae.Tokenizer):
    """Series of 32 values in tokens of 4; provides ``"known"`` ``[B, N, 4]``: the values that were measured
    (``batch["known"]``); an unmeasured value is stored as 1e6."""

    @anymae.validated
    def __init__(self) -> None:
        super().__init__()
        self.token_dim, self.channels = 4, 1
        self.layout = anymae.LayoutSpec("grid", 1, (8,))
        self.provides = {"known": (4,)}

    def example_batch(self, batch_size: int = 2) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return {"series": torch.randn(batch_size, 32, generator=g), "known": torch.ones(batch_size, 32, dtype=bool)}

    def forward(self, batch, needs=frozenset()):
        provided = {"known": batch["known"].unflatten(1, (8, 4))} if "known" in needs else {}
        return anymae.TokenBatch(batch["series"].unflatten(1, (8, 4)), anymae.GridLayout((8,)), provided=provided)


class MeasuredTarget(anymae.PatchTarget):
    """Squared error over the measured values only: read from ``tokens`` in ``token_loss``, no state kept."""

    needs = anymae.PatchTarget.needs | {"known"}

    def token_loss(self, pred, target, mask, tokens=None):
        known = anymae.gather_tokens(tokens.provided["known"], mask.ids_decode)
        error = torch.where(known, (pred.float() - target.float()).pow(2), 0.0)
        return error.sum(-1) / known.sum(-1).clamp_min(1)


class OldStyleTarget(anymae.PatchTarget):
    """A ``token_loss`` written for anymae 0.3.0, without ``tokens``."""

    def token_loss(self, pred, target, mask):
        return (pred.float() - target.float()).abs().mean(dim=-1)


def slot_model(target: anymae.Target) -> anymae.MaskedAutoencoder:
    torch.manual_seed(0)
    return anymae.MaskedAutoencoder(
        tokenizer=SlotTokenizer(),
        masker=anymae.RandomMasker(mask_ratio=0.5),
        encoder=anymae.ViTEncoder(embed_dim=16, depth=1, num_heads=2),
        decoder=anymae.MAEDecoder(embed_dim=8, depth=1, num_heads=2),
        target=target,
    )


def test_token_loss_reads_which_slots_count_from_the_steps_tokens():
    model = slot_model(MeasuredTarget(normalize="none"))  # raw values: the placeholders would skew a norm
    batch = model.tokenizer.example_batch(4)
    clean = model(batch, generator=torch.Generator().manual_seed(1))
    known = torch.rand(4, 32, generator=torch.Generator().manual_seed(2)) > 0.3
    gappy = {"series": batch["series"].masked_fill(~known, 1e6), "known": known}
    out = model(gappy, generator=torch.Generator().manual_seed(1))  # the same mask
    assert torch.isfinite(out.loss) and out.loss < 100  # the 1e6 placeholders never reach the loss
    # each decoded token's loss is its measured values' squared error: recomputed here from the same predictions
    values = anymae.gather_tokens(gappy["series"].unflatten(1, (8, 4)), out.mask.ids_decode)
    slots = anymae.gather_tokens(known.unflatten(1, (8, 4)), out.mask.ids_decode)
    wanted = torch.where(slots, (out.pred - values).pow(2), 0.0).sum(-1) / slots.sum(-1).clamp_min(1)
    torch.testing.assert_close(out.token_loss, wanted)
    assert clean.loss.shape == out.loss.shape


def test_a_token_loss_without_the_tokens_parameter_still_works():
    model = slot_model(OldStyleTarget())
    out = model(model.tokenizer.example_batch(2), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.token_loss, (out.pred - out.target).abs().mean(-1))
