"""The data kit: folder scans (labelled or not, by extension, cached), deterministic splits, skip-and-count reading,
per-sample seeds, and the loaders a kit data module gets."""

import warnings
from functools import partial
from pathlib import Path

import pytest
import torch

import anymae
from anymae import FolderDataModule, TensorSamples, scan_folder, split_indices


def write(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("1 2 3\n" if "bad" not in name else "not numbers\n")


def test_scan_folder_filters_extensions_reads_labels_and_caches(tmp_path):
    write(tmp_path, ["a/1.txt", "a/2.TXT", "b/1.txt", "b/skip.csv", "top.txt", "a/.hidden.txt"])
    files = scan_folder(tmp_path, [".txt"])
    relative = [str(Path(p).relative_to(tmp_path)) for p in files.paths]
    assert relative == ["a/1.txt", "a/2.TXT", "b/1.txt", "top.txt"] and files.labels is None  # sorted, no hidden
    labelled = scan_folder(tmp_path, [".txt"], labeled=True)
    assert labelled.classes == ("a", "b") and labelled.labels == (0, 0, 1)  # files at the top level have no class
    write(tmp_path, ["a/3.txt"])
    assert len(scan_folder(tmp_path, [".txt"], labeled=True)) == 3  # cached between setups
    assert len(scan_folder(tmp_path, [".txt"], labeled=True, refresh=True)) == 4
    write(tmp_path / "val", ["a/1.txt", "c/1.txt"])
    with pytest.raises(anymae.ConfigError, match=r"has classes \['c'\] that the training folder does not have"):
        scan_folder(tmp_path / "val", [".txt"], labeled=True, classes=("a", "b"))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        scan_folder(tmp_path / "missing", [".txt"])


def test_labelled_scans_refuse_what_cannot_be_a_class(tmp_path):
    write(tmp_path / "flat", ["1.txt", "2.txt"])
    with pytest.raises(anymae.ConfigError, match=r"has none \(2 matching files lie directly under it\)"):
        scan_folder(tmp_path / "flat", [".txt"], labeled=True)
    write(tmp_path / "kit", ["a/1.txt", ".ipynb_checkpoints/a/1.txt", "b/notes.md"])
    with pytest.raises(anymae.ConfigError, match=r"class folders \['b'\] hold no file with extension .txt"):
        scan_folder(tmp_path / "kit", [".txt"], labeled=True)
    (tmp_path / "kit" / "b" / "1.txt").write_text("4 5 6\n")
    files = scan_folder(tmp_path / "kit", [".txt"], labeled=True)
    assert files.classes == ("a", "b") and len(files) == 2  # the hidden folder is neither a class nor data
    assert len(scan_folder(tmp_path / "kit", [".txt"])) == 2


def test_split_indices_is_a_deterministic_partition():
    train, val = split_indices(50, 0.2, seed=3)
    assert len(val) == 10 and sorted(train + val) == list(range(50))
    assert split_indices(50, 0.2, seed=3) == (train, val) and split_indices(50, 0.2, seed=4) != (train, val)
    assert split_indices(5, 0.0, seed=0)[1] == [] and len(split_indices(5, 0.01, seed=0)[1]) == 1


def read_numbers(path: str, scale: float) -> dict[str, torch.Tensor]:
    with open(path) as handle:
        values = [float(v) for v in handle.read().split()]  # ValueError on a bad file
    return {"values": torch.tensor(values) * scale + torch.rand(3)}  # a random "augmentation"


class NumbersDataModule(FolderDataModule):
    """A file format in a few lines: the kit does the rest."""

    extensions = (".txt",)

    @anymae.validated
    def __init__(
        self, root: str, labeled: bool = False, val_fraction: float = 0.25, batch_size: int = 2, num_workers: int = 0
    ) -> None:
        super().__init__(root, None, val_fraction, labeled, batch_size, num_workers, seed=0)

    def reader(self, train: bool):
        return partial(read_numbers, scale=2.0 if train else 1.0)


def test_a_folder_data_module_is_its_format_only(tmp_path):
    write(tmp_path, [f"x/{i}.txt" for i in range(6)] + ["y/bad.txt", "y/1.txt"])
    data = NumbersDataModule(root=str(tmp_path), labeled=True)
    data.setup("fit")
    assert data.classes == ["x", "y"] and len(data.train_set) == 6 and len(data.val_set) == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = [
            data.on_before_batch_transfer(b, 0)
            for loader in (data.train_dataloader(), data.val_dataloader())
            for b in loader
        ]
    assert data.num_skipped == 1 and any("skipping unreadable file" in str(w.message) for w in caught)
    assert sum(len(b.get("label", [])) for b in batches) == 7
    assert all("_skipped" not in b for b in batches)
    loader = data.train_dataloader()
    assert loader.drop_last and loader.sampler.sample_seeds  # MAE drops the last partial batch; seeded samples

    def epoch(number):
        loader.sampler.set_epoch(number)
        return torch.cat([data.on_before_batch_transfer(b, 0)["values"] for b in loader])

    first = epoch(1)
    torch.manual_seed(123)  # the global random state changes nothing: each sample draws from its own seed
    assert torch.equal(epoch(1), first) and not torch.equal(epoch(2), first)


def test_tensor_samples_transform_draws_from_the_sample_seed():
    samples = TensorSamples(
        {"x": torch.zeros(4, 2), "label": torch.arange(4)}, transform=lambda s: {**s, "x": s["x"] + torch.rand(2)}
    )
    assert torch.equal(samples.labels, torch.arange(4))
    assert torch.equal(samples[(1, 7)]["x"], samples[(1, 7)]["x"]) and not torch.equal(
        samples[(1, 7)]["x"], samples[(1, 8)]["x"]
    )
    with pytest.raises(ValueError, match="different lengths"):
        TensorSamples({"x": torch.zeros(4), "y": torch.zeros(3)})


def test_an_empty_training_split_is_one_line(tmp_path):
    class Empty(anymae.DataModule):
        def build(self):
            return TensorSamples({"x": torch.zeros(0, 2)}), None

    with pytest.raises(anymae.ConfigError, match="Empty: the training split is empty"):
        Empty(batch_size=2, num_workers=0, seed=0).setup("fit")
