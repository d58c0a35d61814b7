"""List files: which files of a folder a split holds, and their labels, as published data sets ship them.

ShapeNet-55's ``train.txt`` (a file per line), Kinetics' and Something-Something's ``path label`` lists, a Kaggle
``id,label`` CSV: :func:`read_file_list` reads all of them, and :func:`listed_files` turns one into the
:class:`~anymae.data.samples.FileList` a :class:`~anymae.FolderDataModule` reads (its ``file_list`` argument).
"""

import csv
import os
from collections.abc import Sequence

from ..config import ConfigError
from .samples import FileList

__all__ = ["listed_files", "read_file_list"]

#: a first row whose first field is one of these names the columns: it is skipped
HEADER_WORDS = frozenset(
    {"path", "file", "filename", "file_name", "filepath", "name", "id", "image", "video", "sample"}
)


def read_file_list(path: str) -> tuple[list[str], list[str] | None]:
    """The files a list file names and, when every row gives one, their labels.

    A row is ``path``, ``path,label`` (CSV; further columns between the two are ignored, the label is the last) or
    ``path label`` (whitespace-separated, as Kinetics' and SSv2's lists). A first row whose first field is a column
    name (``path``, ``file``, ``filename``, ``id``, ``image``, ``video``...) is skipped; blank lines are skipped.
    Rows with a label and rows without one in the same file are a :class:`~anymae.ConfigError`."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            lines = [line for line in handle.read().splitlines() if line.strip()]
    except OSError as error:
        raise ConfigError(f"cannot read the list file {path!r}: {error.strerror or error}") from None
    if not lines:
        raise ConfigError(f"the list file {path!r} is empty")
    rows = csv.reader(lines) if "," in lines[0] else (line.split() for line in lines)
    paths, labels = [], []
    for number, row in enumerate(rows):
        fields = [field.strip() for field in row if field.strip()]
        if not fields or (number == 0 and fields[0].lower() in HEADER_WORDS):
            continue
        paths.append(fields[0])
        labels.append(fields[-1] if len(fields) > 1 else None)
    if not paths:
        raise ConfigError(f"the list file {path!r} lists no file")
    if all(label is None for label in labels):
        return paths, None
    if any(label is None for label in labels):
        line = labels.index(None) + 1
        raise ConfigError(f"{path}: some rows give a label and some do not (the first without: data row {line})")
    return paths, [str(label) for label in labels]


def listed_files(
    path: str, root: str, extensions: Sequence[str], classes: Sequence[str] | None = None, labeled: bool = False
) -> FileList:
    """The files of list file ``path`` (see :func:`read_file_list`), relative to ``root`` unless absolute, with their
    class indices when it gives labels, or with ``labeled`` and no labels in it, the sub-folder of ``root`` each
    listed file lies in (``airplane/airplane_0001.txt``), as :func:`~anymae.scan_folder` labels.

    A listed name without an extension (a CSV's ``id`` column) is the first of ``root/<name><extension>`` that
    exists, trying ``extensions`` in order. A listed file that does not exist stays in the list: reading it fails,
    and the data module skips and counts it as any unreadable file. Labels that are all integers are class ids
    (``"007"`` is 7; classes ``0 .. max``); other labels are class names, sorted. ``classes``: the training split's,
    so a validation list numbers them alike (a label outside them is an error)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such folder {root!r}")
    names, labels = read_file_list(path)
    paths = []
    for name in names:
        full = name if os.path.isabs(name) else os.path.join(root, name)
        if not os.path.splitext(name)[1] and not os.path.exists(full):
            full = next((full + e for e in extensions if os.path.exists(full + e)), full)
        paths.append(full)
    if not any(os.path.exists(p) for p in paths[:10]):  # a wrong root, not ten bad files: say so before training
        raise ConfigError(f"the list file {path!r} names files that are not under {root!r} (first: {paths[0]!r})")
    if labels is None and labeled:
        parts = [os.path.relpath(p, root).split(os.sep) for p in paths]
        outside = [name for name, part in zip(names, parts, strict=True) if len(part) < 2 or part[0] == os.pardir]
        if outside:
            raise ConfigError(
                f"{path}: labeled=True without a label column reads each file's class from its sub-folder of "
                f"{root!r} (class/file); {outside[0]!r} lies in none"
            )
        labels = [part[0] for part in parts]
        classes = sorted(set(labels)) if classes is None else classes
    if labels is None:
        return FileList(tuple(paths))
    if all(label.isdigit() for label in labels):  # class ids: kept as they are
        labels = [str(int(label)) for label in labels]
        if classes is None:
            classes = [str(i) for i in range(max(int(label) for label in labels) + 1)]
    elif classes is None:
        classes = sorted(set(labels))
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ConfigError(f"{path}: labels {unknown[:5]} are not among the training labels ({list(classes)[:10]})")
    return FileList(tuple(paths), tuple(index[label] for label in labels), tuple(classes))
