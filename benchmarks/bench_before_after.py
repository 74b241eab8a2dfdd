"""A refactor's two promises, checked with the old package imported beside the new one:
every number bit-identical, and no speed lost.

    git archive <old-commit> | tar -x -C /tmp/old
    python benchmarks/bench_before_after.py --old /tmp/old            # 1,000 CIFAR-10 images

The old checkout's `tf_signsal` is copied to a temporary folder as `tf_signsal_old` (every
`tf_signsal` word in its sources renamed), so both run in this one process on the same
images and the same committed CNN (`results/cifar10_cnn/model.keras`). Compared exactly:

  maps       the five maps of `SignedSaliency(model).explain`, every image
  curves     `AllegianceEvaluator(...).evaluate` as a JSON record: MoRF, LeRF and insertion,
             the six maps and the random control, black, white, blur and mean fills
  road       the same with the ROAD fill (on --road-images images: ROAD's solver is slow)
  sanity     `randomization_check` and `random_logit_check` (on --sanity-images images)

Then timed round-robin (--rounds rounds, the fastest of each kept, so that a change of load
hits old and new alike): the five maps, and the paper's protocol (13 fractions x 6 pairs).
The CPU it ran on is printed with the ratios.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _machine import describe_machine  # noqa: E402

import tf_signsal as new  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data")
MODEL = os.path.join(ROOT, "results", "cifar10_cnn", "model.keras")
METHODS = ("standard", "positive", "negative", "active", "inactive")


def import_old(checkout: str):
    """The checkout's package as `tf_signsal_old`, from a renamed temporary copy."""
    target = os.path.join(tempfile.mkdtemp(), "tf_signsal_old")
    shutil.copytree(os.path.join(checkout, "tf_signsal"), target)
    for folder, _, files in os.walk(target):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    text = re.sub(r"\btf_signsal\b", "tf_signsal_old", f.read())
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    sys.path.insert(0, os.path.dirname(target))
    return importlib.import_module("tf_signsal_old")


def test_images(old, count: int) -> tuple[np.ndarray, np.ndarray]:
    dataset = old.data.load("cifar10", "test", data_dir=DATA, batch_size=250, shuffle=True)
    images, labels = [], []
    for x, y in dataset:
        images.append(x.numpy())
        labels.append(y.numpy())
        if sum(len(b) for b in images) >= count:
            break
    return np.concatenate(images)[:count], np.concatenate(labels)[:count]


def maps_of(package, model, images):
    maps = package.SignedSaliency(model).explain(images, batch_size=128)
    return {name: np.asarray(maps[name]) for name in METHODS}


def curves_of(package, model, images, labels, fills):
    pairs = [(m, f) for f in fills for m in (*METHODS, "random")]
    evaluator = package.AllegianceEvaluator(
        model, pairs=pairs, orders=("morf", "lerf", "insertion")
    )
    return evaluator.evaluate((images, labels), verbose=0).to_dict()


def sanity_of(package, model, images):
    randomization = package.randomization_check(model, images).to_dict()
    return randomization, package.random_logit_check(model, images)


def same(a, b) -> bool:
    """Exact equality of nested records (dicts, lists, arrays, floats)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, (np.ndarray, np.generic)) or isinstance(b, (np.ndarray, np.generic)):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b or (a != a and b != b)  # NaN equals NaN here


def timed(function, rounds: int, rows: dict[str, object]) -> dict[str, float]:
    best = dict.fromkeys(rows, float("inf"))
    for _ in range(rounds):
        for name, argument in rows.items():
            start = time.perf_counter()
            function(argument)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="a checkout of the code before the change")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--road-images", type=int, default=100)
    parser.add_argument("--sanity-images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    old = import_old(args.old)
    print(describe_machine())
    model = keras.saving.load_model(MODEL)
    images, labels = test_images(old, args.images)
    print(f"{len(images)} CIFAR-10 test images, {MODEL}\n")

    checks = {
        "five maps": lambda p: maps_of(p, model, images),
        "curves (3 orders x 6 maps x black, white, blur, mean)": lambda p: curves_of(
            p, model, images, labels, ("black", "white", "blur", "mean")
        ),
        f"road curves ({args.road_images} images)": lambda p: curves_of(
            p, model, images[: args.road_images], labels[: args.road_images], ("road",)
        ),
        f"sanity checks ({args.sanity_images} images)": lambda p: sanity_of(
            p, model, images[: args.sanity_images]
        ),
    }
    for name, check in checks.items():
        print(f"| {name} | bit-identical: {same(check(old), check(new))} |", flush=True)

    print("\nround-robin, fastest of", args.rounds, "(each object built and warmed up first)")
    saliency = {name: p.SignedSaliency(model) for name, p in (("old", old), ("new", new))}
    evaluator = {name: p.AllegianceEvaluator(model) for name, p in (("old", old), ("new", new))}
    for name in ("old", "new"):
        saliency[name].explain(images[:128])
        evaluator[name].evaluate((images[:128], labels[:128]), verbose=0)
    maps = timed(lambda s: s.explain(images, batch_size=128), args.rounds, saliency)
    paper = timed(lambda e: e.evaluate((images, labels), verbose=0), args.rounds, evaluator)
    print("| row | old s | new s | new / old |\n| --- | ---: | ---: | ---: |")
    for name, seconds in (("five maps", maps), ("paper's protocol", paper)):
        print(f"| {name} | {seconds['old']:.2f} | {seconds['new']:.2f} | "
              f"{seconds['new'] / seconds['old']:.3f} |")


if __name__ == "__main__":
    main()
