"""The stored maps' files (tf_signsal.maps_io) and read_maps, without any engine: records,
shards of both formats, the finished-folder marker, and the refusals."""

import os

import numpy as np
import pytest

import tf_signsal
from tf_signsal import maps_io

try:
    import pyarrow  # noqa: F401

    HAS_PYARROW = True
except ImportError:
    HAS_PYARROW = False

# Parquet needs pyarrow, which only the [ray] extra installs: its cases carry the `ray`
# marker, so that .ci/run's environment of that extra runs them.
SUFFIXES = (
    pytest.param(".parquet", marks=[
        pytest.mark.ray, pytest.mark.skipif(not HAS_PYARROW, reason="needs pyarrow")
    ]),
    ".tfrecord",
)


def _records(rng, index, classes=4, shape=(5, 3), methods=("active", "standard")):
    n = len(index)
    return (
        np.asarray(index, np.int64),
        rng.integers(0, classes, n),
        rng.standard_normal((n, classes)).astype(np.float32),
        {m: rng.random((n, *shape), dtype=np.float32) for m in methods},
    )


def _write_folder(folder, rng, ranges, suffix):
    """Shards of the given [start, stop) ranges and the marker of their whole range."""
    os.makedirs(folder, exist_ok=True)
    written = []
    for start, stop in ranges:
        records = _records(rng, np.arange(start, stop)[::-1])  # any row order within a shard
        maps_io.write_shard(folder, start, stop, *records, suffix=suffix)
        written.append(records)
    maps_io.write_marker(folder, min(r[0] for r in ranges), max(r[1] for r in ranges))
    return written


def test_shard_names():
    assert maps_io.shard_name(0, 256, ".parquet") == "maps-00000000-00000256.parquet"
    assert maps_io.parse_shard_name("maps-00000256-00000512.tfrecord") == (256, 512, ".tfrecord")
    for name in ("maps-00000512-00000256.parquet", "maps-0-1.parquet", "part-0.parquet"):
        assert maps_io.parse_shard_name(name) is None
    assert maps_io.is_temporary(".maps-00000000-00000256.parquet." + "ab12" * 8 + ".parquet")
    assert not maps_io.is_temporary("maps-00000000-00000256.parquet")
    with pytest.raises(ValueError, match="`suffix` must be one of"):
        maps_io.shard_name(0, 1, "parquet")
    with pytest.raises(ValueError, match=r"`stop` must be greater than `start`.*\[5, 5\)"):
        maps_io.shard_name(5, 5, ".parquet")


def test_example_round_trip_is_exact_and_deterministic(rng):
    logits = rng.standard_normal(7).astype(np.float32)
    maps = {"positive": rng.random((4, 6), dtype=np.float32),
            "active": np.array([[np.float32(1e-38), -0.0, np.inf]], np.float32)}
    data = maps_io.encode_example(12, 3, logits, maps)
    record = maps_io.decode_example(data)
    assert (record["index"], record["target"]) == (12, 3)
    assert record["logits"].dtype == np.float32 and np.array_equal(record["logits"], logits)
    assert list(record["maps"]) == ["active", "positive"]  # names sorted
    for name, value in maps.items():
        assert record["maps"][name].dtype == np.float32
        assert record["maps"][name].tobytes() == value.tobytes()  # bit for bit, -0.0 included
    again = maps_io.encode_example(12, 3, logits, dict(reversed(list(maps.items()))))
    assert again == data  # the same record gives the same bytes
    with pytest.raises(ValueError, match="not a tf_signsal maps record"):
        maps_io.decode_example(b"\x01\x02garbage")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_folder_round_trip(tmp_path, rng, suffix):
    folder = tmp_path / "maps"
    written = _write_folder(folder, rng, [(4, 9), (0, 4), (9, 10)], suffix)
    stored = tf_signsal.read_maps(folder)
    assert isinstance(stored, tf_signsal.StoredMaps) and len(stored) == 10
    assert stored.index.dtype == np.int64 and np.array_equal(stored.index, np.arange(10))
    for index, targets, logits, maps in written:
        rows = index  # read back sorted by index: row i is image i
        assert np.array_equal(stored.targets[rows], targets)
        assert np.array_equal(stored.logits[rows], logits)
        for name, value in maps.items():
            assert stored.maps[name].dtype == np.float32
            assert np.array_equal(stored.maps[name][rows], value)
    one = tf_signsal.read_maps(folder, methods=["standard"])
    assert list(one.maps) == ["standard"]
    assert np.array_equal(one.maps["standard"], stored.maps["standard"])
    single = tf_signsal.read_maps(folder / maps_io.shard_name(4, 9, suffix))
    assert np.array_equal(single.index, np.arange(4, 9))
    assert np.array_equal(single.maps["active"], stored.maps["active"][4:9])


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_gaps_duplicates_and_unfinished_folders_are_refused(tmp_path, rng, suffix):
    gap = tmp_path / "gap"
    _write_folder(gap, rng, [(0, 3), (5, 8)], suffix)
    with pytest.raises(ValueError, match=r"every image index of \[0, 8\) once: missing 3, 4$"):
        tf_signsal.read_maps(gap)

    twice = tmp_path / "twice"
    twice.mkdir()
    maps_io.write_shard(twice, 0, 4, *_records(rng, [0, 1, 2, 3]), suffix=suffix)
    maps_io.write_shard(twice, 2, 6, *_records(rng, [2, 3, 4, 5]), suffix=suffix)
    maps_io.write_marker(twice, 0, 6)
    with pytest.raises(ValueError, match="indices more than once: 2, 3$"):
        tf_signsal.read_maps(twice)

    short = tmp_path / "short"  # the marker's range is longer than what the shards hold
    _write_folder(short, rng, [(0, 3)], suffix)
    maps_io.write_marker(short, 0, 5)
    with pytest.raises(ValueError, match=r"\[0, 5\) once: missing 3, 4"):
        tf_signsal.read_maps(short)

    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    maps_io.write_shard(unfinished, 0, 3, *_records(rng, [0, 1, 2]), suffix=suffix)
    with pytest.raises(ValueError, match="holds no _SUCCESS marker: the job writing it has not"):
        tf_signsal.read_maps(unfinished)
    os.remove(unfinished / maps_io.shard_name(0, 3, suffix))
    maps_io.write_shard(unfinished, 3, 4, *_records(rng, [3]), suffix=suffix)
    with pytest.raises(FileNotFoundError, match="cannot mark"):
        maps_io.write_marker(unfinished, 0, 4, files=[maps_io.shard_name(0, 3, suffix)])


def test_bad_records_and_arguments_are_refused(tmp_path, rng):
    index, targets, logits, maps = _records(rng, [0, 1, 2])
    with pytest.raises(ValueError, match=r"distinct indices in \[0, 2\), received 2"):
        maps_io.write_shard(tmp_path, 0, 2, index, targets, logits, maps, suffix=".tfrecord")
    with pytest.raises(ValueError, match=r"distinct indices in \[0, 3\), received 1"):
        maps_io.write_shard(tmp_path, 0, 3, [0, 1, 1], targets, logits, maps, ".tfrecord")
    with pytest.raises(ValueError, match=r"`logits` must be float \(3, classes\)"):
        maps_io.write_shard(tmp_path, 0, 3, index, targets, logits[:2], maps, ".tfrecord")
    with pytest.raises(ValueError, match=r"`maps\['active'\]` must be float \(3, H, W\)"):
        maps_io.write_shard(tmp_path, 0, 3, index, targets, logits,
                            {**maps, "active": maps["active"][0]}, ".tfrecord")
    with pytest.raises(ValueError, match="`maps` names must be non-empty strings without '/'"):
        maps_io.encode_example(0, 1, logits[0], {"a/b": maps["active"][0]})
    assert os.listdir(tmp_path) == []  # nothing half-written
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tf_signsal.read_maps(tmp_path / "nowhere")
    (tmp_path / "maps.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="must be a map folder or a .parquet or .tfrecord file"):
        tf_signsal.read_maps(tmp_path / "maps.npz")
    (tmp_path / "maps-00000000-00000001.tfrecord").write_bytes(b"not a record file")
    with pytest.raises(ValueError, match="is not a tf_signsal maps shard"):
        tf_signsal.read_maps(tmp_path / "maps-00000000-00000001.tfrecord")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_stored_maps_are_explain_bit_for_bit(tmp_path, model, images, suffix):
    explanation = tf_signsal.SignedSaliency(model).explain(images)
    folder = tmp_path / "maps"
    folder.mkdir()
    parts = [(0, 4), (4, len(images))]
    for start, stop in parts:
        maps_io.write_shard(
            folder, start, stop, np.arange(start, stop), explanation.targets.numpy()[start:stop],
            explanation.logits.numpy()[start:stop],
            {m: explanation[m].numpy()[start:stop] for m in explanation}, suffix=suffix,
        )
    maps_io.write_marker(folder, 0, len(images))
    stored = tf_signsal.read_maps(folder)
    assert np.array_equal(stored.targets, explanation.targets.numpy())
    assert stored.logits.tobytes() == explanation.logits.numpy().tobytes()
    assert sorted(stored.maps) == sorted(explanation)
    for method in explanation:
        assert stored.maps[method].tobytes() == explanation[method].numpy().tobytes()


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, rng, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # as if not installed
    with pytest.raises(ImportError, match=r"Parquet maps need pyarrow: pip install .tf_signsal"):
        maps_io.write_shard(tmp_path, 0, 2, *_records(rng, [0, 1]), suffix=".parquet")
    assert os.listdir(tmp_path) == []


def test_the_ray_functions_say_what_to_install(monkeypatch):
    import tf_signsal.ray

    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if not installed
    with pytest.raises(ImportError, match=r"needs Ray Data: pip install 'tf_signsal\[ray\]'"):
        tf_signsal.ray.evaluate(None, "model.keras")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_finish_marks_only_complete_folders(tmp_path, rng, suffix):
    folder = tmp_path / "maps"
    folder.mkdir()
    files = []
    for start, stop in ((3, 6), (7, 9)):
        maps_io.write_shard(folder, start, stop, *_records(rng, np.arange(start, stop)),
                            suffix=suffix)
        files.append(maps_io.shard_name(start, stop, suffix))
    with pytest.raises(ValueError, match=r"every image index of \[3, 9\) once: missing 6$"):
        maps_io.finish(folder, files)
    assert not (folder / maps_io.MARKER).exists()
    maps_io.write_shard(folder, 6, 7, *_records(rng, [6]), suffix=suffix)
    files.append(maps_io.shard_name(6, 7, suffix))
    assert maps_io.finish(folder, files) == (3, 9)
    assert np.array_equal(tf_signsal.read_maps(folder).index, np.arange(3, 9))
