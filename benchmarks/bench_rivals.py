"""`rivals=k`: agreement of the active/inactive maps with the exact ones, and the time saved.

    python benchmarks/bench_rivals.py --data-dir ../shared/data \\
        --model results/cifar10_cnn/model.keras

Agreement: the trained CIFAR-10 CNN of `examples/reproduce_paper.py` on every 5th test image
(1,000 images). For each k, against the exact maps (every other class):
  same pixels   share of pixels where "the map is non-zero" agrees
  IoU           intersection over union of the non-zero pixels
  identical     share of images whose map is exactly the exact map
Time: five maps of 2 images of a 1000-class ResNet-18 at 224x224 (random weights), exact
against k rivals, in this process (after a warm-up call).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_signsal import SignedSaliency, data  # noqa: E402
from tf_signsal.models import resnet18  # noqa: E402


def agreement(model: keras.Model, images: np.ndarray, ks: tuple[int, ...]) -> None:
    methods = ("active", "inactive")
    exact = SignedSaliency(model).explain(images, methods=methods)
    print(f"\nAgreement with the exact maps, {len(images)} CIFAR-10 test images, "
          f"{model.output_shape[-1]} classes")
    print("| k rivals | map | same pixels | IoU of non-zero pixels | identical images |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for k in ks:
        approximate = SignedSaliency(model, rivals=k).explain(images, methods=methods)
        for method in methods:
            got, want = approximate[method].numpy(), exact[method].numpy()
            nonzero_got, nonzero_want = got > 0, want > 0
            union = np.logical_or(nonzero_got, nonzero_want).sum()
            iou = np.logical_and(nonzero_got, nonzero_want).sum() / max(union, 1)
            same = np.mean(nonzero_got == nonzero_want)
            identical = np.mean(np.all(np.isclose(got, want, atol=1e-6), axis=(1, 2)))
            print(f"| {k} | {method} | {same:.4f} | {iou:.4f} | {identical:.3f} |")


def timing(ks: tuple[int, ...], repeats: int) -> None:
    model = resnet18((224, 224, 3), 1000)
    images = tf.constant(np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32))
    rows = {"exact (999 rivals)": SignedSaliency(model)}
    rows.update({f"rivals={k}": SignedSaliency(model, rivals=k) for k in ks})
    print("\nFive maps, 2 images, ResNet-18 224x224 with 1000 classes")
    print("| rivals | s/batch | x exact |")
    print("| --- | ---: | ---: |")
    seconds = {}
    for label, saliency in rows.items():
        saliency.explain(images)  # warm-up: tracing
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            saliency.explain(images)
            times.append(time.perf_counter() - start)
        seconds[label] = float(np.median(times))
    exact = seconds["exact (999 rivals)"]
    for label, s in seconds.items():
        print(f"| {label} | {s:.2f} | {s / exact:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default="results/cifar10_cnn/model.keras")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores")
    if os.path.isfile(args.model):
        test = data.load("cifar10", "test", data_dir=args.data_dir)
        images = np.concatenate([x.numpy() for x, _ in test])[::5]
        agreement(keras.saving.load_model(args.model), images, ks=(1, 2, 3, 5, 9))
    else:
        print(f"\nno model at {args.model}: run examples/reproduce_paper.py --run cifar10_cnn")
    if not args.skip_timing:
        timing(ks=(1, 10, 100), repeats=1)


if __name__ == "__main__":
    main()
