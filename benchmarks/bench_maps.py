"""Cost of the five sign-aware maps against plain gradient baselines.

    python benchmarks/bench_maps.py            # CNN 32x32 and ResNet-18 224x224
    python benchmarks/bench_maps.py --memory   # also peak RSS with 10..1000 classes

Every row is timed in this process, after a warm-up call, as the median of
several repeats taken round-robin over the rows; the ratios compare rows
measured side by side.

Rows:
  five maps          SignedSaliency.explain, all five methods (one gradient pass)
  vanilla gradient   the predicted class's gradient only (one backward pass)
  all-class loop     a tf.function looping C tape.gradient calls on one persistent tape
  all-class jacobian the same with tape.batch_jacobian
  authors' way       each method recomputed, as the authors' code does: 5 + 2C backward passes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_signsal import METHODS, SignedSaliency  # noqa: E402
from tf_signsal.models import paper_cnn, resnet18  # noqa: E402


def median_seconds(rows: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each row; the repeats go round-robin over the rows, so that a load
    change on a shared machine hits every row alike instead of skewing one."""
    for run in rows.values():
        run()  # warm-up: tracing and allocation
    times: dict[str, list[float]] = {label: [] for label in rows}
    for _ in range(repeats):
        for label, run in rows.items():
            start = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - start)
    return {label: float(np.median(values)) for label, values in times.items()}


def baselines(model, num_classes: int):
    """tf.functions for the baselines, each returning tensors so that nothing is skipped."""

    @tf.function(reduce_retracing=True)
    def all_class_loop(images):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(images)
            logits = model(images, training=False)
            columns = [logits[:, c] for c in range(num_classes)]
        return tf.stack([tape.gradient(column, images) for column in columns], axis=1)

    @tf.function(reduce_retracing=True)
    def all_class_jacobian(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits = model(images, training=False)
        return tape.batch_jacobian(logits, images)

    @tf.function(reduce_retracing=True)
    def one_class(images, classes):
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits = model(images, training=False)
            score = tf.gather(logits, classes, axis=1, batch_dims=1)
        return tape.gradient(score, images), logits

    def authors_way(images):
        # The authors' code builds each map on its own: one backward pass for
        # standard, positive and negative each; 1 + C for active and for inactive.
        predicted = tf.argmax(model(images, training=False), axis=1)
        outputs = []
        for method in METHODS:
            g, _ = one_class(images, predicted)
            if method in ("active", "inactive"):
                rivals = [
                    one_class(images, tf.fill(tf.shape(predicted), c))[0]
                    for c in range(num_classes)
                ]
                outputs.append(tf.stack(rivals, axis=1))
            outputs.append(g)
        return [o.numpy() for o in outputs]

    return all_class_loop, all_class_jacobian, one_class, authors_way


def bench_model(name: str, model, batch: int, repeats: int) -> list[dict]:
    shape = model.inputs[0].shape[1:]
    num_classes = model.outputs[0].shape[-1]
    images = tf.constant(np.random.default_rng(0).random((batch, *shape), dtype=np.float32))
    loop, jacobian, one_class, authors = baselines(model, num_classes)
    predicted = tf.argmax(model(images, training=False), axis=1)
    five = SignedSaliency(model)
    five_jacobian = SignedSaliency(model, jacobian="batch_jacobian")
    rows = {
        f"five maps (auto: {five._engine.jacobian_mode})": lambda: five.explain(images),
        "five maps (batch_jacobian)": lambda: five_jacobian.explain(images),
        "vanilla gradient": lambda: one_class(images, predicted)[0].numpy(),
        "all-class loop": lambda: loop(images).numpy(),
        "all-class jacobian": lambda: jacobian(images).numpy(),
        "authors' way (5 + 2C passes)": lambda: authors(images),
    }
    seconds = median_seconds(rows, repeats)
    baseline = seconds["all-class loop"]
    five_seconds = seconds[next(iter(rows))]
    print(f"\n{name}: batch {batch}, {num_classes} classes, median of {repeats}")
    print("| row | s/batch | images/s | x all-class loop | x five maps |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, s in seconds.items():
        print(
            f"| {label} | {s:.3f} | {batch / s:.1f} | {s / baseline:.2f} | {s / five_seconds:.2f} |"
        )
    return [{"model": name, "row": label, "seconds": s} for label, s in seconds.items()]


def memory_case(num_classes: int, classes_per_chunk: int) -> None:
    """Run in a child process: peak RSS of the five maps of a 224x224 ResNet-18."""
    model = resnet18((224, 224, 3), num_classes)
    images = np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32)
    saliency = SignedSaliency(model, classes_per_chunk=classes_per_chunk)
    start = time.perf_counter()
    saliency.explain(images)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "classes": num_classes,
                "chunk": classes_per_chunk,
                "peak_mib": peak_mib,
                "seconds": seconds,
            }
        )
    )


def bench_memory() -> None:
    print(
        "\nPeak RSS, five maps of 2 images at 224x224, ResNet-18 with C classes (one process each)"
    )
    print("| classes C | classes_per_chunk | peak RSS (MiB) | seconds (incl. tracing) |")
    print("| ---: | ---: | ---: | ---: |")
    for num_classes, chunk in ((10, 16), (100, 16), (100, 100), (1000, 16)):
        child = subprocess.run(
            [sys.executable, __file__, "--memory-case", str(num_classes), str(chunk)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"| {num_classes} | {chunk} | {row['peak_mib']:.0f} | {row['seconds']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS vs classes")
    parser.add_argument("--memory-case", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--skip-resnet", action="store_true")
    args = parser.parse_args()
    if args.memory_case:
        memory_case(*args.memory_case)
        return
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, "
        f"GPU: {bool(tf.config.list_logical_devices('GPU'))}"
    )
    bench_model("paper CNN 32x32", paper_cnn((32, 32, 3), 10), batch=128, repeats=5)
    if not args.skip_resnet:
        bench_model("ResNet-18 224x224", resnet18((224, 224, 3), 10), batch=8, repeats=2)
    if args.memory:
        bench_memory()


if __name__ == "__main__":
    main()
