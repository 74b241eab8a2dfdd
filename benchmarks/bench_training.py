"""Seconds per training epoch of the paper's (dataset, model) pairs on this machine.

Each pair trains with `training.fit_paper_recipe` (batch 128) on the real data of
`../shared/data` (random images of the same shapes when it is absent): the mean time of a few
training steps after warm-up, extrapolated to a full epoch (CIFAR-10 50,000 images; Imagenette
9,296, its 9,469 training images less the 173 non-RGB ones the paper drops), plus the test
evaluation run after every epoch (the local copies: 5,000 CIFAR-10 and 1,931 Imagenette test
images). Ratios are against the paper CNN on CIFAR-10 timed in the same process.

The ConvNeXt-Tiny row is the paper's linear probe (frozen backbone in inference mode, only the
Dense(1000 -> 10) head trains) built with weights=None: the cost does not depend on the weights.

    python benchmarks/bench_training.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_signsal import data, models, training  # noqa: E402

SHARED_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                           "data")
BATCH = 128
BUDGET_S = 2.5 * 3600
TRAIN_IMAGES = {"cifar10": 50_000, "imagenette": 9_296}
TEST_IMAGES = {"cifar10": 5_000, "imagenette": 1_931}
SIZE = {"cifar10": 32, "imagenette": 224}
PAIRS = [
    ("cifar10", "paper_cnn"),
    ("cifar10", "resnet18"),
    ("imagenette", "paper_cnn"),
    ("imagenette", "resnet18"),
    ("imagenette", "convnext_tiny probe"),
]


class _StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def _datasets(name, steps, eval_batches):
    if os.path.isdir(SHARED_DATA):
        options = {"data_dir": SHARED_DATA, "drop_grayscale": name == "imagenette"}
        train = data.load(name, "train", shuffle=True, **options)
        test = data.load(name, "test", **options)
        return train.take(steps), test.take(eval_batches), "shared/data"
    rng = np.random.default_rng(0)
    size = SIZE[name]
    images = rng.random((BATCH, size, size, 3), dtype=np.float32)
    labels = rng.integers(0, 10, BATCH)
    one = tf.data.Dataset.from_tensors((images, labels))
    return one.repeat(steps), one.repeat(eval_batches), "random"


def _build(name, model):
    shape = (SIZE[name], SIZE[name], 3)
    if model == "paper_cnn":
        return models.paper_cnn(shape, 10)
    if model == "resnet18":
        return models.resnet18(shape, 10)
    return models.convnext_tiny(shape, 10, weights=None, frozen=True)


def time_pair(name, model_name, warmup, steps, eval_batches):
    """(train seconds per epoch, test-evaluation seconds per epoch, data source)."""
    train, test, source = _datasets(name, warmup + steps, eval_batches + 1)
    keras.utils.set_random_seed(42)
    model = _build(name, model_name)
    timer = _StepTimer()
    training.fit_paper_recipe(model, train, epochs=1, callbacks=[timer], verbose=0)
    step_s = (timer.ends[-1] - timer.ends[warmup - 1]) / steps
    model.evaluate(test.take(1), verbose=0)  # warm-up (tracing)
    start = time.perf_counter()
    model.evaluate(test.skip(1), verbose=0)
    eval_batch_s = (time.perf_counter() - start) / eval_batches
    train_s = step_s * math.ceil(TRAIN_IMAGES[name] / BATCH)
    eval_s = eval_batch_s * math.ceil(TEST_IMAGES[name] / BATCH)
    return train_s, eval_s, source


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    args = parser.parse_args()
    rows = []
    for name, model_name in PAIRS:
        small = name == "cifar10"
        warmup = 3 if small else 2
        steps = (20 if small else 4) if not args.quick else 2
        eval_batches = (8 if small else 2) if not args.quick else 1
        train_s, eval_s, source = time_pair(name, model_name, warmup, steps, eval_batches)
        rows.append((name, model_name, train_s, eval_s, steps, source))
        print(f"  timed {name} {model_name}: {train_s:.0f} s train + {eval_s:.0f} s test",
              flush=True)
    base = rows[0][2] + rows[0][3]
    print(f"\ncores: {os.cpu_count()}, batch {BATCH}, data: {rows[0][5]}; "
          f"ratio = (train + test) / that of cifar10 paper_cnn\n")
    print("| dataset | model | train s/epoch | test s/epoch | total s/epoch | ratio "
          "| epochs in 2.5 h | timed steps |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, model_name, train_s, eval_s, steps, _ in rows:
        total = train_s + eval_s
        print(f"| {name} | {model_name} | {train_s:,.0f} | {eval_s:,.0f} | {total:,.0f} "
              f"| {total / base:.1f}x | {BUDGET_S / total:.1f} | {steps} |")


if __name__ == "__main__":
    main()
