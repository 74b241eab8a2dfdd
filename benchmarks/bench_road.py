"""ROAD's noisy linear imputation (`tf_signsal.evaluation.road.road_impute`) against a
per-image scipy loop, on CIFAR-10 test images.

    python benchmarks/bench_road.py                  # 256 images, 3 rounds
    python benchmarks/bench_road.py --images 64 --rounds 2

For each fraction p the mask deletes the top p of the pixels of a seeded map:

  random   a uniform random map: scattered pixels, small holes (the benchmark's own
           "random" ranking looks like this)
  smooth   the same map blurred (sigma 2): blobs, larger holes, like a saliency map's

Rows, all timed in this process, round-robin over `--rounds` rounds (fastest kept):

  road_impute  one batched, compiled call on all images (warm: compiled beforehand),
               noise_std 0.01 (ROAD's default)
  scipy loop   per image: the sparse system (D_w - A)_uu built with numpy (vectorised, as
               ROAD's own `NoisyLinearImputer`), then one `scipy.sparse.linalg.spsolve`
               with every channel as a right-hand side (ROAD's own call); no noise

"max diff" is the largest |road_impute(noise_std=0) - scipy| over all images.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402
import scipy.sparse.linalg  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_signsal.data import load  # noqa: E402
from tf_signsal.evaluation.fills import blur_images  # noqa: E402
from tf_signsal.evaluation.road import ROAD_NEIGHBOURS, road_impute  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


def scipy_impute(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """ROAD's linear imputation of one image, noise-free: one spsolve for all channels."""
    height, width, channels = image.shape
    out = image.astype(np.float64).reshape(-1, channels).copy()
    flat = mask.ravel()
    if not flat.any():
        return out.reshape(image.shape)
    if flat.all():
        out[:] = out.mean(axis=0)
        return out.reshape(image.shape)
    unknown = np.flatnonzero(flat)
    unknown_index = np.full(flat.size, -1)
    unknown_index[unknown] = np.arange(len(unknown))
    i, j = np.divmod(unknown, width)
    degree = np.zeros(len(unknown))
    rows, cols, values = [np.arange(len(unknown))], [np.arange(len(unknown))], []
    rhs = np.zeros((len(unknown), channels))
    for di, dj, weight in ROAD_NEIGHBOURS:
        y, x = i + di, j + dj
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        degree += weight * inside
        neighbour = np.where(inside, y * width + x, 0)
        deleted = inside & flat[neighbour]
        rows.append(np.flatnonzero(deleted))
        cols.append(unknown_index[neighbour[deleted]])
        values.append(np.full(deleted.sum(), -weight))
        known = inside & ~flat[neighbour]
        rhs[known] += weight * out[neighbour[known]]
    system = scipy.sparse.csc_matrix(
        (np.concatenate([degree, *values]), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(unknown), len(unknown)),
    )
    # One factorisation for all channels, as ROAD's own code (a (n, ch) right-hand side).
    out[unknown] = scipy.sparse.linalg.spsolve(system, rhs).reshape(len(unknown), channels)
    return out.reshape(image.shape)


def top_masks(maps: np.ndarray, fraction: float) -> np.ndarray:
    """The top `fraction` of each map's pixels (exactly round(fraction * H * W) of them)."""
    flat = maps.reshape(len(maps), -1)
    count = round(fraction * flat.shape[1])
    order = np.argsort(-flat, axis=1, kind="stable")[:, :count]
    masks = np.zeros(flat.shape, bool)
    np.put_along_axis(masks, order, True, axis=1)
    return masks.reshape(maps.shape)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    if not os.path.isdir(os.path.join(DATA, "cifar10", "test")):
        print(f"CIFAR-10 not found under {DATA} (see ../shared/data/README.md): skipped")
        return
    batches = load("cifar10", "test", data_dir=DATA, shuffle=True, seed=42)
    images = np.concatenate([x.numpy() for x, _ in batches.take(-(-args.images // 128))])
    images = images[: args.images]
    rng = np.random.default_rng(0)
    random_maps = rng.random(images.shape[:3])
    smooth_maps = blur_images(random_maps[..., None], 2.0).numpy()[..., 0]
    tensor = tf.constant(images)
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, GPU: "
          f"{bool(tf.config.list_physical_devices('GPU'))}; {len(images)} CIFAR-10 test images "
          f"32x32x3, {args.rounds} rounds (fastest kept)")
    road_impute(tensor, top_masks(random_maps, 0.5))  # compile (once per shape)

    print("| masks | p | CG iterations | road_impute ms/image | scipy loop ms/image "
          "| x faster | max diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    totals = np.zeros(2)
    for kind, maps in (("random", random_maps), ("smooth", smooth_maps)):
        for fraction in FRACTIONS:
            masks = top_masks(maps, fraction)
            mask_tensor = tf.constant(masks)
            fast = slow = np.inf
            for _ in range(args.rounds):
                start = time.perf_counter()
                road_impute(tensor, mask_tensor).numpy()
                fast = min(fast, time.perf_counter() - start)
                start = time.perf_counter()
                reference = np.stack([scipy_impute(x, m) for x, m in zip(images, masks)])
                slow = min(slow, time.perf_counter() - start)
            clean, iterations = road_impute(tensor, mask_tensor, 0.0, return_iterations=True)
            difference = np.abs(clean.numpy() - reference).max()
            totals += fast, slow
            n = len(images)
            print(f"| {kind} | {fraction:.1f} | {iterations} | {fast / n * 1e3:.3f} | "
                  f"{slow / n * 1e3:.3f} | {slow / fast:.1f} | {difference:.1e} |")
    print(f"all rows: road_impute {totals[0]:.2f} s, scipy loop {totals[1]:.2f} s, "
          f"{totals[1] / totals[0]:.1f}x faster (goal >= 20x)")


if __name__ == "__main__":
    main()
