"""Train the paper's models in PyTorch (the authors' framework) on a machine without TensorFlow.

    python examples/train_torch.py --dataset cifar10 --models resnet18 paper_cnn \\
        --data-dir ../shared/data --out runs/torch_cifar10
    python examples/reproduce_paper.py --run cifar10_resnet18 \\
        --torch-state runs/torch_cifar10/resnet18 --out results/cifar10_resnet18_torch

The recipe is the paper's (spec section 3.3): `torch.optim.AdamW` with its defaults except the
learning rate 1e-3 and weight decay 0.01, cross-entropy, batches of 128 reshuffled every epoch,
no augmentation, the final epoch kept, seed 42. The modules are PyTorch's own (torchvision's
`resnet18` with the paper's Linear(1000 -> 10) head; the paper's CNN) and their parameter
names are the Keras layer names of `tf_signsal.models`, so `models.load_torch_state` copies a
trained state dict into the Keras model for evaluation with tf_signsal.

For each model, `<out>/<model>/` gets:
- `state-<i>.npz`: the state dict as numpy arrays, split into files below 15 MiB;
- `history.json`: `training.fit_paper_recipe`'s record (per-epoch loss/accuracy, and the test
  split's when it exists; epochs done, training seconds) plus framework and device;
- `check.npz`: 16 images (uint8) and their logits in eval mode, to check the conversion.

`--budget` caps each model's training seconds: training stops before an epoch that would not
fit (epochs done are recorded). Needs torch, torchvision, numpy and pillow, not TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from multiprocessing import Pool

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn

RECIPE = {  # the paper's, with the names of tf_signsal.training.RECIPE
    "optimizer": "torch.optim.AdamW",
    "learning_rate": 1e-3,
    "weight_decay": 0.01,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "epsilon": 1e-8,
    "loss": "cross-entropy on logits",
    "augmentation": None,
    "checkpoint": "final epoch",
    "batch_size": 128,
}
TEST_SPLITS = {"cifar10": "test", "imagenette": "val"}
SHARD_BYTES = 15 * 2**20


class PaperCNN(nn.Module):
    """The paper's CNN; parameter names are those of `tf_signsal.models.paper_cnn`."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem_conv = nn.Conv2d(3, 32, 7, stride=2, padding=3)
        self.stem_pool = nn.MaxPool2d(3, stride=2, padding=1)
        channels_in = 32
        for index, channels in enumerate((32, 64, 128), start=1):
            self.add_module(f"block{index}_conv1", nn.Conv2d(channels_in, channels, 3, 1, 1))
            self.add_module(f"block{index}_conv2", nn.Conv2d(channels, channels, 3, 2, 1))
            self.add_module(f"block{index}_conv3", nn.Conv2d(channels, channels, 3, 1, 1))
            channels_in = channels
        self.fc = nn.Linear(channels_in, num_classes)

    def forward(self, x):
        x = self.stem_pool(torch.relu(self.stem_conv(x)))
        for index in (1, 2, 3):
            for conv in ("conv1", "conv2", "conv3"):
                x = torch.relu(getattr(self, f"block{index}_{conv}")(x))
        return self.fc(x.mean(dim=(2, 3)))


class ResNet18Classifier(nn.Module):
    """torchvision's ResNet-18 (1000 logits) and the paper's Linear(1000 -> classes) head."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.resnet18 = torchvision.models.resnet18(weights=None)
        self.classifier = nn.Linear(1000, num_classes)

    def forward(self, x):
        return self.classifier(self.resnet18(x))


MODELS = {"paper_cnn": PaperCNN, "resnet18": ResNet18Classifier}


def _decode(path: str) -> np.ndarray | None:
    with Image.open(path) as image:
        # The paper's authors drop Imagenette's non-RGB files, as `data.load(drop_grayscale=True)`.
        return np.asarray(image) if image.mode == "RGB" else None


def load_split(data_dir: str, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images N x H x W x 3, int64 labels) of an image-folder split, classes sorted."""
    root = os.path.join(data_dir, dataset, split)
    classes = sorted(os.listdir(root))
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(os.listdir(os.path.join(root, name)))
        paths += [os.path.join(root, name, file) for file in files]
        labels += [label] * len(files)
    with Pool() as pool:
        images = pool.map(_decode, paths, chunksize=256)
    kept = [i for i, image in enumerate(images) if image is not None]
    print(f"{dataset}/{split}: {len(kept)} images ({len(paths) - len(kept)} non-RGB dropped)")
    return np.stack([images[i] for i in kept]), np.array(labels, np.int64)[kept]


def _as_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float [0, 1] NCHW (channels-last in memory, faster convolutions)."""
    return images.permute(0, 3, 1, 2).float().div(255).contiguous(
        memory_format=torch.channels_last)


def _evaluate(model, images, labels, batch_size=500):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(_as_input(images[start:start + batch_size]))
            target = labels[start:start + batch_size]
            loss += nn.functional.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
    return loss / len(images), correct / len(images)


def train(model, train_split, test_split, epochs, seed, budget, out_dir, device):
    """The paper's recipe; `history.json` is rewritten after every epoch."""
    images, labels = (torch.from_numpy(a).to(device) for a in train_split)
    test = None if test_split is None else [torch.from_numpy(a).to(device) for a in test_split]
    optimizer = torch.optim.AdamW(model.parameters(), lr=RECIPE["learning_rate"],
                                  weight_decay=RECIPE["weight_decay"])
    order = torch.Generator().manual_seed(seed)
    record = {"model": type(model).__name__, "framework": f"torch {torch.__version__}",
              "device": torch.cuda.get_device_name() if device == "cuda" else device,
              "recipe": {**RECIPE, "seed": seed, "epochs": epochs}, "epochs_done": 0,
              "train_seconds": 0.0, "history": {}}
    started = time.perf_counter()
    for epoch in range(epochs):
        elapsed = time.perf_counter() - started
        if epoch and elapsed * (epoch + 1) / epoch > budget:
            print(f"stopping after {epoch} epochs: the next would pass --budget {budget:.0f} s")
            break
        model.train()
        total_loss, correct = 0.0, 0
        permutation = torch.randperm(len(images), generator=order).to(device)
        for start in range(0, len(images), RECIPE["batch_size"]):
            batch = permutation[start:start + RECIPE["batch_size"]]
            logits = model(_as_input(images[batch]))
            loss = nn.functional.cross_entropy(logits, labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * len(batch)
            correct += (logits.argmax(1) == labels[batch]).sum()
        logs = {"loss": total_loss.item() / len(images), "accuracy": correct.item() / len(images)}
        if test is not None:
            logs["val_loss"], logs["val_accuracy"] = _evaluate(model, *test)
        for key, value in logs.items():
            record["history"].setdefault(key, []).append(value)
        record["epochs_done"] = epoch + 1
        record["train_seconds"] = time.perf_counter() - started
        with open(os.path.join(out_dir, "history.json"), "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=2)
        print(f"epoch {epoch + 1}: {logs} ({record['train_seconds']:.0f} s)", flush=True)


def save_state(model, check_images: np.ndarray, out_dir: str, device: str) -> None:
    """`state-<i>.npz` shards of the state dict, and `check.npz` (images, eval-mode logits)."""
    shards, shard, size = [], {}, 0
    for name, tensor in model.state_dict().items():
        array = tensor.detach().cpu().numpy()
        if shard and size + array.nbytes > SHARD_BYTES:
            shards.append(shard)
            shard, size = {}, 0
        shard[name], size = array, size + array.nbytes
    shards.append(shard)
    for index, arrays in enumerate(shards):
        np.savez(os.path.join(out_dir, f"state-{index}.npz"), **arrays)
    model.eval()
    with torch.no_grad():
        logits = model(_as_input(torch.from_numpy(check_images).to(device))).cpu().numpy()
    np.savez(os.path.join(out_dir, "check.npz"), images=check_images, logits=logits)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=tuple(TEST_SPLITS), required=True)
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), required=True)
    parser.add_argument("--data-dir", required=True, help="image-folder copy, e.g. ../shared/data")
    parser.add_argument("--out", required=True, help="output folder: one subfolder per model")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--budget", type=float, nargs="+", default=[float("inf")],
                        help="training seconds per model (one value, or one per model)")
    args = parser.parse_args(argv)
    if len(args.budget) not in (1, len(args.models)):
        parser.error(f"--budget takes 1 or {len(args.models)} values, received {args.budget}")
    budgets = args.budget * len(args.models) if len(args.budget) == 1 else args.budget
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
    train_split = load_split(args.data_dir, args.dataset, "train")
    test_dir = os.path.join(args.data_dir, args.dataset, TEST_SPLITS[args.dataset])
    test_split = (load_split(args.data_dir, args.dataset, TEST_SPLITS[args.dataset])
                  if os.path.isdir(test_dir) else None)
    check_images = (test_split or train_split)[0][:16]
    for name, budget in zip(args.models, budgets):
        out_dir = os.path.join(args.out, name)
        os.makedirs(out_dir, exist_ok=True)
        torch.manual_seed(args.seed)  # the initial weights depend on it
        model = MODELS[name]().to(device, memory_format=torch.channels_last)
        print(f"{name}: training on {device}", flush=True)
        train(model, train_split, test_split, args.epochs, args.seed, budget, out_dir, device)
        save_state(model, check_images, out_dir, device)


if __name__ == "__main__":
    main()
