"""List files: a FolderDataModule reads the files a split's list names (ShapeNet-55's train.txt, Kinetics' ``path
label`` lines, a Kaggle ``id,label`` CSV), with the list's labels or the files' sub-folders as classes."""

from functools import partial

import pytest
import torch

from anymae import ConfigError, FolderDataModule
from anymae.data.listing import listed_files, read_file_list


def read_number(path: str) -> dict[str, torch.Tensor]:
    return {"x": torch.tensor([float(open(path).read())])}


class NumberFolder(FolderDataModule):
    """Files holding one number each: the smallest reader a folder module can have."""

    extensions = (".num", ".val")

    def reader(self, train: bool):
        return partial(read_number)


def write(root, names: list[str]) -> None:
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(str(i))


@pytest.mark.parametrize(
    ("text", "paths", "labels"),
    [
        ("a.num\nb.num\n\n", ["a.num", "b.num"], None),  # ShapeNet-55: a file per line
        ("path,label\na.num,cat\nb.num,dog\n", ["a.num", "b.num"], ["cat", "dog"]),  # a header is skipped
        ("a.num 3\nb.num 1\n", ["a.num", "b.num"], ["3", "1"]),  # Kinetics / SSv2 lists
        ("id,split,label\na,train,x\n", ["a"], ["x"]),  # the label is the last column
    ],
)
def test_list_files_in_every_layout(tmp_path, text, paths, labels):
    (tmp_path / "list.txt").write_text(text)
    assert read_file_list(str(tmp_path / "list.txt")) == (paths, labels)


def test_a_list_that_labels_some_rows_only_is_refused(tmp_path):
    (tmp_path / "list.csv").write_text("a.num,1\nb.num\n")
    with pytest.raises(ConfigError, match="some rows give a label and some do not"):
        read_file_list(str(tmp_path / "list.csv"))


def test_listed_files_resolve_ids_number_classes_and_read_sub_folders(tmp_path):
    write(tmp_path, ["cat/1.num", "cat/2.num", "dog/3.val", "dog/4.num"])
    (tmp_path / "ids.csv").write_text("id,label\ncat/1,7\ndog/3,2\n")  # extensionless ids, class ids
    files = listed_files(str(tmp_path / "ids.csv"), str(tmp_path), (".num", ".val"))
    assert files.paths == (str(tmp_path / "cat/1.num"), str(tmp_path / "dog/3.val"))
    assert files.labels == (7, 2) and files.classes == tuple(str(i) for i in range(8))

    (tmp_path / "plain.txt").write_text("dog/4.num\ncat/2.num\n")
    files = listed_files(str(tmp_path / "plain.txt"), str(tmp_path), (".num",), labeled=True)
    assert files.labels == (1, 0) and files.classes == ("cat", "dog")  # the sub-folders, sorted
    assert listed_files(str(tmp_path / "plain.txt"), str(tmp_path), (".num",)).labels is None

    (tmp_path / "wrong.txt").write_text("elsewhere/1.num\n")
    with pytest.raises(ConfigError, match="names files that are not under"):
        listed_files(str(tmp_path / "wrong.txt"), str(tmp_path), (".num",))
    (tmp_path / "names.csv").write_text("cat/1.num,tabby\n")
    with pytest.raises(ConfigError, match=r"labels \['tabby'\] are not among the training labels"):
        listed_files(str(tmp_path / "names.csv"), str(tmp_path), (".num",), classes=["cat", "dog"])


def test_a_folder_module_reads_its_splits_from_list_files(tmp_path):
    """The training list picks 3 of 5 files (an unlisted one is never read); the validation list, relative to the
    same root, labels its files with the training split's classes; a listed file that is missing is skipped and
    counted, as any unreadable file."""
    write(tmp_path / "all", ["a.num", "b.num", "c.num", "d.num", "e.num"])
    (tmp_path / "train.csv").write_text("a.num,big\nb.num,small\nmissing.num,big\n")
    (tmp_path / "val.csv").write_text("d.num,small\ne.num,big\n")
    data = NumberFolder(
        str(tmp_path / "all"), file_list=str(tmp_path / "train.csv"), val_file_list=str(tmp_path / "val.csv")
    )
    data.num_workers = 0
    data.setup("fit")
    assert data.classes == ["big", "small"]
    batch = data.on_before_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert sorted(batch["x"].flatten().tolist()) == [0.0, 1.0] and data.num_skipped == 1
    val = data.on_before_batch_transfer(next(iter(data.val_dataloader())), 0)
    assert dict(zip(val["x"].flatten().tolist(), val["label"].tolist(), strict=True)) == {3.0: 1, 4.0: 0}


def test_labeled_without_labels_needs_class_folders(tmp_path):
    write(tmp_path, ["cat/1.num", "2.num"])
    (tmp_path / "list.txt").write_text("cat/1.num\n2.num\n")
    with pytest.raises(ConfigError, match=r"'2\.num' lies in none"):
        listed_files(str(tmp_path / "list.txt"), str(tmp_path), (".num",), labeled=True)
