"""The engines against one process: wall time and each worker's start-up cost.

    python benchmarks/bench_engines.py                 # 512 CIFAR-10 test images, ~4 min
    python benchmarks/bench_engines.py --images 256 --rounds 1

Output of the committed run: benchmarks/bench_engines.txt.

Needs the [ray] extra (`pip install ".[ray]"`). The paper CNN (`tf_signsal.models.paper_cnn`,
untrained, seed 42; the timings do not depend on its weights), saved as a .keras file that
every worker loads. Rows, round-robin over --rounds, the fastest of each kept:

  one process     AllegianceEvaluator.evaluate (paper fractions and pairs) and
                  SignedSaliency.explain (five maps), in this process, TensorFlow and the
                  model loaded already
  ray, N actors   tf_signsal.ray.evaluate and write_maps on a local Ray (`ray.init` with the
                  machine's CPUs) with N actors of 0.5 CPU: the whole call, each actor's
                  start-up included
  start-up        in a fresh Ray actor: importing TensorFlow and tf_signsal, loading the
                  model, and the first batch (tracing) against a later one: what every
                  worker pays once, whatever the engine

The CPU model, core count and load average are printed: on a shared machine other jobs
change every row, the ratios less than the seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from _machine import describe_machine  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
BATCH = 64


def load_images(count: int) -> np.ndarray:
    """`count` CIFAR-10 test images in [0, 1] (seeded noise where the data is absent)."""
    from tf_signsal.data import load

    if not os.path.isdir(os.path.join(DATA, "cifar10")):
        print(f"(no {DATA}/cifar10: seeded random images)")
        return np.random.default_rng(0).random((count, 32, 32, 3), dtype=np.float32)
    images = [x for x, _ in load("cifar10", "test", data_dir=DATA, batch_size=256).unbatch()
              .take(count).as_numpy_iterator()]
    return np.stack(images).astype(np.float32)


class StartUp:
    """A Ray actor timing what a worker pays once."""

    def __init__(self):
        self.created = time.perf_counter()

    def measure(self, model_path: str, images: np.ndarray) -> dict[str, float]:
        start = time.perf_counter()
        import tensorflow  # noqa: F401

        import tf_signsal

        imported = time.perf_counter()
        model = tf_signsal.load_model(model_path)
        loaded = time.perf_counter()
        evaluator = tf_signsal.AllegianceEvaluator(model, batch_size=BATCH)
        evaluator.batch_counts(images)
        first = time.perf_counter()
        evaluator.batch_counts(images)
        later = time.perf_counter()
        return {"import TensorFlow and tf_signsal": imported - start,
                "load the model": loaded - imported,
                "first batch (tracing) minus a later one": (first - loaded) - (later - first),
                "a later batch": later - first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import keras
    import ray

    import tf_signsal
    import tf_signsal.ray as tf_ray
    from tf_signsal.models import paper_cnn

    print(f"{describe_machine()}\nRay {ray.__version__}; "
          f"load average at start {os.getloadavg()[0]:.1f}")
    images = load_images(args.images)
    work = tempfile.mkdtemp()
    model_path = os.path.join(work, "paper_cnn.keras")
    keras.utils.set_random_seed(42)
    model = paper_cnn()
    model.save(model_path)
    model = tf_signsal.load_model(model_path)

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, configure_logging=False,
             log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    print(f"ray.init: {time.perf_counter() - started:.1f} s")
    dataset = ray.data.from_items(
        [{"index": i, "image": image} for i, image in enumerate(images)]
    ).materialize()

    def one_evaluate():
        tf_signsal.AllegianceEvaluator(model, batch_size=BATCH).evaluate(images, verbose=0)

    def one_explain():
        tf_signsal.SignedSaliency(model).explain(images, batch_size=BATCH, verbose=0)

    def ray_evaluate(actors):
        return lambda: tf_ray.evaluate(dataset, model_path, batch_size=BATCH,
                                       concurrency=actors)

    def ray_write(actors):
        def write():
            folder = os.path.join(work, "maps")
            shutil.rmtree(folder, ignore_errors=True)
            tf_ray.write_maps(dataset, model_path, folder, batch_size=BATCH, shard_size=BATCH * 2,
                              concurrency=actors)
        return write

    rows = {("evaluate", "one process"): one_evaluate, ("explain", "one process"): one_explain}
    for actors in args.actors:
        rows[("evaluate", f"ray, {actors} actor(s)")] = ray_evaluate(actors)
        rows[("explain", f"ray write_maps, {actors} actor(s)")] = ray_write(actors)
    one_evaluate(), one_explain()  # traced once, as a warm process would be
    best = dict.fromkeys(rows, float("inf"))
    for _ in range(args.rounds):
        for key, run in rows.items():
            start = time.perf_counter()
            run()
            best[key] = min(best[key], time.perf_counter() - start)

    print(f"\n{args.images} images 32x32, batch {BATCH}, fastest of {args.rounds}")
    print("| work | how | seconds | images/s | x one process |")
    print("| --- | --- | ---: | ---: | ---: |")
    for (work_name, how), seconds in best.items():
        ratio = seconds / best[(work_name, "one process")]
        print(f"| {work_name} | {how} | {seconds:.1f} | {args.images / seconds:.0f} | "
              f"{ratio:.2f} |")

    probe = ray.remote(num_cpus=0.5)(StartUp).remote()
    costs = ray.get(probe.measure.remote(model_path, images[:BATCH]))
    print("\none worker's start-up (a fresh Ray actor)")
    print("| step | seconds |")
    print("| --- | ---: |")
    for step, seconds in costs.items():
        print(f"| {step} | {seconds:.2f} |")
    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
