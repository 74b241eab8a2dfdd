"""All-class input gradients of 1,000-class networks: which way to compute them is fastest.

    python benchmarks/bench_classes.py --models mobilenetv2 resnet50   # speed + correctness
    python benchmarks/bench_classes.py --models vit --classes 32
    python benchmarks/bench_classes.py --memory --models mobilenetv2    # peak RSS, a child each
    python benchmarks/bench_classes.py --rivals --models mobilenetv2    # rivals=k vs exact maps

Models (random weights, 224x224, 1,000 classes, logits): keras.applications MobileNetV2 and
ResNet-50, and a ViT-B/16-sized model built here from Keras layers.

The strategies are plain tf.functions written here, each giving the input gradients of a
chunk of k classes, (B, k, H, W, ch); a driver calls it chunk after chunk over a subset of
the classes (a multiple of every k) and folds each chunk into a running max, as the engine
folds its rivals:
  (a) loop          one forward pass per chunk on a persistent tape, then one tape.gradient
                    per class with a one-hot output_gradients seed (tf_signsal's
                    jacobian="loop")
  (b) tiled         the batch tiled k times, one forward pass on k*B images and ONE backward
                    pass whose seed gives copy j the one-hot of class j
  (c) batch_jacobian tape.batch_jacobian (pfor-vectorised) of the chunk's logits, one forward
  five maps         tf_signsal.SignedSaliency(...).explain on a model whose logits are the
                    subset's (the full network, then a gather), jacobian "loop" and
                    "batch_jacobian": the package as it is today

Timing: one correctness call per row (every strategy's gradients against (a)'s), then
bench_maps.median_seconds (a warm-up, then the median of round-robin repeats). Cost per
class per image is the subset's time / (classes * B); images/s for 1,000 classes is
extrapolated linearly from it (checked on MobileNetV2: loop on 16 vs 48 classes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _machine import describe_machine  # noqa: E402
from bench_maps import median_seconds, peak_rss_mib  # noqa: E402

from tf_signsal import SignedSaliency  # noqa: E402

SIZE = (224, 224, 3)
NUM_CLASSES = 1000
MODELS = ("mobilenetv2", "resnet50", "vit")


class _ClassTokenAndPosition(keras.layers.Layer):
    """Prepends a learned class token and adds learned position embeddings."""

    def build(self, input_shape):
        tokens, width = input_shape[1], input_shape[2]
        self.token = self.add_weight(shape=(1, 1, width), initializer="zeros", name="token")
        self.position = self.add_weight(shape=(1, tokens + 1, width),
                                        initializer=keras.initializers.RandomNormal(0.0, 0.02),
                                        name="position")

    def call(self, patches):
        token = keras.ops.broadcast_to(self.token, (keras.ops.shape(patches)[0], 1,
                                                    patches.shape[-1]))
        return keras.ops.concatenate([token, patches], axis=1) + self.position


def vit_b16(width: int = 768, depth: int = 12, heads: int = 12, mlp: int = 3072) -> keras.Model:
    """A ViT-B/16-sized classifier (86M parameters), pre-norm blocks, logits out."""
    inputs = keras.Input(SIZE)
    x = keras.layers.Conv2D(width, 16, strides=16)(inputs)
    x = keras.layers.Reshape((-1, width))(x)
    x = _ClassTokenAndPosition()(x)
    for _ in range(depth):
        y = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        x = x + keras.layers.MultiHeadAttention(heads, width // heads)(y, y)
        y = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        y = keras.layers.Dense(mlp, activation="gelu")(y)
        x = x + keras.layers.Dense(width)(y)
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES)(x[:, 0]), name="vit_b16")


def build(name: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    if name == "mobilenetv2":
        return keras.applications.MobileNetV2(input_shape=SIZE, weights=None,
                                              classifier_activation=None)
    if name == "resnet50":
        return keras.applications.ResNet50(input_shape=SIZE, weights=None,
                                           classifier_activation=None)
    return vit_b16()


def subset_model(model: keras.Model, classes: np.ndarray) -> keras.Model:
    """The full network, then its logits of `classes` only: C = len(classes) for the maps."""
    return keras.Model(model.inputs, keras.ops.take(model.outputs[0], classes, axis=1))


def strategy(model: keras.Model, kind: str, k: int):
    """A tf.function (images, classes (k,)) -> input gradients (B, k, H, W, ch)."""
    signature = [tf.TensorSpec((None, *SIZE), tf.float32), tf.TensorSpec((k,), tf.int32)]

    @tf.function(input_signature=signature)
    def loop(images, classes):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(images)
            chunk = tf.gather(model(images, training=False), classes, axis=1)
        seeds = [tf.one_hot(tf.fill(tf.shape(images)[:1], j), k) for j in range(k)]
        return tf.stack([tape.gradient(chunk, images, output_gradients=s) for s in seeds], 1)

    @tf.function(input_signature=signature)
    def tiled(images, classes):
        batch = tf.shape(images)[0]
        copies = tf.tile(images, [k, 1, 1, 1])  # copy j = rows j*B .. (j+1)*B - 1
        with tf.GradientTape() as tape:
            tape.watch(copies)
            logits = model(copies, training=False)
        seed = tf.repeat(tf.one_hot(classes, logits.shape[-1]), batch, axis=0)
        gradient = tape.gradient(logits, copies, output_gradients=seed)
        return tf.transpose(tf.reshape(gradient, (k, batch, *SIZE)), (1, 0, 2, 3, 4))

    @tf.function(input_signature=signature)
    def jacobian(images, classes):
        with tf.GradientTape() as tape:
            tape.watch(images)
            chunk = tf.gather(model(images, training=False), classes, axis=1)
        return tape.batch_jacobian(chunk, images)

    return {"loop": loop, "tiled": tiled, "batch_jacobian": jacobian}[kind]


def rows_for() -> list[tuple[str, str, int]]:
    """(label, kind, k) of the rows; kind "five-<mode>" are SignedSaliency's maps."""
    rows = [("(a) loop k=16", "loop", 16)]
    rows += [(f"(b) tiled k={k}", "tiled", k) for k in (4, 8, 16, 32)]
    rows += [(f"(c) batch_jacobian k={k}", "batch_jacobian", k) for k in (8, 16, 32)]
    rows += [("five maps, jacobian=loop", "five-loop", 16),
             ("five maps, jacobian=batch_jacobian", "five-batch_jacobian", 16)]
    return rows


def runner(model, subset: np.ndarray, kind: str, k: int, images: tf.Tensor):
    """A call computing the subset's gradients (or five maps) for `images`; with
    collect=True it returns the gradients (B, len(subset), H, W, ch)."""
    if kind.startswith("five-"):
        saliency = SignedSaliency(subset_model(model, subset), jacobian=kind[5:])

        def five(collect: bool = False):
            maps = saliency.explain(images, verbose=0)
            return None if collect else [maps[m].numpy() for m in ("standard", "active")]

        return five
    function = strategy(model, kind, k)
    chunks = [tf.constant(subset[i:i + k], tf.int32) for i in range(0, len(subset), k)]

    def run(collect: bool = False):
        running, kept = None, []
        for classes in chunks:
            gradient = function(images, classes)
            if collect:
                kept.append(gradient.numpy())
            chunk_max = tf.reduce_max(gradient, axis=1)  # consumed, as the engine folds
            running = chunk_max if running is None else tf.maximum(running, chunk_max)
        return np.concatenate(kept, axis=1) if collect else running.numpy()

    return run


def random_images(batch: int, seed: int = 0) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).random((batch, *SIZE), dtype=np.float32))


def subset_classes(count: int) -> np.ndarray:
    return np.sort(np.random.default_rng(1).choice(NUM_CLASSES, count, replace=False))


def bench_speed(name: str, batch: int, count: int, repeats: int, linearity: bool,
                keep: list[str] | None = None) -> None:
    model = build(name)
    images = random_images(batch)
    subset = subset_classes(count)
    runs, per_image_classes = {}, {}
    for label, kind, k in rows_for():
        if keep and label != "(a) loop k=16" and not any(word in label for word in keep):
            continue
        runs[label] = runner(model, subset, kind, k, images)
        per_image_classes[label] = count * batch
    if linearity:  # same strategy on 16 and 48 classes: is the cost linear in classes?
        for n in (16, 48):
            label = f"(a) loop k=16, {n} classes"
            runs[label] = runner(model, subset_classes(n), "loop", 16, images)
            per_image_classes[label] = n * batch
    # Correctness: every strategy's gradients against (a)'s, on the same classes.
    reference = runs["(a) loop k=16"](collect=True)
    scale = float(np.abs(reference).max())
    differences = {}
    for label, run in runs.items():
        start = time.perf_counter()
        got = run(collect=True)
        print(f"  {name} {label}: first call {time.perf_counter() - start:.1f} s",
              file=sys.stderr, flush=True)
        if got is not None and got.shape == reference.shape:
            differences[label] = float(np.abs(got - reference).max()) / scale
    seconds = median_seconds(runs, repeats)
    base = seconds["(a) loop k=16"] / per_image_classes["(a) loop k=16"]
    print(f"\n{name}, batch {batch}, {count} of {NUM_CLASSES} classes, median of {repeats} "
          f"round-robin repeats (max |grad| of (a): {scale:.3g})")
    print("| strategy | s per class per image | x (a) loop k=16 | images/s at 1,000 classes "
          "(extrapolated) | max rel. diff vs (a) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, s in seconds.items():
        per_class = s / per_image_classes[label]
        diff = differences.get(label)
        print(f"| {label} | {per_class * 1e3:.2f} ms | {per_class / base:.2f} | "
              f"{1 / (per_class * NUM_CLASSES):.4f} | "
              f"{'-' if diff is None else f'{diff:.1e}'} |", flush=True)


def memory_case(name: str, batch: int, count: int, label: str) -> None:
    """In a child process: peak RSS of one row (model built, one call incl. tracing)."""
    model = build(name)
    images = random_images(batch)
    start = time.perf_counter()
    if label == "forward only":
        model(images, training=False).numpy()
    else:
        _, kind, k = next(row for row in rows_for() if row[0] == label)
        runner(model, subset_classes(count), kind, k, images)()
    print(json.dumps({"peak_mib": peak_rss_mib(), "seconds": time.perf_counter() - start}))


def bench_memory(name: str, batch: int, count: int, keep: list[str] | None = None) -> None:
    print(f"\n{name}, batch {batch}, {count} classes: peak RSS (VmHWM), one process per row")
    print("| row | peak RSS (MiB) | seconds (incl. tracing) |")
    print("| --- | ---: | ---: |")
    labels = [row[0] for row in rows_for()]
    labels = [label for label in labels if not keep or label == "(a) loop k=16"
              or any(word in label for word in keep)]
    for label in ["forward only", *labels]:
        child = subprocess.run(
            [sys.executable, __file__, "--memory-case", name, str(batch), str(count), label],
            capture_output=True, text=True,
        )
        if child.returncode != 0:
            print(f"| {label} | failed (exit {child.returncode}) | - |", flush=True)
            continue
        row = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"| {label} | {row['peak_mib']:.0f} | {row['seconds']:.1f} |", flush=True)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1))


def top_share(maps: np.ndarray, share: float = 0.1) -> np.ndarray:
    """Per image, a mask of its `share` highest pixels (ties broken by position)."""
    flat = maps.reshape(len(maps), -1)
    count = int(round(share * flat.shape[1]))
    mask = np.zeros_like(flat, bool)
    np.put_along_axis(mask, np.argsort(-flat, axis=1, kind="stable")[:, :count], True, axis=1)
    return mask.reshape(maps.shape)


def bench_rivals(name: str, batch: int, ks: tuple[int, ...], repeats: int) -> None:
    """rivals=k against the exact maps (all 1,000 classes) on `batch` random images."""
    model = build(name)
    images = random_images(batch, seed=2)
    methods = ("active",)
    rows = {f"rivals={k}": SignedSaliency(model, rivals=k) for k in ks}
    seconds = median_seconds(
        {label: (lambda s=s: s.explain(images, methods=methods, verbose=0)["active"].numpy())
         for label, s in rows.items()}, repeats)
    start = time.perf_counter()
    exact = SignedSaliency(model).explain(images, methods=methods, normalize=False,
                                          verbose=0)["active"].numpy()
    exact_seconds = time.perf_counter() - start  # one call, tracing included
    print(f"\n{name}: rivals=k against the exact active map, {batch} random images, "
          f"{NUM_CLASSES} classes")
    print("| rows | s per image | x exact | IoU active > 0 | IoU top 10% | active pixels |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| exact (999 rivals, one call incl. tracing) | {exact_seconds / batch:.2f} | 1.000 "
          f"| 1 | 1 | {np.mean(exact > 0):.3f} |")
    for label, saliency in rows.items():
        got = saliency.explain(images, methods=methods, normalize=False,
                               verbose=0)["active"].numpy()
        print(f"| {label} | {seconds[label] / batch:.3f} | "
              f"{seconds[label] / exact_seconds:.4f} | {iou(got > 0, exact > 0):.3f} | "
              f"{iou(top_share(got), top_share(exact)):.3f} | {np.mean(got > 0):.3f} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--classes", type=int, default=32, help="a multiple of every k (32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="peak RSS instead of speed")
    parser.add_argument("--rivals", action="store_true", help="rivals=k instead of speed")
    parser.add_argument("--rival-ks", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--rows", nargs="+", help="only the rows whose label contains one "
                        "of these (and (a) loop k=16), e.g. 'tiled k=8' 'jacobian k=16'")
    parser.add_argument("--memory-case", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_case:
        name, batch, count, label = args.memory_case
        memory_case(name, int(batch), int(count), label)
        return
    if args.classes % 32:
        parser.error(f"--classes must be a multiple of 32 (every k), received {args.classes}")
    print(describe_machine(), flush=True)
    for name in args.models:
        for batch in args.batch:
            if args.memory:
                bench_memory(name, batch, args.classes, keep=args.rows)
            elif args.rivals:
                bench_rivals(name, batch, tuple(args.rival_ks), args.repeats)
            else:
                bench_speed(name, batch, args.classes, args.repeats,
                            linearity=name == "mobilenetv2" and batch == 1, keep=args.rows)


if __name__ == "__main__":
    main()
