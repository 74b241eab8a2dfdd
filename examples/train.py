"""Train one of the paper's (dataset, model) pairs with the paper's recipe.

Writes `<out>/model.keras` (final epoch) and `<out>/history.json` (train and test loss and
accuracy after every epoch).

    python examples/train.py --dataset cifar10 --model paper_cnn --epochs 50 --out runs/cifar_cnn
    python examples/train.py --dataset imagenette --model convnext_probe --epochs 50 \\
        --out runs/imagenette_convnext          # needs the ImageNet weights (network)
    python examples/train.py --dataset cifar10 --model resnet18 --epochs 1 --limit 512 \\
        --out /tmp/quick                         # a quick check on 512 images

Without --data-dir the data come from tensorflow-datasets (downloaded once).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from tf_signsal import data, models, training  # noqa: E402

MODELS = ("paper_cnn", "resnet18", "resnet18_probe", "convnext_probe")
INPUT_SHAPES = {"cifar10": (32, 32, 3), "imagenette": (224, 224, 3)}  # the paper's sizes


def load_options(dataset: str, data_dir: str | None) -> dict:
    """`data.load` options of the paper: it drops Imagenette's non-RGB files (CIFAR-10 has none)."""
    return {"data_dir": data_dir, "drop_grayscale": dataset == "imagenette"}


def build(model: str, input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """The paper's models: from scratch, or frozen pre-trained backbones with a trained head."""
    if model == "paper_cnn":
        return models.paper_cnn(input_shape, 10)
    if model == "resnet18":
        return models.resnet18(input_shape, 10)
    if model == "resnet18_probe":  # needs --weights: a converted torchvision ResNet-18 file
        return models.resnet18(input_shape, 10, weights=weights, frozen=True)
    return models.convnext_tiny(input_shape, 10, weights=weights or "imagenet", frozen=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=data.NAMES, required=True)
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--data-dir", default=None,
                        help="image-folder copy, e.g. ../shared/data (default: tfds download)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--limit", type=int, default=None,
                        help="quick run: about N images of each split (whole batches of 128)")
    parser.add_argument("--weights", default=None,
                        help="backbone weights file for the *_probe models")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    options = load_options(args.dataset, args.data_dir)
    train = data.load(args.dataset, "train", shuffle=True, seed=args.seed, **options)
    test = data.load(args.dataset, "test", **options)
    if args.limit is not None:
        batches = -(-args.limit // 128)  # data.load batches by 128
        # The test split is sorted by class: a quick run evaluates a shuffled sample of it.
        test = data.load(args.dataset, "test", shuffle=True, seed=args.seed, **options)
        train, test = train.take(batches), test.take(batches)
    keras.utils.set_random_seed(args.seed)  # the initial weights depend on it
    model = build(args.model, INPUT_SHAPES[args.dataset], args.weights)
    history = training.fit_paper_recipe(model, train, args.epochs, test_ds=test, seed=args.seed,
                                        out_dir=args.out, verbose=2)
    print(f"final test accuracy {history.history['val_accuracy'][-1]:.4f}; "
          f"wrote {os.path.join(args.out, 'model.keras')} and history.json")


if __name__ == "__main__":
    main()
