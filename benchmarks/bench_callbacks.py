"""Cost of the callbacks per logged epoch, against the time of a CIFAR-10 training epoch.

    python benchmarks/bench_callbacks.py [--data-dir ../shared/data] [--train-images 6400]

The paper's CNN trains on `--train-images` CIFAR-10 training images held in memory
(so the input pipeline does not blur the model's cost) with batch size 128; that
time is extrapolated linearly to the 50,000 images of a full epoch. Then, in the
same process and alternating with the baseline, `fit` runs the same epoch with
each callback: SaliencyMapsCallback (a 16-image probe, all five maps, png + npz +
TensorBoard) and AllegianceCallback (a 256-image test subset, the paper's six
pairs and 13 fractions). Each callback's cost is measured inside its own
epoch-end hook, after a warm-up epoch that traces every function (the one-off
tracing cost is printed separately). Ratios = callback cost / full epoch time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_signsal import data, models  # noqa: E402
from tf_signsal.callbacks import AllegianceCallback, SaliencyMapsCallback  # noqa: E402

FULL_EPOCH = 50_000
BATCH = 128


def take(dataset: tf.data.Dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for x, y in dataset.unbatch().take(count).batch(1024):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


class Timed(keras.callbacks.Callback):
    """Runs `inner` and records the seconds its epoch-end work takes."""

    def __init__(self, inner: keras.callbacks.Callback):
        super().__init__()
        self.inner = inner
        self.seconds: list[float] = []
        self.begin_seconds = 0.0

    def set_model(self, model):
        super().set_model(model)
        self.inner.set_model(model)

    def on_train_begin(self, logs=None):
        self.inner.on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        start = time.perf_counter()
        self.inner.on_epoch_begin(epoch, logs)
        self.begin_seconds = time.perf_counter() - start

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        self.inner.on_epoch_end(epoch, logs)
        self.seconds.append(time.perf_counter() - start)

    def on_train_end(self, logs=None):
        self.inner.on_train_end(logs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--train-images", type=int, default=6400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not os.path.isdir(os.path.join(args.data_dir, "cifar10")):
        sys.exit(f"CIFAR-10 not found under {args.data_dir!r}; pass --data-dir")

    x_train, y_train = take(
        data.load("cifar10", "train", data_dir=args.data_dir, shuffle=True), args.train_images
    )
    x_test, y_test = take(data.load("cifar10", "test", data_dir=args.data_dir, shuffle=True), 256)
    probe, probe_labels = x_test[:16], y_test[:16]

    keras.utils.set_random_seed(42)
    model = models.paper_cnn((32, 32, 3), 10)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    log_dir = tempfile.mkdtemp(prefix="bench_callbacks_")
    maps = Timed(
        SaliencyMapsCallback(  # each round's fit logs its epochs again: overwrite=True
            probe, log_dir, labels=probe_labels, class_names=data.class_names("cifar10"),
            overwrite=True,
        )
    )
    allegiance = Timed(AllegianceCallback((x_test, y_test), batch_size=BATCH))

    def epoch(callback=None) -> float:
        start = time.perf_counter()
        model.fit(
            x_train,
            y_train,
            batch_size=BATCH,
            epochs=1,
            verbose=0,
            callbacks=[] if callback is None else [callback],
        )
        return time.perf_counter() - start

    # Warm-up: trace the training step and every callback function once.
    epoch()
    start = time.perf_counter()
    maps.inner.set_model(model)
    maps.inner.log_epoch(0)
    maps_first = time.perf_counter() - start
    start = time.perf_counter()
    allegiance.inner.set_model(model)
    allegiance.inner.on_epoch_end(0, {})
    allegiance_first = time.perf_counter() - start

    baseline, maps_fit, allegiance_fit = [], [], []
    for _ in range(args.rounds):
        baseline.append(epoch())
        maps_fit.append(epoch(maps) - maps.begin_seconds)  # the epoch plus one logged epoch
        allegiance_fit.append(epoch(allegiance))
    scale = FULL_EPOCH / len(x_train)
    train_epoch = float(np.median(baseline)) * scale
    maps_cost = float(np.median(maps.seconds))
    allegiance_cost = float(np.median(allegiance.seconds))

    print(
        f"paper CNN, CIFAR-10, batch {BATCH}, {os.cpu_count()} CPUs; epoch timed on "
        f"{len(x_train)} in-memory images, extrapolated x{scale:.2f} to {FULL_EPOCH}"
    )
    print(f"{'':42s} {'seconds':>9s} {'/ epoch':>8s}")
    print(f"{'training epoch (50,000 images, no callback)':42s} {train_epoch:9.2f} {1:8.1%}")
    rows = [
        ("SaliencyMapsCallback, 16 images, per log", maps_cost),
        ("  first call (tracing), once per callback", maps_first),
        ("AllegianceCallback, 256 images, per log", allegiance_cost),
        ("  first call (tracing), once per callback", allegiance_first),
    ]
    for name, seconds in rows:
        print(f"{name:42s} {seconds:9.2f} {seconds / train_epoch:8.1%}")
    measured = (
        np.median(maps_fit) - np.median(baseline),
        np.median(allegiance_fit) - np.median(baseline),
    )
    print(
        f"check: fit with - without the callback, same {len(x_train)} images: maps "
        f"{measured[0]:+.2f} s, allegiance {measured[1]:+.2f} s (noisy on a shared machine)"
    )


if __name__ == "__main__":
    main()
