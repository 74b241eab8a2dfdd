"""ROAD's noisy linear imputation (`tf_signsal.evaluation.road.road_impute`) against a
per-image scipy loop, on CIFAR-10 (or Imagenette) test images.

    python benchmarks/bench_road.py                  # 256 CIFAR-10 images, 3 rounds
    python benchmarks/bench_road.py --images 64 --rounds 2
    python benchmarks/bench_road.py --dataset imagenette --images 8 --size 224 \
        --fractions 0.1 0.5 0.9 --rounds 1          # large images

For each fraction p the mask deletes the top p of the pixels of a seeded map:

  random   a uniform random map: scattered pixels, small holes (the benchmark's own
           "random" ranking looks like this)
  smooth   the same map blurred (sigma 2): blobs, larger holes, like a saliency map's

Rows, all timed in this process, round-robin over `--rounds` rounds (fastest kept):

  cg, cholesky one batched call of road_impute on all images with that solver (warm:
               compiled beforehand), noise_std 0.01 (ROAD's default)
  auto         the same with solver="auto" (its choice printed), the library's default
  scipy loop   per image: the sparse system (D_w - A)_uu built with numpy (vectorised, as
               ROAD's own `NoisyLinearImputer`), then one `scipy.sparse.linalg.spsolve`
               with every channel as a right-hand side (ROAD's own call); no noise

"x scipy" is the scipy loop's time over auto's. "max diff cg" / "max diff cholesky" are
the largest |road_impute(noise_std=0, solver=...) - scipy| over all images. The CPU's
model and its AVX-512/AMX flags are printed first.
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
from _machine import describe_machine  # noqa: E402

from tf_signsal.data import load  # noqa: E402
from tf_signsal.evaluation.fills import blur_images  # noqa: E402
from tf_signsal.evaluation.road import ROAD_NEIGHBOURS, auto_solver, road_impute  # noqa: E402

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
    parser.add_argument("--dataset", choices=("cifar10", "imagenette"), default="cifar10")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=None,
                        help="resize the images to SIZE x SIZE (default: the dataset's)")
    parser.add_argument("--fractions", type=float, nargs="+", default=FRACTIONS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    folder = os.path.join(DATA, args.dataset)
    if not os.path.isdir(folder):
        print(f"{args.dataset} not found under {DATA} (see ../shared/data/README.md): skipped")
        return
    batches = load(args.dataset, "test", data_dir=DATA, shuffle=True, seed=42,
                   drop_grayscale=args.dataset == "imagenette")
    images, count = [], 0
    for x, _ in batches:
        images.append(x.numpy())
        count += len(images[-1])
        if count >= args.images:
            break
    images = np.concatenate(images)[: args.images]
    if args.size:
        images = tf.image.resize(images, (args.size, args.size)).numpy()
    rng = np.random.default_rng(0)
    random_maps = rng.random(images.shape[:3])
    smooth_maps = blur_images(random_maps[..., None], 2.0).numpy()[..., 0]
    tensor = tf.constant(images)
    n = len(images)
    print(describe_machine())
    print(f"{n} {args.dataset} test images {'x'.join(map(str, images.shape[1:]))}, "
          f"{args.rounds} rounds (fastest kept), round-robin")
    for solver in ("cg", "cholesky"):  # compile (once per shape)
        road_impute(tensor, top_masks(random_maps, 0.5), solver=solver)

    print("| masks | p | CG iterations | cg ms/image | cholesky ms/image | auto chose "
          "| auto ms/image | scipy loop ms/image | x scipy | max diff cg | max diff cholesky |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    totals = np.zeros(4)
    for kind, maps in (("random", random_maps), ("smooth", smooth_maps)):
        for fraction in args.fractions:
            masks = top_masks(maps, fraction)
            mask_tensor = tf.constant(masks)
            times = np.full(4, np.inf)
            for _ in range(args.rounds):
                for column, solver in enumerate(("cg", "cholesky", "auto")):
                    start = time.perf_counter()
                    road_impute(tensor, mask_tensor, solver=solver).numpy()
                    times[column] = min(times[column], time.perf_counter() - start)
                start = time.perf_counter()
                reference = np.stack([scipy_impute(x, m) for x, m in zip(images, masks)])
                times[3] = min(times[3], time.perf_counter() - start)
            differences = []
            for solver in ("cg", "cholesky"):
                clean, iterations = road_impute(tensor, mask_tensor, 0.0, solver=solver,
                                                return_iterations=True)
                differences.append(np.abs(clean.numpy() - reference).max())
                if solver == "cg":
                    cg_iterations = iterations
            chose = auto_solver(images.shape[1], images.shape[2])
            totals += times
            cg, cholesky, auto, slow = times / n * 1e3
            print(f"| {kind} | {fraction:.1f} | {cg_iterations} | {cg:.3f} | {cholesky:.3f} | "
                  f"{chose} | {auto:.3f} | {slow:.3f} | {slow / auto:.1f} | {differences[0]:.1e} | "
                  f"{differences[1]:.1e} |")
    print(f"all rows: cg {totals[0]:.2f} s, cholesky {totals[1]:.2f} s, auto {totals[2]:.2f} s, "
          f"scipy loop {totals[3]:.2f} s; auto {totals[3] / totals[2]:.1f}x faster than the "
          f"scipy loop (goal >= 3x), cg {totals[3] / totals[0]:.1f}x, "
          f"cholesky {totals[3] / totals[1]:.1f}x")


if __name__ == "__main__":
    main()
