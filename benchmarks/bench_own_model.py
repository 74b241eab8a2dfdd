"""What 1,000 classes cost: the five maps of a keras.applications MobileNetV2 at 96x96.

    python benchmarks/bench_own_model.py > benchmarks/bench_own_model.txt

The README's "Explaining your own model" model (random weights: `weights=None`; its
preprocessing, `Rescaling(1/127.5, offset=-1)`, inside it, fed [0, 255] pixels), on 2
random images: the five maps with every other class compared (exact, 999 rivals) and with
`rivals=5`, each called twice: the first call traces the gradient graph (most of its
time), the second is what every later batch costs. Agreement of rivals=5's active and
inactive maps with the exact ones: the share of pixels each keeps (non-zero), and the IoU
of those pixels and of the top 10% pixels of each map.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _machine import describe_machine  # noqa: E402

from tf_signsal import SignedSaliency  # noqa: E402


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / max(union, 1))


def top_share(maps: np.ndarray, share: float) -> np.ndarray:
    """Per image, the `share` of pixels of highest value (ties broken by position)."""
    flat = maps.reshape(len(maps), -1)
    keep = int(round(share * flat.shape[1]))
    mask = np.zeros(flat.shape, dtype=bool)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :keep]
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def timed(saliency: SignedSaliency, images: tf.Tensor):
    start = time.perf_counter()
    maps = saliency.explain(images)
    return maps, time.perf_counter() - start


def main() -> None:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"{describe_machine()}\nload average before: {load}")
    print("This machine is shared with other jobs: the times are of a loaded CPU.")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((96, 96, 3)),
        keras.layers.Rescaling(1 / 127.5, offset=-1),
        keras.applications.MobileNetV2(input_shape=(96, 96, 3), weights=None),
    ])
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)), tf.float32)

    exact = SignedSaliency(model, value_range=(0, 255))
    exact_maps, exact_first_s = timed(exact, images)
    _, exact_s = timed(exact, images)
    approximate = SignedSaliency(model, rivals=5, value_range=(0, 255))
    rival_maps, rival_first_s = timed(approximate, images)
    _, rival_s = timed(approximate, images)

    print("\nFive maps, 2 images, MobileNetV2 96x96, 1000 classes (random weights)")
    print("| rivals | s (first call, with tracing) | s (second call) |")
    print("| --- | ---: | ---: |")
    print(f"| exact (999) | {exact_first_s:.1f} | {exact_s:.1f} |")
    print(f"| 5 | {rival_first_s:.1f} | {rival_s:.1f} |")

    print("\nrivals=5 against exact, per map (2 images)")
    print("| map | non-zero: exact | non-zero: rivals=5 | IoU of non-zero pixels "
          "| IoU of top 10% pixels | identical |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for method in ("active", "inactive"):
        got, want = rival_maps[method].numpy(), exact_maps[method].numpy()
        print(f"| {method} | {np.mean(want > 0):.3f} | {np.mean(got > 0):.3f} | "
              f"{iou(got > 0, want > 0):.3f} | "
              f"{iou(top_share(got, 0.1), top_share(want, 0.1)):.3f} | "
              f"{bool(np.array_equal(got, want))} |")
    for method in ("standard", "positive", "negative"):  # no rivals in these
        assert np.array_equal(rival_maps[method].numpy(), exact_maps[method].numpy()), method
    print("standard/positive/negative: identical (they compare no classes)")


if __name__ == "__main__":
    main()
