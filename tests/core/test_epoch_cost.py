"""What a small-data epoch costs besides its steps: loader workers kept between epochs and sent on to the next epoch's
batches as soon as this one's are handed out, a folder scanned and its loaders built once per fit, one checkpoint
serialisation per save (``last.ckpt`` and the top-k file share it), and per-sample seeding that touches the CPU
generator only. Behaviour, not timings (``benchmarks/epochs.py`` times them)."""

import os

import lightning.pytorch as pl
import pytest
import torch

import anymae
from anymae import EpochShuffleSampler, TensorSamples, make_loader, sample_rng
from anymae.training.checkpointing import AtomicCheckpointIO, Checkpoints

from .test_data_kit import write
from .toys import SeriesData, quiet_trainer, series_model, sinusoids


# --------------------------------------------------------------------------------------------------- sample seeds
def test_sample_rng_seeds_the_cpu_generator_as_manual_seed_did_and_nothing_else(monkeypatch):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        expected = torch.rand(4)
    state = torch.get_rng_state()

    def refuse(*args, **kwargs):
        raise AssertionError("sample_rng must not seed every backend")

    monkeypatch.setattr(torch, "manual_seed", refuse)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", refuse)
    with sample_rng(11):
        drawn = torch.rand(4)
    assert torch.equal(drawn, expected)  # the same augmentation as before: the CPU stream is unchanged
    assert torch.equal(torch.get_rng_state(), state)

    def unreadable():
        with sample_rng(12):
            torch.rand(2)
            raise RuntimeError("unreadable")

    with pytest.raises(RuntimeError):  # the state comes back even when reading a sample fails
        unreadable()
    assert torch.equal(torch.get_rng_state(), state)


# ------------------------------------------------------------------------------------------------------- loaders
def tag(sample: dict) -> dict:
    """Which process read the sample (a transform runs in the loader's workers)."""
    return {**sample, "pid": torch.tensor(os.getpid())}


class Tagged(anymae.DataModule):
    """Sinusoids whose samples carry their index and the pid of the worker that read them."""

    def __init__(self, n: int = 48, batch_size: int = 8, num_workers: int = 2) -> None:
        super().__init__(batch_size, num_workers, seed=0)
        self.n = n
        self.loaders = {"train": 0, "val": 0}

    def build(self):
        train = {"series": sinusoids(self.n), "index": torch.arange(self.n)}
        val = {"series": sinusoids(16, seed=1), "index": torch.arange(16)}
        return TensorSamples(train, tag), TensorSamples(val, tag)

    def train_dataloader(self):
        self.loaders["train"] += 1
        return super().train_dataloader()

    def val_dataloader(self):
        self.loaders["val"] += 1
        return super().val_dataloader()


class Record(pl.Callback):
    def __init__(self) -> None:
        self.train: dict[int, list] = {}
        self.val: dict[int, list] = {}
        self.prepared: list = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.train.setdefault(trainer.current_epoch, []).append((batch["index"].tolist(), set(batch["pid"].tolist())))

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.val.setdefault(trainer.current_epoch, []).append(set(batch["pid"].tolist()))

    def on_train_epoch_end(self, trainer, module):
        self.prepared.append(trainer.train_dataloader.prepared_epoch)


def test_workers_serve_every_epoch_and_start_on_the_next_one_before_it_begins():
    data, record = Tagged(), Record()
    quiet_trainer(max_epochs=3, callbacks=[record], num_sanity_val_steps=0).fit(series_model(), data)
    assert data.loaders == {"train": 1, "val": 1}  # built once per fit, not once per epoch
    train_pids = [set().union(*(pids for _, pids in record.train[e])) for e in range(3)]
    val_pids = [set().union(*record.val[e]) for e in range(3)]
    assert train_pids[0] == train_pids[1] == train_pids[2] and os.getpid() not in train_pids[0]  # the same workers
    assert val_pids[0] == val_pids[1] == val_pids[2] and not val_pids[0] & train_pids[0]
    # epoch 0's last batch sent the workers on to epoch 1, and so on; nothing is prepared after the last epoch
    assert record.prepared == [1, 2, None]
    for epoch in range(3):  # and the prepared epochs hold exactly the batches of their epoch's order
        sampler = EpochShuffleSampler(48, seed=0)
        sampler.set_epoch(epoch)
        assert [i for indices, _ in record.train[epoch] for i in indices] == list(sampler)


def test_an_epoch_cut_short_or_set_to_another_number_gets_its_own_batches():
    samples = TensorSamples({"index": torch.arange(12)}, tag)
    loader = make_loader(samples, 4, train=True, seed=0, num_workers=2, next_epoch=lambda: True)

    def order(epoch):
        sampler = EpochShuffleSampler(12, seed=0)
        sampler.set_epoch(epoch)
        return list(sampler)

    def run(epoch=None, stop=None):
        if epoch is not None:
            loader.sampler.set_epoch(epoch)
        seen = []
        for number, batch in enumerate(loader):
            seen += batch["index"].tolist()
            if number + 1 == stop:
                break
        return seen

    assert run(0) == order(0) and loader.prepared_epoch == 1
    assert run(5) == order(5) and loader.prepared_epoch == 6  # not the prepared epoch: dropped, epoch 5 read
    assert run(6, stop=1) == order(6)[:4] and loader.prepared_epoch is None  # the batches of epoch 6, as prepared
    assert run(7, stop=2) == order(7)[:8] and loader.prepared_epoch is None  # cut short: nothing prepared
    assert run(7) == order(7)
    plain = make_loader(samples, 4, train=True, seed=0, num_workers=2)  # no next_epoch: a DataLoader's behaviour
    assert [b["index"].tolist() for b in plain] == [b["index"].tolist() for b in plain] and plain.prepared_epoch is None


def read_series(path: str) -> dict:
    with open(path) as handle:
        offset = float(handle.read().split()[0])
    return {"series": torch.sin(torch.arange(64.0)).reshape(2, 32) + offset + torch.rand(2, 32)}


class SeriesFiles(anymae.FolderDataModule):
    extensions = (".txt",)

    def __init__(self, root: str) -> None:
        super().__init__(root, None, 0.25, False, batch_size=2, num_workers=0, seed=0)

    def reader(self, train: bool):
        return read_series


def test_the_folder_is_scanned_once_per_fit(tmp_path, monkeypatch):
    write(tmp_path, [f"x/{i}.txt" for i in range(8)])
    walks = []
    real_walk = os.walk
    monkeypatch.setattr(anymae.data.samples.os, "walk", lambda *a, **k: walks.append(a[0]) or real_walk(*a, **k))
    anymae.data.samples._scan.cache_clear()
    quiet_trainer(max_epochs=3, num_sanity_val_steps=0).fit(series_model(), SeriesFiles(str(tmp_path)))
    assert walks == [os.path.abspath(tmp_path)]  # one scan for three epochs and their validation


# --------------------------------------------------------------------------------------------------- checkpoints
def count_writes(monkeypatch) -> list[str]:
    writes = []
    real = AtomicCheckpointIO.save_checkpoint

    def save(self, checkpoint, path, storage_options=None):
        writes.append(os.path.basename(path))
        return real(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", save)
    return writes


def test_last_ckpt_and_the_epochs_checkpoint_are_serialised_once(tmp_path, monkeypatch):
    writes = count_writes(monkeypatch)
    folder = tmp_path / "checkpoints"
    callback = Checkpoints(dirpath=folder, save_last=True)
    trainer = quiet_trainer(max_epochs=2, enable_checkpointing=True, callbacks=[callback])
    trainer.fit(series_model(), SeriesData(n=64))
    assert writes == ["last.ckpt", "last.ckpt"]  # one serialisation an epoch, not two
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=1-step=4.ckpt", "last.ckpt"]  # no partial left
    assert os.path.samefile(folder / "last.ckpt", folder / "epoch=1-step=4.ckpt")
    assert callback.best_model_path == str(folder / "epoch=1-step=4.ckpt")
    assert callback.last_model_path == str(folder / "last.ckpt")
    state = torch.load(folder / "epoch=1-step=4.ckpt", weights_only=False)
    assert state["global_step"] == 4
    (saved,) = [v for k, v in state["callbacks"].items() if k.startswith("Checkpoints")]
    assert saved["best_model_path"] == callback.best_model_path and saved["last_model_path"] == callback.last_model_path
    # the next save replaces last.ckpt by a new file: an epoch checkpoint linked to the old one keeps its contents
    every = tmp_path / "every"
    callback = Checkpoints(dirpath=every, save_last=True, save_top_k=-1)
    quiet_trainer(max_epochs=2, enable_checkpointing=True, callbacks=[callback]).fit(series_model(), SeriesData(n=64))
    assert torch.load(every / "epoch=0-step=2.ckpt", weights_only=False)["global_step"] == 2
    assert torch.load(every / "last.ckpt", weights_only=False)["global_step"] == 4
    assert os.path.samefile(every / "last.ckpt", every / "epoch=1-step=4.ckpt")


def test_mid_epoch_checkpoints_share_too_and_no_hard_links_means_a_copy(tmp_path, monkeypatch):
    writes = count_writes(monkeypatch)

    def no_links(*args):
        raise OSError("no hard links here")

    monkeypatch.setattr(os, "link", no_links)
    folder = tmp_path / "checkpoints"
    callback = Checkpoints(dirpath=folder, save_last=True, every_n_train_steps=1, save_top_k=-1)
    quiet_trainer(max_epochs=1, enable_checkpointing=True, callbacks=[callback], limit_val_batches=0).fit(
        series_model(), SeriesData(n=64)
    )
    assert writes == ["last.ckpt", "last.ckpt"]  # steps 1 and 2 (the epoch's end adds nothing: step 2 is saved)
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=1.ckpt", "epoch=0-step=2.ckpt", "last.ckpt"]
    assert (folder / "epoch=0-step=2.ckpt").read_bytes() == (folder / "last.ckpt").read_bytes()
    assert torch.load(folder / "epoch=0-step=1.ckpt", weights_only=False)["global_step"] == 1


def test_without_last_ckpt_the_top_k_checkpoint_is_written_itself(tmp_path, monkeypatch):
    writes = count_writes(monkeypatch)
    folder = tmp_path / "checkpoints"
    callback = Checkpoints(dirpath=folder, save_last=False)
    quiet_trainer(max_epochs=1, enable_checkpointing=True, callbacks=[callback], limit_val_batches=0).fit(
        series_model(), SeriesData(n=64)
    )
    assert writes == ["epoch=0-step=2.ckpt"] and sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=2.ckpt"]
