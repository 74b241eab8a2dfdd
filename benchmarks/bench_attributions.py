"""Cost of the sign-aware attributions against n times the five gradient maps.

    python benchmarks/bench_attributions.py              # CNN and ResNet-18, 32x32
    python benchmarks/bench_attributions.py --skip-resnet

An attribution of n points (integrated gradients' steps, SmoothGrad's samples) takes the
gradient of every class at n points per image, so its natural cost is n times the five
gradient maps. The points go through the model as one batch of n x B images, which on a
CPU can make them cheaper than n separate passes. Rows, timed round-robin in this process
after a warm-up (median of --repeats):

  gradient              the five maps of the paper (the baseline, n = 1)
  gradient_x_input      the same pass, times the input (n = 1)
  integrated_gradients  --points midpoint steps from a black baseline
  smoothgrad            --points noisy copies

The last column divides each row by n x the gradient row: at most 1.0 is the promise.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_maps import median_seconds  # noqa: E402 (benchmarks/ is this script's folder)

from tf_signsal import IntegratedGradients, SignedSaliency, SmoothGrad  # noqa: E402
from tf_signsal.models import paper_cnn, resnet18  # noqa: E402


def measure(name: str, model, images: np.ndarray, points: int, repeats: int) -> None:
    attributions = {
        "gradient": ("gradient", 1),
        "gradient_x_input": ("gradient_x_input", 1),
        "integrated_gradients": (IntegratedGradients(steps=points, baseline="black"), points),
        "smoothgrad": (SmoothGrad(samples=points), points),
    }
    batch = tf.constant(images)
    rows = {}
    for label, (attribution, _) in attributions.items():
        saliency = SignedSaliency(model, attribution=attribution)
        rows[label] = lambda s=saliency: [m.numpy() for m in s.explain(batch).values()]
    seconds = median_seconds(rows, repeats)
    base = seconds["gradient"]
    print(f"\n{name}: batch {len(images)}, {model.output_shape[-1]} classes, n = {points}, "
          f"median of {repeats}")
    print("| attribution | points | s/batch | images/s | x gradient | / (n x gradient) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, (_, n) in attributions.items():
        s = seconds[label]
        print(f"| {label} | {n} | {s:.3f} | {len(images) / s:.1f} | {s / base:.2f} | "
              f"{s / (n * base):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=16, help="steps / samples (default 16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-resnet", action="store_true")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, "
          f"GPU: {bool(tf.config.list_logical_devices('GPU'))}")
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    images = rng.random((64, 32, 32, 3), dtype=np.float32)
    measure("paper CNN 32x32", paper_cnn((32, 32, 3), 10), images, args.points, args.repeats)
    if not args.skip_resnet:
        measure("ResNet-18 32x32", resnet18((32, 32, 3), 10), images[:16], args.points,
                args.repeats)


if __name__ == "__main__":
    main()
