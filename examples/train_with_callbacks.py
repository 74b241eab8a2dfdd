"""Train the paper's CNN on CIFAR-10 and watch its sign-aware maps and allegiance AUCs move.

    python examples/train_with_callbacks.py --data-dir ../shared/data --epochs 3 --limit 5000

SaliencyMapsCallback explains one test image per class before training and after each
epoch (`<out>/maps/epoch_NNNN.png|npz` + TensorBoard images); AllegianceCallback runs the
black/white deletion benchmark on held-out test images and adds its AUCs to the logs,
printed after each epoch by a callback placed after it. At the end, the script draws each
probe image's positive and active maps across the epochs (`<out>/evolution_*.png`) and the
AUCs per epoch (`<out>/allegiance_auc.png`). `tensorboard --logdir <out>/maps` shows the maps.
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
from matplotlib.figure import Figure  # noqa: E402

from tf_signsal import data, models, plotting, training  # noqa: E402
from tf_signsal.callbacks import AllegianceCallback, SaliencyMapsCallback  # noqa: E402


def one_per_class(test, num_classes: int):
    """The first image of each class met in `test`, in class order."""
    found: dict[int, np.ndarray] = {}
    for images, labels in test:
        for image, label in zip(images.numpy(), labels.numpy()):
            found.setdefault(int(label), image)
        if len(found) == num_classes:
            break
    labels = np.array(sorted(found))
    return np.stack([found[c] for c in labels]), labels


def take_images(test, count: int):
    images, labels = [], []
    for x, y in test.unbatch().take(count).batch(256):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def plot_auc_per_epoch(allegiance: AllegianceCallback) -> Figure:
    figure = Figure(figsize=(5, 3.5))
    axis = figure.subplots()
    epochs = allegiance.evaluated_epochs
    for pair in allegiance.results[epochs[0]].pairs:
        method, fill = pair
        axis.plot(
            epochs,
            [allegiance.results[e].auc[pair] for e in epochs],
            marker="o",
            linestyle="-" if fill == "black" else "--",
            label=f"{method} / {fill}",
        )
    axis.set_xlabel("epoch")
    axis.set_ylabel("deletion AUC (lower is better)")
    axis.set_xticks(epochs)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    figure.tight_layout()
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", default="../shared/data", help="folder holding cifar10/train and cifar10/test"
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="train on this many shuffled training images per epoch (quick run)",
    )
    parser.add_argument("--allegiance-images", type=int, default=256)
    parser.add_argument("--out", default="runs/train_with_callbacks")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if not os.path.isdir(os.path.join(args.data_dir, "cifar10")):
        sys.exit(f"CIFAR-10 image folders not found under {args.data_dir!r}; pass --data-dir")

    names = data.class_names("cifar10")
    train = data.load("cifar10", "train", data_dir=args.data_dir, shuffle=True, seed=args.seed)
    if args.limit is not None:
        train = train.take(-(-args.limit // 128))  # data.load batches by 128
    test = data.load("cifar10", "test", data_dir=args.data_dir, shuffle=True, seed=0)
    probe, probe_labels = one_per_class(test, len(names))
    # `test` reshuffles at every pass: draw the held-out images once, as arrays.
    x_test, y_test = take_images(test, max(1024, args.allegiance_images))
    held_out = (x_test[: args.allegiance_images], y_test[: args.allegiance_images])
    validation = test
    if args.limit is not None:
        validation = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(128)

    keras.utils.set_random_seed(args.seed)
    model = models.paper_cnn((32, 32, 3), len(names))
    maps_dir = os.path.join(args.out, "maps")
    maps_cb = SaliencyMapsCallback(probe, maps_dir, labels=probe_labels, class_names=names)
    allegiance = AllegianceCallback(held_out, save_dir=os.path.join(args.out, "allegiance"))

    def print_aucs(epoch, logs):
        aucs = {k.removeprefix("allegiance_auc_"): v for k, v in logs.items() if "_auc_" in k}
        print(
            f"epoch {epoch + 1} val_accuracy {logs.get('val_accuracy', float('nan')):.3f}  "
            "AUC " + "  ".join(f"{k} {v:.3f}" for k, v in aucs.items()),
            flush=True,
        )

    training.fit_paper_recipe(
        model,
        train,
        epochs=args.epochs,
        test_ds=validation,
        seed=args.seed,
        verbose=2,
        # The allegiance callback first, so that the callbacks after it see its AUCs.
        callbacks=[maps_cb, allegiance, keras.callbacks.LambdaCallback(on_epoch_end=print_aucs)],
    )

    for method in ("positive", "active"):
        for index, label in enumerate(probe_labels):
            figure = plotting.plot_map_evolution(maps_dir, index, method)
            plotting.save_figure(
                figure, os.path.join(args.out, f"evolution_{method}_{index}_{names[label]}.png")
            )
    plotting.save_figure(
        plot_auc_per_epoch(allegiance), os.path.join(args.out, "allegiance_auc.png")
    )
    print(f"figures in {args.out}: maps/epoch_NNNN.png, evolution_*.png, allegiance_auc.png")


if __name__ == "__main__":
    main()
