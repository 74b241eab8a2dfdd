"""Image folders: listing a folder of class folders, matching its classes to a model's.

`folder_files` lists a class-folder tree (refusing a dataset's folder of splits,
`dataset_splits`, and naming a file that is no image), `match_class_names` matches its
folders to a model's classes by name (`read_class_names` reads one name per line), and
`balanced_subset` picks a seeded, class-balanced subset. Files are checked with the limits of
`tf_signsal.data.files`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from tf_signsal import _checks
from tf_signsal.data.files import (
    IMAGE_EXTENSIONS,
    SkippedImageWarning,
    _decoded_format,
    _format_problem,
    _header,
    _walk_images,
)

SPLIT_NAMES: tuple[str, ...] = ("test", "val", "validation", "valid", "train")
"""Folder names taken for a dataset's splits by `dataset_splits` (the first is the one
suggested to read)."""


class FolderFiles(NamedTuple):
    """The image files of a folder, as `folder_files` lists them.

    Attributes:
        paths: the files, sorted by class folder, then by path.
        groups: int64 (N,), the index in `classes` of each file's class folder (all zeros
            when `classes` is empty).
        classes: the class folder names, sorted; empty when the images lie directly in
            the folder.
    """

    paths: list[str]
    groups: np.ndarray
    classes: tuple[str, ...]


def folder_files(folder: str | os.PathLike) -> FolderFiles:
    """List a folder of images: `<folder>/<class>/<image>`, or images directly in it.

    A folder holding subfolders is read as one subfolder per class (searched recursively;
    files directly in `folder` are then left out, as `keras.utils.image_dataset_from_directory`
    does). Files are checked as `image_files` checks them: a file that is not a regular
    file or is beyond `MAX_IMAGE_BYTES` / `MAX_IMAGE_PIXELS` is passed over with a
    `SkippedImageWarning`.

    Args:
        folder: the image folder.

    Returns:
        A `FolderFiles(paths, groups, classes)`.

    Raises:
        FileNotFoundError: `folder` is not a folder.
        ValueError: it holds no image file, it holds a file that is not an image by its
            first bytes (the message names it), or it is a dataset's folder of splits
            (`dataset_splits`), not of classes.

    Example:
        >>> listing = folder_files("photos/test")
        >>> listing.classes  # ('cat', 'ship')
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"`folder` must be a folder of images, {folder} is not a folder")
    _refuse_splits(folder)
    classes = tuple(sorted(entry.name for entry in os.scandir(folder) if entry.is_dir()))
    found = (
        [(index, sorted(_walk_images(os.path.join(folder, c)))) for index, c in enumerate(classes)]
        if classes
        else [(0, sorted(name for name in _walk_images(folder) if os.path.dirname(name) == folder))]
    )
    paths, groups = [], []
    for index, files in found:
        for path in files:
            problem, header = _header(path)
            if problem is not None:
                warnings.warn(f"skipped {path}: {problem}", SkippedImageWarning, stacklevel=2)
                continue
            if header is not None and not _decoded_format(header):
                # Checked here, where the file is named: `files_dataset` decodes it inside
                # a tf.data pipeline, whose error would not say which file it was.
                raise ValueError(
                    f"cannot read image {path}: not a JPEG, PNG, GIF, BMP, WebP or JPEG XL "
                    "file (by its first bytes)"
                )
            problem = None if header is None else _format_problem(header)
            if problem is not None:  # as above: the pipeline would not say which file
                raise ValueError(f"cannot read image {path}: {problem}")
            paths.append(path)
            groups.append(index)
    if not paths:
        where = f"{folder}/<class>/" if classes else f"{folder}/"
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {where}")
    return FolderFiles(paths, np.array(groups, np.int64), classes)


def _refuse_splits(folder: str) -> None:
    """Refuse a dataset's folder of splits (`dataset_splits`) where a folder of classes is
    read: its splits would be read as classes, mixed."""
    splits = dataset_splits(folder)
    if splits:
        raise ValueError(
            f"{folder} holds the splits {', '.join(splits)} of a dataset (each a folder of "
            f"class folders), not class folders: read one split, e.g. "
            f"{os.path.join(folder, splits[0])}"
        )


def dataset_splits(folder: str | os.PathLike) -> tuple[str, ...]:
    """The split folders of a dataset's folder (`<folder>/<split>/<class>/<image>`), or ()
    when `folder` is not one.

    `folder` is taken to be a dataset's folder when its subfolders (hidden ones aside) are
    all named as splits (`SPLIT_NAMES`, any case: train, test, val, ...) and each holds
    subfolders, its classes: e.g. `cifar10/`, holding `train/` and `test/`. Read as a folder
    of class folders, it would mix its splits, one class per split.

    Returns:
        The split folder names, in `SPLIT_NAMES` order (test first).

    Example:
        >>> dataset_splits("../shared/data/cifar10")
        ('test', 'train')
    """
    folder = os.fspath(folder)
    subfolders = [
        entry.name for entry in os.scandir(folder)
        if entry.is_dir() and not entry.name.startswith(".")
    ]
    if not subfolders or any(name.lower() not in SPLIT_NAMES for name in subfolders):
        return ()
    for name in subfolders:
        with os.scandir(os.path.join(folder, name)) as entries:
            if not any(entry.is_dir() for entry in entries):
                return ()
    return tuple(sorted(subfolders, key=lambda name: (SPLIT_NAMES.index(name.lower()), name)))


def read_class_names(path: str | os.PathLike, num_classes: int | None = None) -> tuple[str, ...]:
    """Read class names from a text file: one name per line, in the model's class order.

    Leading and trailing spaces and trailing blank lines are ignored.

    Args:
        path: the text file (UTF-8).
        num_classes: if given, the number of names the file must hold (the model's classes).

    Returns:
        The names; entry `i` names class `i`.

    Raises:
        OSError: the file cannot be read.
        ValueError: a name is empty or repeated, or the file does not hold `num_classes`
            names.

    Example:
        >>> read_class_names("classes.txt", num_classes=10)[:2]
        ('airplane', 'automobile')
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class names file not found (or not a regular file): {path}")
    with open(path, encoding="utf-8") as file:
        text = file.read(2**20)
    names = [line.strip() for line in text.rstrip().splitlines()]
    empty = [number for number, name in enumerate(names, 1) if not name]
    if not names or empty:
        raise ValueError(
            f"{path} must hold one class name per line, "
            + (f"line {empty[0]} is empty" if empty else "it holds none")
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{path} must name each class once, it repeats {repeated[:5]}")
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(
            f"{path} holds {len(names)} class names, but the model has {num_classes} classes"
        )
    return tuple(names)


def match_class_names(folders: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """The class index of each class folder, by its name.

    Args:
        folders: class folder names, e.g. `folder_files(...).classes` (a subset of the
            classes, in any order).
        class_names: the model's class names, in its class order.

    Returns:
        int64 (len(folders),): `class_names.index(folder)` for each folder.

    Raises:
        ValueError: a folder name is not among `class_names`.

    Example:
        >>> match_class_names(["cat", "ship"], class_names("cifar10"))
        array([3, 8])
    """
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [folder for folder in folders if folder not in index]
    if unknown:
        raise ValueError(
            f"the class folders {unknown[:5]} are not among the model's class names "
            f"({', '.join(list(class_names)[:10])}{', ...' if len(class_names) > 10 else ''})"
        )
    return np.array([index[folder] for folder in folders], np.int64)


def balanced_subset(groups: Any, limit: int, seed: int = 0) -> np.ndarray:
    """A seeded subset of `limit` items with as many of each group (class) as possible.

    Each group gets `limit // number of groups` items, or all of its items when it has
    fewer (the rest goes to the other groups); the remainder goes one each to groups drawn
    with the seed. Which items of a group are taken is drawn with the seed too.

    Args:
        groups: (N,) integer group (class) of each item.
        limit: the number of items to take; all items when `limit >= N`.
        seed: the seed of the draws (numpy's `default_rng`).

    Returns:
        int64 indices into `groups`, sorted (the items keep their order).

    Example:
        >>> balanced_subset([0, 0, 0, 1, 1, 2], limit=4, seed=0)  # two, one and one
    """
    groups = np.asarray(groups).reshape(-1)
    limit = _checks.positive_int("limit", limit)
    seed = _checks.integer("seed", seed, minimum=0, maximum=2**32 - 1)
    if limit >= len(groups):
        return np.arange(len(groups), dtype=np.int64)
    rng = np.random.default_rng(seed)
    names, counts = np.unique(groups, return_counts=True)
    quota = np.zeros(len(names), np.int64)
    remaining = limit
    while remaining > 0:
        open_groups = np.flatnonzero(quota < counts)
        share = remaining // len(open_groups)
        if share == 0:  # fewer left than groups still open: one each to a seeded draw
            quota[rng.choice(open_groups, remaining, replace=False)] += 1
            break
        added = np.minimum(share, counts[open_groups] - quota[open_groups])
        quota[open_groups] += added
        remaining -= int(added.sum())
    chosen = [
        rng.permutation(np.flatnonzero(groups == name))[:count]
        for name, count in zip(names, quota)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
