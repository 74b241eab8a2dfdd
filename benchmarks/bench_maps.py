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
from _machine import describe_machine  # noqa: E402

from tf_signsal import METHODS, SignedSaliency  # noqa: E402
from tf_signsal.models import paper_cnn, resnet18  # noqa: E402


def round_robin(rows: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall seconds, process CPU seconds) of each row. The repeats go round-robin
    over the rows, so that a load change on a shared machine hits every row alike instead of
    skewing one; CPU seconds, which waiting for a core does not count, are the steadier
    measure when other jobs share the machine."""
    for run in rows.values():
        run()  # warm-up: tracing and allocation
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in rows}
    for _ in range(repeats):
        for label, run in rows.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            times[label].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {
        label: tuple(float(x) for x in np.median(np.array(values), axis=0))
        for label, values in times.items()
    }


def median_seconds(rows: dict, repeats: int) -> dict[str, float]:
    """Median wall seconds of each row, timed round-robin (`round_robin`)."""
    return {label: wall for label, (wall, _) in round_robin(rows, repeats).items()}


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
    auto_mode = five.jacobian_mode  # what jacobian="auto" picks on this machine
    rows = {
        f"five maps (auto: {auto_mode})": lambda: five.explain(images),
        "five maps (batch_jacobian)": lambda: five_jacobian.explain(images),
        "vanilla gradient": lambda: one_class(images, predicted)[0].numpy(),
        "all-class loop": lambda: loop(images).numpy(),
        "all-class jacobian": lambda: jacobian(images).numpy(),
        "authors' way (5 + 2C passes)": lambda: authors(images),
    }
    timings = round_robin(rows, repeats)
    loop_wall, loop_cpu = timings["all-class loop"]
    five_wall, five_cpu = timings[next(iter(rows))]
    print(f"\n{name}: batch {batch}, {num_classes} classes, median of {repeats}")
    print("| row | s/batch | images/s | x all-class loop | x five maps | CPU s | CPU x loop |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, (wall, cpu) in timings.items():
        print(
            f"| {label} | {wall:.3f} | {batch / wall:.1f} | {wall / loop_wall:.2f} | "
            f"{wall / five_wall:.2f} | {cpu:.3f} | {cpu / loop_cpu:.2f} |"
        )
    return [{"model": name, "row": label, "seconds": wall, "cpu_seconds": cpu}
            for label, (wall, cpu) in timings.items()]


def memory_case(kind: str, num_classes: int, classes_per_chunk: int) -> None:
    """Run in a child process: peak RSS of `kind` on 2 images of a 224x224 ResNet-18.

    kind "five": the five maps; "loop": the plain all-class loop baseline, which holds every
    class's gradient (B x C x 224 x 224 x 3 floats).
    """
    model = resnet18((224, 224, 3), num_classes)
    images = tf.constant(np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32))
    if kind == "five":
        saliency = SignedSaliency(model, classes_per_chunk=classes_per_chunk)
        run = lambda: saliency.explain(images)  # noqa: E731
    else:
        loop = baselines(model, num_classes)[0]
        run = lambda: loop(images).numpy()  # noqa: E731
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_mib": peak_rss_mib(), "seconds": seconds}))


def peak_rss_mib() -> float:
    """This process's peak resident set size.

    Linux's VmHWM belongs to the address space, so it starts afresh at exec; ru_maxrss
    would carry over the peak of the (large) parent that forked this child.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_memory() -> None:
    print("\nPeak RSS of 2 images at 224x224, ResNet-18 with C classes (one process each)")
    print("| rows | classes C | classes_per_chunk | peak RSS (MiB) | seconds (incl. tracing) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    cases = [("five", 10, 16), ("five", 100, 16), ("five", 1000, 16), ("loop", 10, 0),
             ("loop", 100, 0), ("loop", 1000, 0)]
    for kind, num_classes, chunk in cases:
        child = subprocess.run(
            [sys.executable, __file__, "--memory-case", kind, str(num_classes), str(chunk)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(child.stdout.strip().splitlines()[-1])
        label = "five maps" if kind == "five" else "all-class loop"
        print(f"| {label} | {num_classes} | {chunk or '-'} | {row['peak_mib']:.0f} | "
              f"{row['seconds']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS vs classes")
    parser.add_argument("--memory-case", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--skip-resnet", action="store_true")
    args = parser.parse_args()
    if args.memory_case:
        kind, num_classes, chunk = args.memory_case
        memory_case(kind, int(num_classes), int(chunk))
        return
    print(describe_machine())
    bench_model("paper CNN 32x32", paper_cnn((32, 32, 3), 10), batch=128, repeats=9)
    if not args.skip_resnet:
        bench_model("ResNet-18 224x224", resnet18((224, 224, 3), 10), batch=8, repeats=3)
    if args.memory:
        bench_memory()


if __name__ == "__main__":
    main()
