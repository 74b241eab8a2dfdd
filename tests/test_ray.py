"""tf_signsal.ray on a local Ray (2 CPUs): equal to one process, resumable, refusing.

Runs where the [ray] extra is installed (.ci/run gives it its own environment and runs
`pytest -m ray`); elsewhere the module is skipped. The images are 256 CIFAR-10 test images
from ../shared/data, or seeded random images where the data is absent (the equalities
hold for any images).
"""

import os
import re

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="needs the [ray] extra: pip install '.[ray]'")

import tf_signsal  # noqa: E402
import tf_signsal.ray as tf_ray  # noqa: E402
from conftest import CIFAR10_CLASSES, SHARED_DATA, small_conv_net  # noqa: E402
from tf_signsal.evaluation import AllegianceEvaluator  # noqa: E402

pytestmark = pytest.mark.ray

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NUM_IMAGES = 256
OPTIONS = {  # several orders and fills, and an attribution other than the gradient
    "fractions": (0.0, 0.1, 0.3, 0.6),
    "pairs": [("positive", "black"), ("active", "blur"), ("standard", "mean"),
              ("random", "white")],
    "orders": ("morf", "lerf", "insertion"),
    "attribution": "gradient_x_input",
}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False,
             log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data():
    """(images, labels): float32 in [0, 1], int64."""
    folder = os.path.join(SHARED_DATA, "cifar10", "test")
    if not os.path.isdir(folder):
        rng = np.random.default_rng(0)
        return rng.random((NUM_IMAGES, 32, 32, 3), dtype=np.float32), rng.integers(
            0, 10, NUM_IMAGES)
    from PIL import Image

    per_class = -(-NUM_IMAGES // 10)
    images, labels = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        for file in sorted(os.listdir(os.path.join(folder, name)))[:per_class]:
            with Image.open(os.path.join(folder, name, file)) as image:
                images.append(np.asarray(image.convert("RGB"), np.float32) / 255.0)
            labels.append(label)
    return np.stack(images)[:NUM_IMAGES], np.array(labels[:NUM_IMAGES], np.int64)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    small_conv_net((32, 32, 3), 10).save(path)
    return str(path)


def _dataset(images, labels, index=None):
    """The rows in a scrambled order: Ray keeps no order, the index is the identity."""
    index = np.arange(len(images)) if index is None else index
    order = np.random.default_rng(1).permutation(len(images))
    return ray.data.from_items(
        [{"index": int(index[i]), "image": images[i], "label": int(labels[i])} for i in order]
    )


def test_evaluate_equals_one_process(local_ray, data, model_path):
    images, labels = data
    model = tf_signsal.load_model(model_path)
    one = AllegianceEvaluator(model, **OPTIONS).evaluate((images, labels), verbose=0)
    # Other batches than the one process's 128: counts add up exactly however cut.
    on_ray = tf_ray.evaluate(_dataset(images, labels), model_path, label_column="label",
                             batch_size=48, **OPTIONS)
    assert on_ray == one
    assert on_ray.n_images == NUM_IMAGES and on_ray.accuracy is not None
    assert set(on_ray.order_curves) == {"morf", "lerf", "insertion"}


def test_counts_of_a_misconfigured_worker_are_refused(data, model_path):
    images, _ = data
    model = tf_signsal.load_model(model_path)
    driver = AllegianceEvaluator(model, fractions=(0.0, 0.5), pairs=[("positive", "black")])
    good = driver.batch_counts(images[:4])
    for other in ({"fractions": (0.0, 0.25)}, {"pairs": [("active", "black")]}):
        worker = AllegianceEvaluator(model, **{"fractions": (0.0, 0.5),
                                               "pairs": [("positive", "black")], **other})
        wrong = worker.batch_counts(images[4:8])
        with pytest.raises(ValueError, match="another protocol .*refused, not summed"):
            tf_ray._total([good.to_bytes(), wrong.to_bytes()], driver.protocol)
    assert driver.result(tf_ray._total([good.to_bytes()], driver.protocol)) == driver.result(
        good)


def _assert_equals_explain(folder, images, model_path, batch_size):
    saliency = tf_signsal.SignedSaliency(tf_signsal.load_model(model_path))
    explanation = saliency.explain(images, batch_size=batch_size, verbose=0)
    stored = tf_signsal.read_maps(folder)
    assert np.array_equal(stored.index, np.arange(len(images)))
    assert np.array_equal(stored.targets, explanation.targets.numpy())
    assert stored.logits.tobytes() == explanation.logits.numpy().tobytes()
    assert sorted(stored.maps) == sorted(tf_signsal.METHODS)
    for method in tf_signsal.METHODS:
        assert stored.maps[method].tobytes() == explanation[method].numpy().tobytes(), method


def test_write_maps_resumes_an_unfinished_job_and_equals_explain(local_ray, data, model_path,
                                                                 tmp_path):
    images, labels = data
    folder = tmp_path / "maps"
    options = {"batch_size": 32, "shard_size": 64}
    # A job that did not get every image: image 100 missing, and the temporary file of a
    # worker killed while writing. Its shards are written, the indices are refused (the
    # missing one named), and no marker is written.
    kept = np.arange(NUM_IMAGES) != 100
    with pytest.raises(ValueError, match=r"every image index of \[0, 256\) once: missing 100$"):
        tf_ray.write_maps(_dataset(images[kept], labels[kept], np.flatnonzero(kept)),
                          model_path, folder, **options)
    temporary = folder / (".maps-00000064-00000128.parquet." + "0" * 32 + ".parquet")
    temporary.write_bytes(b"half a shard")
    with pytest.raises(ValueError, match="holds no _SUCCESS marker"):
        tf_signsal.read_maps(folder)
    complete = ["maps-00000000-00000064.parquet", "maps-00000128-00000192.parquet",
                "maps-00000192-00000256.parquet"]
    before = {name: os.stat(folder / name).st_mtime_ns for name in complete}

    # The rerun computes only the shard that lacked an image.
    written = tf_ray.write_maps(_dataset(images, labels), model_path, folder, **options)
    assert written == (str(folder), NUM_IMAGES, 4, 3)
    assert {name: os.stat(folder / name).st_mtime_ns for name in complete} == before
    assert not temporary.exists()
    _assert_equals_explain(folder, images, model_path, options["batch_size"])
    # A rerun of another configuration into the folder is refused before any work.
    with pytest.raises(ValueError, match=r"another configuration \(differing in \['methods'\]"):
        tf_ray.write_maps(_dataset(images, labels), model_path, folder, methods=["active"],
                          **options)
    assert len(tf_signsal.read_maps(folder)) == NUM_IMAGES


def test_a_failing_worker_fails_the_job_without_a_marker(local_ray, data, model_path,
                                                         tmp_path):
    images, labels = data
    broken = images[:8].copy()
    broken[5] = np.nan
    folder = tmp_path / "maps"
    with pytest.raises(Exception, match="NaN or Inf"):
        tf_ray.write_maps(_dataset(broken, labels[:8]), model_path, folder, batch_size=8,
                          shard_size=8)
    assert os.listdir(folder) == [".tf-signsal-maps.json"]  # no shard, no marker


def test_bad_arguments_are_refused_before_any_work(local_ray, data, model_path, tmp_path):
    images, labels = data
    dataset = _dataset(images[:8], labels[:8])
    with pytest.raises(ValueError, match="`index_column` is 'id', but `dataset` has no such"):
        tf_ray.write_maps(dataset, model_path, tmp_path / "a", index_column="id")
    with pytest.raises(ValueError, match="`shard_size` must be a multiple of `batch_size`"):
        tf_ray.write_maps(dataset, model_path, tmp_path / "a", batch_size=32, shard_size=48)
    with pytest.raises(TypeError, match="`dataset` must be a ray.data.Dataset"):
        tf_ray.evaluate(images, model_path)
    with pytest.raises(ValueError, match="`explainer` is not taken on Ray"):
        tf_ray.evaluate(dataset, model_path, explainer=lambda x: x)
    with pytest.raises(ValueError, match="`num_cpus` must be a finite number > 0"):
        tf_ray.evaluate(dataset, model_path, num_cpus=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tf_ray.evaluate(dataset, tmp_path / "missing.keras")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("the user's")
    with pytest.raises(FileExistsError, match="a folder that write_maps did not write"):
        tf_ray.write_maps(dataset, model_path, theirs, batch_size=8, shard_size=8)
    assert os.listdir(theirs) == ["notes.txt"]


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED_DATA, "cifar10")),
                    reason="the README's Ray snippet reads CIFAR-10 from ../shared/data")
def test_readme_ray_snippets_run_as_written(local_ray, tmp_path, monkeypatch, capsys):
    # The README's ```python ray blocks (test_readme.py runs the ```python ones, without
    # Ray), in the scratch layout they assume: results/ and ../shared/data.
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        text = file.read()
    snippets = [(text[: m.start()].count("\n") + 1, m.group(1))
                for m in re.finditer(r"```python ray\n(.*?)```", text, re.S)]
    assert snippets
    repository = tmp_path / "repository"
    repository.mkdir()
    os.symlink(os.path.join(ROOT, "results"), repository / "results")
    os.symlink(os.path.abspath(os.path.join(SHARED_DATA, "..")), tmp_path / "shared")
    monkeypatch.chdir(repository)
    namespace: dict = {}
    for line, code in snippets:
        try:
            exec(compile(code, f"README.md, line {line}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"the README snippet at line {line} fails: {error!r}") from error
    assert "AUC" in capsys.readouterr().out  # the printed summary
    stored = tf_signsal.read_maps(repository / "runs" / "ray-maps")
    assert sorted(stored.maps) == ["active", "positive"] and len(stored) == namespace[
        "written"].images
