"""precision="bfloat16" against float32: speed of the five maps, agreement, protocol AUCs.

    python benchmarks/bench_precision.py cnn        # the committed paper CNN, CIFAR-10
    python benchmarks/bench_precision.py resnet18   # ResNet-18 (random seeded weights), CIFAR-10
    python benchmarks/bench_precision.py resnet50   # ResNet-50 224x224, random images
    python benchmarks/bench_precision.py resnet50 --variants   # + other ways to use bfloat16

Prints the CPU model and its avx512*/amx* flags first. Per model, in one process:

- time: `SignedSaliency(model, precision=p).explain(images)`, the five maps of the
  predicted classes (every class's gradient), median of repeats taken round-robin over
  float32 and bfloat16 after a warm-up call each; the speed-up is float32's / bfloat16's;
- agreement (on the timed images, and for the CIFAR-10 models on the AUC images too): the
  per-image Spearman rank correlation of each map with float32's (mean and minimum over
  images; numpy ranks, ties averaged), and the share of pixels whose active (inactive)
  membership flips (a nonzero active map in one precision, zero in the other);
- for the CIFAR-10 models, the paper's protocol (`AllegianceEvaluator(model,
  precision=p)`: black/white deletion, the paper's 13 fractions and 6 pairs) on CIFAR-10
  test images from ../shared/data: each pair's AUC in both precisions and the difference.

`--variants` (ResNet-50) also times other ways to use bfloat16 on the same images:
the copy with its first convolution and batch normalisation kept in float32, and the plain
all-class gradient loop on the bfloat16 copy with and without XLA (`jit_compile=True`).
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _machine import describe_machine  # noqa: E402

import tf_signsal  # noqa: E402
from tf_signsal import METHODS, SignedSaliency, data, models, precision  # noqa: E402
from tf_signsal.evaluation import pair_name  # noqa: E402
from tf_signsal.vocabulary import PRECISIONS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data")
CNN = os.path.join(ROOT, "results", "cifar10_cnn", "model.keras")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=ROOT, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def median_seconds(rows: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each row, after a warm-up call each, repeats round-robin."""
    for run in rows.values():
        run()
    times: dict[str, list[float]] = {label: [] for label in rows}
    for _ in range(repeats):
        for label, run in rows.items():
            start = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - start)
    return {label: float(np.median(values)) for label, values in times.items()}


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of `values`, ties given their mean rank (as Spearman's correlation wants)."""
    order = np.argsort(values, kind="stable")
    ranked = np.empty(len(values))
    ranked[order] = np.arange(len(values))
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, ranked) / counts)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image Spearman correlation of two (B, H, W) stacks of maps (1 where both are
    constant, e.g. an empty active map in both; 0 where only one is)."""
    found = []
    for x, y in zip(a.reshape(len(a), -1), b.reshape(len(b), -1)):
        rx, ry = ranks(x), ranks(y)
        if rx.std() == 0 or ry.std() == 0:
            found.append(1.0 if rx.std() == ry.std() else 0.0)
        else:
            found.append(float(np.corrcoef(rx, ry)[0, 1]))
    return np.array(found)


def agreement(exact, rounded) -> dict[str, str]:
    """Each map's Spearman (mean, min) and the active/inactive membership flips."""
    same = np.mean(exact.targets.numpy() == rounded.targets.numpy())
    rows = {"explained class agrees": f"{same:.1%}"}
    for method in METHODS:
        rho = spearman(exact[method].numpy(), rounded[method].numpy())
        rows[f"Spearman {method}"] = f"mean {rho.mean():.4f}, min {rho.min():.4f}"
    for method in ("active", "inactive"):
        flips = (exact[method].numpy() > 0) != (rounded[method].numpy() > 0)
        rows[f"{method} membership flips"] = f"{flips.mean():.2%} of pixels"
    return rows


def explain_all(saliency: SignedSaliency, images: np.ndarray, batch: int):
    return saliency.explain(images, batch_size=batch)


def cifar10(count: int) -> tuple[np.ndarray, np.ndarray]:
    test = data.load("cifar10", "test", data_dir=DATA, batch_size=250, shuffle=True)
    images, labels = [], []
    for x, y in test:
        images.append(x.numpy())
        labels.append(y.numpy())
        if sum(len(b) for b in images) >= count:
            break
    return np.concatenate(images)[:count], np.concatenate(labels)[:count]


def report(title: str, rows: dict[str, str]) -> None:
    print(f"\n{title}")
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        print(f"  {key:<{width}}  {value}")
    sys.stdout.flush()


def timing_and_agreement(model, images, batch, repeats, extra=None) -> None:
    """The round-robin timing of the five maps in both precisions (and of `extra`'s rows,
    label -> callable, whose speed-up over float32's five maps is shown too)."""
    saliencies = {p: SignedSaliency(model, precision=p) for p in PRECISIONS}
    rows = {f"{p} five maps, all classes": functools.partial(explain_all, s, images, batch)
            for p, s in saliencies.items()}
    seconds = median_seconds({**rows, **(extra or {})}, repeats)
    base = seconds["float32 five maps, all classes"]
    n = len(images)
    table = {label: f"{s:.2f} s ({n / s:.1f} images/s), speed-up {base / s:.2f}x"
             for label, s in seconds.items()}
    maps = {p: explain_all(s, images, batch) for p, s in saliencies.items()}
    table.update(agreement(maps["float32"], maps["bfloat16"]))
    report(f"time ({n} images, batch {batch}, median of {repeats}) and agreement", table)


def protocol_aucs(model, images, labels, batch) -> None:
    rows, results, maps = {}, {}, {}
    for p in PRECISIONS:
        start = time.perf_counter()
        evaluator = tf_signsal.AllegianceEvaluator(model, precision=p, batch_size=batch)
        results[p] = evaluator.evaluate((images, labels), verbose=0)
        rows[f"{p} protocol time"] = f"{time.perf_counter() - start:.1f} s"
        maps[p] = explain_all(evaluator.explainer, images, batch)
    worst = 0.0
    for pair, auc in results["float32"].auc.items():
        other = results["bfloat16"].auc[pair]
        worst = max(worst, abs(other - auc))
        rows[f"AUC {pair_name(pair)}"] = (
            f"float32 {auc:.4f}, bfloat16 {other:.4f}, diff {other - auc:+.4f}"
        )
    rows["largest |AUC diff|"] = f"{worst:.4f}"
    rows.update(agreement(maps["float32"], maps["bfloat16"]))
    report(f"the paper's protocol on {len(images)} CIFAR-10 test images "
           "(and the maps' agreement on them)", rows)


def _float32_first(model):
    """The bfloat16 copy, but its first convolution and batch normalisation in float32."""
    kept = {"conv1_conv", "conv1_bn"}

    def clone(layer):
        config = layer.get_config()
        if layer.name not in kept:
            config["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def _loop(model, num_classes, jit):
    @tf.function(jit_compile=jit, reduce_retracing=True)
    def all_class_loop(images):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(images)
            logits = tf.cast(model(images, training=False), tf.float32)
            columns = [logits[:, c] for c in range(num_classes)]
        return tf.stack([tape.gradient(column, images) for column in columns], axis=1)

    return all_class_loop


def variants(model, images) -> dict:
    """Other ways to use bfloat16, as rows for `timing_and_agreement` (whose agreement of
    the first-conv-float32 copy is printed here)."""
    copy = precision.compute_model(model, "bfloat16")
    first = _float32_first(model)
    tensor = tf.constant(images)
    kept = SignedSaliency(first)
    report("agreement of the copy with its first conv+BN in float32",
           agreement(SignedSaliency(model).explain(tensor), kept.explain(tensor)))
    loops = {"float32 plain loop": _loop(model, 10, False),
             "bfloat16 plain loop": _loop(copy, 10, False),
             "bfloat16 plain loop, XLA": _loop(copy, 10, True)}
    rows = {"bfloat16, first conv+BN float32": functools.partial(kept.explain, tensor)}
    rows.update({label: functools.partial(loop, tensor) for label, loop in loops.items()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=("cnn", "resnet18", "resnet50"))
    parser.add_argument("--timing-images", type=int, default=None)
    parser.add_argument("--auc-images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", action="store_true")
    args = parser.parse_args()
    print(describe_machine())
    print(f"commit {commit()}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"native bfloat16: {precision.has_native_bfloat16()}")
    keras.utils.set_random_seed(0)
    if args.model == "resnet50":
        model = keras.applications.ResNet50(weights=None, classes=10,
                                             classifier_activation=None)
        count = args.timing_images or 8
        images = np.random.default_rng(0).random((count, 224, 224, 3), dtype=np.float32)
        print("ResNet-50, 224x224, 10 classes, random seeded weights, random images")
        extra = variants(model, images) if args.variants else None
        timing_and_agreement(model, images, 8, args.repeats, extra)
        return
    if args.model == "cnn":
        model = keras.saving.load_model(CNN)
        print(f"the paper's CNN, trained ({os.path.relpath(CNN, ROOT)}), CIFAR-10")
        count, batch = args.timing_images or 256, 128
    else:
        model = models.resnet18()
        print("ResNet-18 (tf_signsal.models.resnet18), CIFAR-10 32x32: random seeded weights "
              "(no trained file is committed)")
        count, batch = args.timing_images or 128, 64
    images, labels = cifar10(max(count, args.auc_images))
    timing_and_agreement(model, images[:count], batch, args.repeats)
    if args.auc_images:
        protocol_aucs(model, images[:args.auc_images], labels[:args.auc_images], batch)


if __name__ == "__main__":
    main()
