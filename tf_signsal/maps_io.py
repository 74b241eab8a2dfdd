"""Stored maps: the files the engines write (`tf_signsal.ray`, `tf_signsal.beam`) and
`read_maps`, which reads them back without any engine installed.

A map job writes a folder of shards, each holding some images' records:
    index    int64, the image's index in the dataset (its identity: engines do not keep
             row order)
    target   int64, the explained class
    logits   float32 (C,), the model's logits
    maps     float32 (H, W) per map name ("standard", "positive", ...)

Two shard formats, chosen by the file's suffix:
- `.parquet` (pyarrow, imported only here): columns "index", "target", "logits"
  (fixed-size list of C float32) and "map/<name>" (fixed-size list of H * W float32); the
  schema metadata key "tf_signsal.maps" holds JSON {"format", "version", "shapes":
  {name: [H, W]}}.
- `.tfrecord`: one serialized `tf.train.Example` per image (`encode_example`): features
  "index" and "target" (int64), "logits" (float), and per map "map/<name>" (its float32
  values as little-endian raw bytes) and "map/<name>/shape" (int64 [H, W]).

Shards named by an index range (`shard_name`) hold the images of that range. Every file
appears complete or not at all: it is written under a hidden temporary name and renamed
(`write_shard`). When the whole job is done, the marker `_SUCCESS` (`write_marker`: JSON
{"format", "version", "start", "stop", "files"}) lists the files and the index range
[start, stop) they hold; `read_maps` of a folder reads the files it lists and checks that
every index of the range is there exactly once. A folder without the marker is a job that
has not finished: reading it is refused.

Numpy only at import (TensorFlow for the `.tfrecord` side, pyarrow for the `.parquet`
side, each imported when used).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tf_signsal import _checks
from tf_signsal._io import read_json, save_atomic, write_json

MAPS_FORMAT = "tf_signsal.maps"
MAPS_VERSION = 1
"""The version of the shard and marker layouts written here."""
SUFFIXES = (".parquet", ".tfrecord")
MARKER = "_SUCCESS"
"""The file that marks a finished map folder (see the module docstring)."""

_SHARD = re.compile(r"maps-(\d{8,})-(\d{8,})(\.parquet|\.tfrecord)")
# `_io.save_atomic`'s temporary name of a shard: "." + name + "." + 32 hex digits + suffix.
_TEMPORARY = re.compile(r"\.maps-\d{8,}-\d{8,}(\.parquet|\.tfrecord)\.[0-9a-f]{32}\1")
_METADATA_KEY = b"tf_signsal.maps"
_MAP_PREFIX = "map/"


@dataclass(frozen=True, eq=False)
class StoredMaps:
    """Maps read back by `read_maps`, sorted by image index.

    Attributes:
        index: int64 (N,), the image indices, increasing, each once.
        targets: int64 (N,), the explained classes.
        logits: float32 (N, C), the model's logits.
        maps: map name -> float32 (N, H, W).
    """

    index: np.ndarray
    targets: np.ndarray
    logits: np.ndarray
    maps: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.index)


# ----------------------------------------------------------------------------- names


def shard_name(start: int, stop: int, suffix: str) -> str:
    """The file name of the shard of images [start, stop): e.g.
    `shard_name(0, 256, ".parquet")` is "maps-00000000-00000256.parquet".

    Args:
        start: the first image index of the shard, >= 0.
        stop: one past its last image index, > start.
        suffix: ".parquet" or ".tfrecord" (the format).
    """
    start, stop = _range(start, stop)
    if suffix not in SUFFIXES:
        raise ValueError(f"`suffix` must be one of {list(SUFFIXES)}, received {suffix!r}")
    return f"maps-{start:08d}-{stop:08d}{suffix}"


def parse_shard_name(name: str) -> tuple[int, int, str] | None:
    """(start, stop, suffix) of a name made by `shard_name`; None for any other name."""
    match = _SHARD.fullmatch(name)
    if match is None:
        return None
    start, stop = int(match.group(1)), int(match.group(2))
    return (start, stop, match.group(3)) if stop > start else None


def is_temporary(name: str) -> bool:
    """Whether `name` is the hidden temporary file of a shard being written (`write_shard`):
    what a worker that died while writing leaves behind."""
    return _TEMPORARY.fullmatch(name) is not None


def _range(start: Any, stop: Any) -> tuple[int, int]:
    start = _checks.non_negative_int("start", start)
    stop = _checks.positive_int("stop", stop)
    if stop <= start:
        raise ValueError(f"`stop` must be greater than `start`, received [{start}, {stop})")
    return start, stop


# ----------------------------------------------------------------------------- records


def _record_arrays(
    index: Any, targets: Any, logits: Any, maps: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The records of N images, checked and in the stored dtypes, maps sorted by name."""
    index = np.asarray(index)
    if index.ndim != 1 or index.dtype.kind not in "iu" or (index.size and index.min() < 0):
        raise ValueError(
            f"`index` must be non-negative integer image indices (N,), received dtype "
            f"{index.dtype} and shape {index.shape}"
        )
    size = len(index)
    targets = np.asarray(targets)
    if targets.shape != (size,) or targets.dtype.kind not in "iu":
        raise ValueError(
            f"`targets` must be {size} integer classes (N,), received dtype {targets.dtype} "
            f"and shape {targets.shape}"
        )
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] != size or logits.dtype.kind != "f":
        raise ValueError(
            f"`logits` must be float ({size}, classes), received dtype {logits.dtype} and "
            f"shape {logits.shape}"
        )
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError(f"`maps` must be a non-empty mapping name -> (N, H, W), received {maps!r}")
    wrong = [name for name in maps if not isinstance(name, str) or not name or "/" in name]
    if wrong:
        raise ValueError(f"`maps` names must be non-empty strings without '/', received {wrong}")
    checked = {}
    for name in sorted(maps):
        value = np.asarray(maps[name])
        if value.ndim != 3 or value.shape[0] != size or value.dtype.kind != "f":
            raise ValueError(
                f"`maps[{name!r}]` must be float ({size}, H, W), received dtype {value.dtype} "
                f"and shape {value.shape}"
            )
        checked[name] = value.astype("<f4", copy=False)
    return index.astype(np.int64), targets.astype(np.int64), logits.astype("<f4"), checked


def encode_example(
    index: int, target: int, logits: np.ndarray, maps: Mapping[str, np.ndarray]
) -> bytes:
    """One image's record as a serialized `tf.train.Example` (see the module docstring):
    deterministic bytes, maps as float32 raw bytes with their shape, names sorted.

    Args:
        index: the image's index in the dataset.
        target: the explained class.
        logits: the model's logits (C,).
        maps: map name -> (H, W) map.
    """
    import tensorflow as tf

    if not isinstance(maps, Mapping):
        raise TypeError(f"`maps` must be a mapping name -> (H, W) map, received {maps!r}")
    index_, targets, logits_, maps_ = _record_arrays(
        [index], [target], np.asarray(logits)[None],
        {name: np.asarray(value)[None] for name, value in maps.items()},
    )
    feature = tf.train.Feature
    features = {
        "index": feature(int64_list=tf.train.Int64List(value=index_.tolist())),
        "target": feature(int64_list=tf.train.Int64List(value=targets.tolist())),
        "logits": feature(float_list=tf.train.FloatList(value=logits_[0].tolist())),
    }
    for name, value in maps_.items():
        features[_MAP_PREFIX + name] = feature(
            bytes_list=tf.train.BytesList(value=[value[0].tobytes()])
        )
        features[f"{_MAP_PREFIX}{name}/shape"] = feature(
            int64_list=tf.train.Int64List(value=list(value.shape[1:]))
        )
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString(deterministic=True)


def decode_example(data: bytes) -> dict[str, Any]:
    """Inverse of `encode_example`: {"index": int, "target": int, "logits": float32 (C,),
    "maps": {name: float32 (H, W)}}."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        features = tf.train.Example.FromString(data).features.feature
        record = {
            "index": int(features["index"].int64_list.value[0]),
            "target": int(features["target"].int64_list.value[0]),
            "logits": np.array(features["logits"].float_list.value, np.float32),
            "maps": {},
        }
        for key in sorted(features):
            if key.startswith(_MAP_PREFIX) and not key.endswith("/shape"):
                shape = tuple(features[key + "/shape"].int64_list.value)
                values = np.frombuffer(features[key].bytes_list.value[0], "<f4")
                record["maps"][key[len(_MAP_PREFIX):]] = values.reshape(shape).astype(np.float32)
    except (DecodeError, KeyError, IndexError, ValueError, TypeError) as error:
        raise ValueError(f"not a tf_signsal maps record (as encode_example writes): {error!r}") \
            from None
    if not record["maps"]:
        raise ValueError("not a tf_signsal maps record (as encode_example writes): no map")
    return record


def _parquet() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError(
            "Parquet maps need pyarrow: pip install 'tf_signsal[parquet]' (it comes with "
            "'tf_signsal[ray]' too), or use .tfrecord shards"
        ) from None
    return pyarrow


# ----------------------------------------------------------------------------- writing


def write_shard(
    folder: str | os.PathLike,
    start: int,
    stop: int,
    index: Any,
    targets: Any,
    logits: Any,
    maps: Mapping[str, Any],
    suffix: str = ".parquet",
) -> str:
    """Write the records of the images [start, stop) as the shard `shard_name(start, stop,
    suffix)` in `folder`, atomically (a hidden temporary file renamed when complete).

    Args:
        folder: an existing folder.
        start, stop: the shard's index range; every `index` must lie in it.
        index: int (N,) image indices, each once.
        targets: int (N,) explained classes.
        logits: float (N, C).
        maps: map name -> float (N, H, W).
        suffix: ".parquet" or ".tfrecord".

    Returns:
        the path written.
    """
    name = shard_name(start, stop, suffix)
    index, targets, logits, maps = _record_arrays(index, targets, logits, maps)
    if not len(index):
        raise ValueError(f"the shard {name} must hold at least one image, received none")
    outside = index[(index < start) | (index >= stop)]
    if outside.size or len(np.unique(index)) != len(index):
        raise ValueError(
            f"the shard {name} must hold distinct indices in [{start}, {stop}), received "
            f"{_listed(outside if outside.size else _duplicates(index))}"
        )
    order = np.argsort(index, kind="stable")
    index, targets, logits = index[order], targets[order], logits[order]
    maps = {method: value[order] for method, value in maps.items()}
    path = os.path.join(os.fspath(folder), name)
    if suffix == ".parquet":
        pa = _parquet()
        columns = {"index": pa.array(index), "target": pa.array(targets),
                   "logits": _fixed_lists(pa, logits)}
        columns.update({_MAP_PREFIX + m: _fixed_lists(pa, value) for m, value in maps.items()})
        metadata = {"format": MAPS_FORMAT, "version": MAPS_VERSION,
                    "shapes": {m: list(value.shape[1:]) for m, value in maps.items()}}
        table = pa.table(columns).replace_schema_metadata({_METADATA_KEY: json.dumps(metadata)})
        save_atomic(path, lambda temporary: pa.parquet.write_table(table, temporary))
    else:
        import tensorflow as tf

        def write(temporary: str) -> None:
            with tf.io.TFRecordWriter(temporary) as writer:
                for i in range(len(index)):
                    writer.write(encode_example(
                        index[i], targets[i], logits[i], {m: v[i] for m, v in maps.items()}
                    ))

        save_atomic(path, write)
    return path


def _fixed_lists(pa: Any, values: np.ndarray) -> Any:
    """(N, ...) float32 as N fixed-size lists of their flattened values."""
    flat = np.ascontiguousarray(values, "<f4").reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def write_marker(
    folder: str | os.PathLike, start: int, stop: int, files: Sequence[str] | None = None
) -> None:
    """Mark `folder` finished: its `files` hold every image index of [start, stop) once.

    Write it last, when every file is complete (an engine's committed output).

    Args:
        folder: the map folder.
        start, stop: the index range of the whole job.
        files: the names of its data files in `folder`; None for every `.parquet` and
            `.tfrecord` file there whose name does not start with "." or "_".
    """
    start, stop = _range(start, stop)
    folder = os.fspath(folder)
    if files is None:
        files = sorted(n for n in os.listdir(folder) if _is_data_file(n))
    missing = [n for n in files if not os.path.isfile(os.path.join(folder, n))]
    if missing or not files:
        raise FileNotFoundError(
            f"cannot mark {folder} finished: " +
            (f"it holds no {list(missing)}" if missing else "it holds no .parquet/.tfrecord file")
        )
    write_json(os.path.join(folder, MARKER), marker_record(start, stop, files))


def marker_record(start: int, stop: int, files: Sequence[str]) -> dict[str, Any]:
    """The JSON record of the marker (`write_marker`), for a writer on another file
    system (`tf_signsal.beam` on Cloud Storage): the files' names hold [start, stop)."""
    start, stop = _range(start, stop)
    return {
        "format": MAPS_FORMAT, "version": MAPS_VERSION, "start": start, "stop": stop,
        "files": sorted(files),
    }


def finish(folder: str | os.PathLike, files: Sequence[str]) -> tuple[int, int]:
    """Check that the data `files` of `folder` hold every index of one range exactly
    once, then mark the folder finished (`write_marker`). Only the index is read (for
    Parquet, its one column).

    Args:
        folder: the map folder.
        files: the names of its data files, e.g. the shards a job wrote.

    Returns:
        the range (start, stop) of the indices.

    Raises:
        ValueError: an index is missing or present more than once (they are named), or
            there is no file; no marker is written then.
    """
    folder = os.fspath(folder)
    if not files:
        raise ValueError(f"cannot mark {folder} finished: no file was written")
    index = np.sort(np.concatenate([read_index(os.path.join(folder, n)) for n in files]))
    _check_indices(index, None, folder)
    start, stop = int(index[0]), int(index[-1]) + 1
    write_marker(folder, start, stop, files)
    return start, stop


def read_index(path: str | os.PathLike) -> np.ndarray:
    """The image indices (int64, in file order) of one `.parquet` or `.tfrecord` shard."""
    path = os.fspath(path)
    try:
        if path.endswith(".parquet"):
            return _parquet().parquet.read_table(path, columns=["index"]).column(
                "index").to_numpy().astype(np.int64)
        return _read_tfrecord(path, None).index
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a tf_signsal maps shard: {error}") from None


def _is_data_file(name: str) -> bool:
    return name.endswith(SUFFIXES) and not name.startswith((".", "_"))


# ----------------------------------------------------------------------------- reading


def read_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The marker of a finished map folder (see `write_marker`); None when there is none."""
    path = os.path.join(os.fspath(folder), MARKER)
    if not os.path.lexists(path):
        return None
    marker = read_json(path)
    if not isinstance(marker, dict) or marker.get("format") != MAPS_FORMAT:
        raise ValueError(f"{path} is not a tf_signsal maps marker (as write_marker writes)")
    if marker.get("version") != MAPS_VERSION:
        raise ValueError(
            f"{path} is of maps version {marker.get('version')!r}; this tf_signsal reads "
            f"version {MAPS_VERSION}"
        )
    return marker


def read_maps(path: str | os.PathLike, methods: Sequence[str] | None = None) -> StoredMaps:
    """Read maps that `tf_signsal.ray.write_maps` or `tf_signsal.beam` wrote: a finished
    folder of `.parquet` or `.tfrecord` shards (its `_SUCCESS` marker lists them), or one
    shard file. No engine is needed (pyarrow for Parquet).

    Args:
        path: the folder, or one `.parquet` / `.tfrecord` file.
        methods: the maps to read (None for all stored): reading fewer maps from Parquet
            reads only their columns.

    Returns:
        a `StoredMaps`, sorted by image index.

    Raises:
        FileNotFoundError: `path` does not exist, or a file the marker lists is missing.
        ValueError: the folder holds no marker (its job has not finished), a file is not
            a maps shard, the shards disagree (map names, shapes, classes), an index is
            missing or present more than once (the indices are named), or `methods`
            names a map that is not stored.
    """
    shown = os.fspath(path)
    if not os.path.exists(shown):
        raise FileNotFoundError(f"`path` {shown} does not exist")
    if os.path.isdir(shown):
        marker = read_marker(shown)
        if marker is None:
            raise ValueError(
                f"`path` {shown} holds no {MARKER} marker: the job writing it has not "
                "finished (rerun it with the same arguments: complete shards are kept)"
            )
        files = [os.path.join(shown, name) for name in marker["files"]]
        expected = (int(marker["start"]), int(marker["stop"]))
    elif shown.endswith(SUFFIXES):
        files, expected = [shown], None
    else:
        raise ValueError(f"`path` must be a map folder or a {' or '.join(SUFFIXES)} file, "
                         f"received {shown}")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(f"the marker of {shown} lists files that are missing: {missing}")
    parts = [_read_file(f, methods) for f in files]
    stored = _join(parts, shown)
    _check_indices(stored.index, expected, shown)
    return stored


def _read_file(path: str, methods: Sequence[str] | None) -> StoredMaps:
    try:
        if path.endswith(".parquet"):
            return _read_parquet(path, methods)
        return _read_tfrecord(path, methods)
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a tf_signsal maps shard: {error}") from None


def _read_parquet(path: str, methods: Sequence[str] | None) -> StoredMaps:
    pa = _parquet()
    schema = pa.parquet.read_schema(path)
    metadata = json.loads((schema.metadata or {}).get(_METADATA_KEY, b"{}"))
    if metadata.get("format") != MAPS_FORMAT or metadata.get("version") != MAPS_VERSION:
        raise ValueError(f"no {MAPS_FORMAT} version {MAPS_VERSION} metadata")
    shapes = {name: tuple(shape) for name, shape in metadata["shapes"].items()}
    chosen = _chosen(methods, shapes, path)
    table = pa.parquet.read_table(
        path, columns=["index", "target", "logits", *(_MAP_PREFIX + m for m in chosen)]
    )

    def values(column: str, shape: tuple[int, ...]) -> np.ndarray:
        lists = table.column(column).combine_chunks()
        return lists.flatten().to_numpy().astype(np.float32).reshape(len(table), *shape)

    logits = table.column("logits").combine_chunks()
    return StoredMaps(
        table.column("index").to_numpy().astype(np.int64),
        table.column("target").to_numpy().astype(np.int64),
        values("logits", (logits.type.list_size,)),
        {m: values(_MAP_PREFIX + m, shapes[m]) for m in chosen},
    )


def _read_tfrecord(path: str, methods: Sequence[str] | None) -> StoredMaps:
    import tensorflow as tf

    try:
        records = [decode_example(r.numpy()) for r in tf.data.TFRecordDataset(path)]
    except tf.errors.OpError as error:  # e.g. DataLossError: not a TFRecord file
        raise ValueError(error.message.split(" [Op:")[0]) from None
    if not records:
        raise ValueError("it holds no record")
    shapes = {name: m.shape for name, m in records[0]["maps"].items()}
    chosen = _chosen(methods, shapes, path)
    for record in records:
        if {n: m.shape for n, m in record["maps"].items()} != shapes or len(
            record["logits"]
        ) != len(records[0]["logits"]):
            raise ValueError(f"the record of index {record['index']} differs in maps or classes")
    return StoredMaps(
        np.array([r["index"] for r in records], np.int64),
        np.array([r["target"] for r in records], np.int64),
        np.stack([r["logits"] for r in records]),
        {m: np.stack([r["maps"][m] for r in records]) for m in chosen},
    )


def _chosen(methods: Sequence[str] | None, shapes: Mapping[str, Any], path: str) -> list[str]:
    if methods is None:
        return sorted(shapes)
    if isinstance(methods, str) or not all(m in shapes for m in methods) or not methods:
        raise ValueError(
            f"`methods` must be a non-empty list of the stored maps {sorted(shapes)}, "
            f"received {methods!r} ({path})"
        )
    return list(dict.fromkeys(methods))


def _join(parts: list[StoredMaps], shown: str) -> StoredMaps:
    """The records of all files, sorted by index; the files must agree."""
    def layout(part: StoredMaps) -> tuple:
        return tuple((m, part.maps[m].shape[1:]) for m in sorted(part.maps)), part.logits.shape[1]

    first = parts[0]
    for part in parts[1:]:
        if layout(part) != layout(first):
            raise ValueError(
                f"the shards of {shown} disagree: (maps and their shapes, classes) "
                f"{layout(first)} and {layout(part)}"
            )
    index = np.concatenate([p.index for p in parts])
    order = np.argsort(index, kind="stable")
    return StoredMaps(
        index[order],
        np.concatenate([p.targets for p in parts])[order],
        np.concatenate([p.logits for p in parts])[order],
        {m: np.concatenate([p.maps[m] for p in parts])[order] for m in first.maps},
    )


def _check_indices(index: np.ndarray, expected: tuple[int, int] | None, shown: str) -> None:
    """Every index of the range (the marker's, else min..max) present exactly once."""
    duplicated = _duplicates(index)
    if duplicated.size:
        raise ValueError(f"{shown} holds these image indices more than once: "
                         f"{_listed(duplicated)}")
    start, stop = expected if expected is not None else (
        (int(index[0]), int(index[-1]) + 1) if index.size else (0, 0)
    )
    missing = np.setdiff1d(np.arange(start, stop), index)
    outside = index[(index < start) | (index >= stop)]
    if missing.size or outside.size:
        raise ValueError(
            f"{shown} must hold every image index of [{start}, {stop}) once: "
            + (f"missing {_listed(missing)}" if missing.size else "")
            + ("; " if missing.size and outside.size else "")
            + (f"outside the range {_listed(outside)}" if outside.size else "")
        )


def _duplicates(index: np.ndarray) -> np.ndarray:
    values, counts = np.unique(index, return_counts=True)
    return values[counts > 1]


def _listed(indices: np.ndarray, most: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:most])
    return f"{shown}, ... ({len(indices)} in all)" if len(indices) > most else shown
