"""The transfer sets (benchmarks/transfer_sets.py) and their configs (examples/transfer/): a few files of every set
are written in the layout the folder data modules read, each module reads them labelled, a complete set is skipped,
and every transfer config parses and points at its set."""

import importlib.util
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "examples" / "transfer").glob("*.yaml"))
TRAIN, VAL = 2, 1  # files per class: enough to check the layout, few enough to write in a second or two


def load_generator():
    spec = importlib.util.spec_from_file_location("transfer_sets", ROOT / "benchmarks" / "transfer_sets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ts = load_generator()


@pytest.fixture(scope="module")
def sets_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("transfer-data")
    for name in ts.WRITTEN:  # the transfer sets and the tuning set beside them
        assert ts.write_set(name, root, train=TRAIN, val=VAL)
    return root


@pytest.mark.parametrize("name", sorted(ts.WRITTEN))
def test_each_set_is_written_class_by_class_in_both_splits(sets_root, name):
    spec = ts.WRITTEN[name]
    for split, count in (("train", TRAIN), ("val", VAL)):
        folder = sets_root / name / split
        assert sorted(p.name for p in folder.iterdir()) == sorted(spec.classes)
        for label in spec.classes:
            files = sorted((folder / label).iterdir())
            assert [p.suffix for p in files] == [spec.extension] * count
            assert all(p.stat().st_size > 0 for p in files)
    assert not list(sets_root.glob(".*.partial"))  # written aside, then moved into place


def test_a_complete_set_is_skipped_and_an_incomplete_one_written_again(sets_root):
    assert not ts.write_set("textures", sets_root, train=TRAIN, val=VAL)
    missing = next((sets_root / "textures" / "val" / "brick").iterdir())
    before = {p.relative_to(sets_root): p.read_bytes() for p in (sets_root / "textures").rglob("*.png")}
    missing.unlink()
    assert ts.write_set("textures", sets_root, train=TRAIN, val=VAL)
    after = {p.relative_to(sets_root): p.read_bytes() for p in (sets_root / "textures").rglob("*.png")}
    assert after == before  # the fixed seed: the same files again


def test_the_tuning_set_shares_no_photograph_with_the_transfer_set():
    assert ts.TUNING_SETS["photos"].classes and not set(ts.TUNING_SETS["photos"].classes) & set(ts.TEXTURES)


def folder_module(name: str, root: Path):
    """The folder data module each transfer config reads set ``name`` with, labelled, at the configs' sizes."""
    folders = {"root": str(root / name / "train"), "val_root": str(root / name / "val"), "labeled": True}
    common = {**folders, "augment": False, "batch_size": 2, "num_workers": 0}
    if name in ("textures", "photos"):
        from anymae_image import ImageFolderDataModule

        return ImageFolderDataModule(image_size=32, in_chans=3, **common), "image", (3, 32, 32)
    if name == "vowels":
        from anymae_audio import AudioFolderDataModule

        return AudioFolderDataModule(target_length=128, **common), "fbank", (1, 128, 128)
    if name == "shapes-drift":
        from anymae_video import VideoFolderDataModule

        module = VideoFolderDataModule(num_frames=8, sampling_rate=2, image_size=32, in_chans=3, **common)
        return module, "video", (3, 8, 32, 32)
    from anymae_pointcloud import PointCloudFolderDataModule

    return PointCloudFolderDataModule(num_points=512, **common), "points", (512, 3)


@pytest.mark.parametrize("name", sorted(ts.WRITTEN))
def test_folder_data_modules_read_the_sets_labelled(sets_root, name):
    module, key, shape = folder_module(name, sets_root)
    module.setup("fit")
    classes = sorted(ts.WRITTEN[name].classes)
    assert module.classes == classes
    assert len(module.train_set) == TRAIN * len(classes) and len(module.val_set) == VAL * len(classes)
    for dataset, index in ((module.train_set, 0), (module.val_set, len(module.val_set) - 1)):
        sample = dataset[index]
        assert isinstance(sample, dict), sample  # an unreadable file comes back as Unreadable, not a sample
        assert tuple(sample[key].shape) == shape
        assert bool(torch.isfinite(sample[key]).all())
        assert int(sample["label"]) == (0 if index == 0 else len(classes) - 1)


def data_args(config: dict) -> tuple[str, dict]:
    """The class path and arguments of a config's data module (inside FewLabels for evaluation configs)."""
    data = config["data"]
    if data["class_path"] == "anymae.evaluation.FewLabels":
        data = data["init_args"]["data"]
    return data["class_path"], data["init_args"]


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in CONFIGS])
def test_transfer_configs_parse_and_point_at_their_sets(config):
    loaded = yaml.safe_load(config.read_text())
    if config.name == "suite.yaml":
        names = [entry["name"] for entry in loaded]
        assert names == [*ts.SETS, *ts.SERIES_SETS]
        for entry in loaded:
            for path in [entry["pretrain"], *entry["protocols"].values()]:
                assert (ROOT / path).is_file(), path
            assert set(entry["protocols"]) == {"knn", "probe", "finetune"}
        return
    text = config.read_text()
    assert text.startswith("# ") and "arxiv.org" in text and "Transfer-set config" in text
    class_path, args = data_args(loaded)
    evaluation = "num_outputs" in loaded["model"]
    if "root" in args:  # a folder set: the generator's, under transfer-data/, relative to the repository root
        name = Path(args["root"]).parent.name
        assert args["root"] == f"transfer-data/{name}/train" and args["val_root"] == f"transfer-data/{name}/val"
        assert args.get("labeled", False) == evaluation
        classes = len(ts.SETS[name].classes)
    else:
        assert class_path == "anymae_timeseries.AeonDataModule" and args["name"] in ("ArrowHead", "ItalyPowerDemand")
        classes = {"ArrowHead": 3, "ItalyPowerDemand": 2}[args["name"]]
    if evaluation:
        assert loaded["model"]["num_outputs"] == classes
