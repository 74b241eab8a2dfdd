"""Reproduce one run of the paper: train with its recipe, run black/white deletion, draw.

    python examples/reproduce_paper.py --run cifar10_cnn --data-dir ../shared/data
    python examples/reproduce_paper.py --run cifar10_cnn --data-dir ../shared/data --split train
    python examples/reproduce_paper.py --run cifar10_cnn --data-dir ../shared/data \\
        --epochs 15 --seed 1 --out results/cifar10_cnn_seeds/seed1
    python examples/reproduce_paper.py --run imagenette_resnet18 --data-dir ../shared/data \\
        --epochs 2 --eval-every 16
    # A model trained by examples/train_torch.py (PyTorch, e.g. on a GPU), evaluated here:
    python examples/reproduce_paper.py --run cifar10_resnet18 --data-dir ../shared/data \\
        --torch-state runs/torch_cifar10/resnet18 --out results/cifar10_resnet18_torch
    # Pre-trained runs, on a connected machine (tfds download + ImageNet weights):
    python examples/reproduce_paper.py --run imagenette_convnext_pretrained
    python examples/reproduce_paper.py --run imagenette_resnet18_pretrained \\
        --weights resnet18_imagenet.weights.h5

The defaults are the paper's: 50 epochs of AdamW (lr 1e-3), seed 42, the whole test split, the
13 deletion fractions, black fill for standard/positive/active and white fill for
standard/negative/inactive (plus a seeded random ranking as a control). Without --data-dir the
data come from tensorflow-datasets.

Writes into --out (default results/<run>):
- `model.keras`, `history.json`: the trained model and its per-epoch logs. When a finished run
  with the same epochs and seed is already there, it is loaded instead of retrained
  (--retrain forces training), so a run can be re-evaluated cheaply.
- `results.json`: `AllegianceResult.to_dict()` plus dataset, model, epochs, seed, accuracy,
  split, n_images, train_seconds and eval_seconds; `curves.png`: the deletion curves beside the
  paper's Fig. 3/4 ones; `maps.png`: the five maps of one correctly classified test image per
  class (the paper's Fig. 1/2). With --split train: `results_train.json`, `curves_train.png`.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
import warnings
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from paper_reference import CURVES, RUNS  # noqa: E402
from train import INPUT_SHAPES, build, load_options  # noqa: E402

from tf_signsal import (  # noqa: E402
    METHODS,
    PAPER_PAIRS,
    AllegianceEvaluator,
    SignedSaliency,
    data,
    models,
    plotting,
    training,
)
from tf_signsal.evaluation import RANDOM_PAIRS, AllegianceResult  # noqa: E402

BUILD_NAMES = {  # run's model -> examples/train.py's model name
    ("paper_cnn", "scratch"): "paper_cnn",
    ("resnet18", "scratch"): "resnet18",
    ("resnet18", "pre-trained, frozen"): "resnet18_probe",
    ("convnext_tiny", "pre-trained, frozen"): "convnext_probe",
}


def replace_atomically(path: str, write: Callable[[str], object]) -> None:
    """Call `write(temporary_path)`, then rename the temporary file onto `path`: a reader, or a
    rerun after an interruption, never finds a half-written file. The temporary file sits in
    the same folder (so the rename is atomic) and keeps the extension (`model.save` wants
    ".keras")."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".partial-{os.getpid()}-{name}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json(path: str, record: dict, indent: int) -> None:
    """`record` as JSON at `path`, written atomically."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=indent)

    replace_atomically(path, write)


def run_model(args: argparse.Namespace, input_shape: tuple[int, int, int]) -> keras.Model:
    """The run's untrained model."""
    _, model_name, kind = RUNS[args.run]
    return build(BUILD_NAMES[model_name, kind], input_shape, args.weights)


def trained_model(args: argparse.Namespace, out: str, train: tf.data.Dataset,
                  test: tf.data.Dataset, input_shape: tuple[int, int, int]):
    """The run's model and its `history.json` record: loaded when `out` holds this finished run."""
    model_path, history_path = os.path.join(out, "model.keras"), os.path.join(out, "history.json")
    if not args.retrain and os.path.isfile(model_path) and os.path.isfile(history_path):
        with open(history_path, encoding="utf-8") as handle:
            record = json.load(handle)
        if record["epochs_done"] == args.epochs and record["recipe"]["seed"] == args.seed:
            print(f"loading the finished run in {out} (--retrain to train again)")
            return keras.saving.load_model(model_path), record
    keras.utils.set_random_seed(args.seed)  # the initial weights depend on it
    model = run_model(args, input_shape)
    training.fit_paper_recipe(model, train, args.epochs, test_ds=test, seed=args.seed,
                              out_dir=out, verbose=2)
    with open(history_path, encoding="utf-8") as handle:
        return model, json.load(handle)


def import_torch_run(args: argparse.Namespace, out: str,
                     input_shape: tuple[int, int, int]) -> None:
    """Write `out/model.keras` and `out/history.json` from a run of examples/train_torch.py."""
    shards = sorted(glob.glob(os.path.join(args.torch_state, "state-*.npz")))
    history_path = os.path.join(args.torch_state, "history.json")
    if not shards or not os.path.isfile(history_path):
        raise SystemExit(f"--torch-state must be a model folder of examples/train_torch.py "
                         f"(history.json, state-*.npz), received {args.torch_state}")
    with open(history_path, encoding="utf-8") as handle:
        record = json.load(handle)
    if record["epochs_done"] != args.epochs or record["recipe"]["seed"] != args.seed:
        raise SystemExit(f"--torch-state {args.torch_state} holds {record['epochs_done']} epochs "
                         f"with seed {record['recipe']['seed']}; pass --epochs and --seed to match")
    state = {}
    for path in shards:
        state.update(np.load(path))
    model = run_model(args, input_shape)
    models.load_torch_state(model, state)
    replace_atomically(os.path.join(out, "model.keras"), model.save)
    write_json(os.path.join(out, "history.json"), record, indent=2)


def every_kth(dataset: tf.data.Dataset, k: int, batch_size: int = 128) -> tf.data.Dataset:
    """Images 0, k, 2k, ... of a batched dataset (sorted by class, so every class stays)."""
    return dataset.unbatch().shard(k, 0).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def curves_figure(result: AllegianceResult, run: str, title: str, with_paper: bool) -> Figure:
    """Black and white deletion side by side (Figs. 3 and 4), the paper's curves drawn thin."""
    figure = Figure(figsize=(11, 4.2))
    axes = figure.subplots(1, 2)
    for axis, fill in zip(axes, ("black", "white")):
        pairs = [pair for pair in result.pairs if pair[1] == fill]
        plotting.plot_allegiance(result, ax=axis, title=f"{fill} deletion", pairs=pairs)
        if with_paper:
            for line, pair in zip(list(axis.lines), pairs):
                paper = CURVES.get(run, {}).get(f"{pair[0]}/{fill}")
                if paper is not None:
                    axis.plot(np.array(result.fractions) * 100, paper, color=line.get_color(),
                              linestyle=":", linewidth=1, alpha=0.8)
    if with_paper and run in CURVES:
        title += " (dotted: the paper's curves)"
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def one_correct_per_class(model: keras.Model, shuffled: tf.data.Dataset, num_classes: int):
    """The first correctly classified image of each class met in `shuffled` (the paper's way)."""
    found: dict[int, tuple[np.ndarray, int]] = {}
    for images, labels in shuffled:
        predictions = np.argmax(model(images, training=False), axis=-1)
        for image, label, prediction in zip(images.numpy(), labels.numpy(), predictions):
            if label == prediction and int(label) not in found:
                found[int(label)] = (image, int(label))
        if len(found) == num_classes:
            break
    classes = sorted(found)
    return np.stack([found[c][0] for c in classes]), np.array(classes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", choices=tuple(RUNS), required=True)
    parser.add_argument("--data-dir", default=None,
                        help="image-folder copy, e.g. ../shared/data (default: tfds download)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--split", choices=("test", "train"), default="test",
                        help="split to evaluate (train: the paper's Appendix B)")
    parser.add_argument("--eval-every", type=int, default=1,
                        help="evaluate images 0, k, 2k, ... of the split only (a fixed subset)")
    parser.add_argument("--out", default=None, help="output folder (default results/<run>)")
    parser.add_argument("--weights", default=None,
                        help="backbone weights file for imagenette_resnet18_pretrained")
    parser.add_argument("--torch-state", default=None,
                        help="evaluate a run of examples/train_torch.py (its model folder) "
                             "instead of training here")
    parser.add_argument("--retrain", action="store_true",
                        help="train even when --out holds this finished run")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.eval_every < 1:
        parser.error(f"--epochs and --eval-every must be positive, received {args.epochs} "
                     f"and {args.eval_every}")
    if args.run == "imagenette_resnet18_pretrained" and args.weights is None:
        parser.error("--weights is required for imagenette_resnet18_pretrained: Keras hosts no "
                     "ImageNet ResNet-18 (see tf_signsal.models.resnet18)")

    dataset = RUNS[args.run][0]
    out = args.out or os.path.join("results", args.run)
    os.makedirs(out, exist_ok=True)
    options = load_options(dataset, args.data_dir)
    train = data.load(dataset, "train", shuffle=True, seed=args.seed, **options)
    test = data.load(dataset, "test", **options)
    if args.torch_state is not None:
        import_torch_run(args, out, INPUT_SHAPES[dataset])
    model, history = trained_model(args, out, train, test, INPUT_SHAPES[dataset])

    evaluated = test if args.split == "test" else data.load(dataset, "train", **options)
    if args.eval_every > 1:
        evaluated = every_kth(evaluated, args.eval_every)
    evaluator = AllegianceEvaluator(model, pairs=PAPER_PAIRS + RANDOM_PAIRS)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # every_kth's unbatch hides the length from TensorFlow; the split does end.
        warnings.filterwarnings("ignore", "tf_signsal: TensorFlow cannot tell", UserWarning)
        result = evaluator.evaluate(evaluated, verbose=2)
    eval_seconds = time.perf_counter() - started
    print(result.summary())

    suffix = "" if args.split == "test" else "_train"
    record = {
        **result.to_dict(),
        "run": args.run,
        "dataset": dataset,
        "model": RUNS[args.run][1],
        "training": RUNS[args.run][2],
        "epochs": args.epochs,
        "seed": args.seed,
        "accuracy": float(result.accuracy[PAPER_PAIRS[0]][0]),
        "split": args.split,
        "eval_every": args.eval_every,
        "train_seconds": history.get("train_seconds"),
        # Where examples/train_torch.py trained it (absent for runs trained here).
        **{key: history[key] for key in ("framework", "device") if key in history},
        "eval_seconds": eval_seconds,
    }
    write_json(os.path.join(out, f"results{suffix}.json"), record, indent=1)
    title = (f"{args.run}: {args.epochs} epochs, seed {args.seed}, {args.split} split, "
             f"{result.n_images} images, accuracy {record['accuracy']:.3f}")
    plotting.save_figure(curves_figure(result, args.run, title, args.split == "test"),
                         os.path.join(out, f"curves{suffix}.png"))

    if args.split == "test":
        # The paper: the first correct image per class in a shuffled test loader, seed 42.
        shuffled = data.load(dataset, "test", shuffle=True, seed=42, **options)
        images, labels = one_correct_per_class(model, shuffled, num_classes=10)
        maps = SignedSaliency(model).explain(images, targets=labels, methods=METHODS)
        titles = [plotting.class_label(c, data.class_names(dataset)) for c in labels]
        figure = plotting.plot_maps_grid(images, maps, titles=titles,
                                         suptitle=f"{args.run}: one correct test image per class")
        plotting.save_figure(figure, os.path.join(out, "maps.png"))
    print(f"accuracy {record['accuracy']:.4f}; AUCs "
          + ", ".join(f"{name} {value:.3f}" for name, value in record["auc"].items())
          + f"; wrote {out}")


if __name__ == "__main__":
    main()
