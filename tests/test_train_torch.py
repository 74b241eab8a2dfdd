"""examples/train_torch.py's PyTorch modules against the Keras models they are copied into.

Runs where PyTorch and torchvision are installed (they are not tf_signsal dependencies, so this
is skipped elsewhere). PyTorch runs in a child process without TensorFlow, as on a GPU machine
with PyTorch alone (importing torchvision after TensorFlow can crash the process); its files
are then read here. The copy of the real GPU-trained models was checked when they were made
(README, "Where the models were trained").
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import write_image_tree
from tf_signsal import models

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
    pytest.skip("examples/train_torch.py needs PyTorch and torchvision", allow_module_level=True)

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
sys.path.insert(0, EXAMPLES)

import reproduce_paper  # noqa: E402

pytestmark = pytest.mark.slow  # trains with PyTorch in subprocesses

CHILD = """
import json, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import train_torch
torch.manual_seed(0)
module = train_torch.MODELS[sys.argv[2]]()
for name, value in module.state_dict().items():  # BatchNorm statistics away from 0 and 1
    if value.dtype == torch.float32 and value.ndim == 1:
        value.uniform_(0.5, 1.5)
images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
train_torch.save_state(module, images, sys.argv[3], "cpu")
sizes = [v.numel() for k, v in module.state_dict().items() if "num_batches" not in k]
print(json.dumps({"values": sum(sizes)}))
"""


@pytest.mark.parametrize("name, build", [("paper_cnn", models.paper_cnn),
                                         ("resnet18", models.resnet18)])
def test_torch_module_and_keras_model_give_the_same_logits(name, build, tmp_path):
    child = subprocess.run([sys.executable, "-c", CHILD, EXAMPLES, name, str(tmp_path)],
                           capture_output=True, text=True, check=True)
    state = {}
    for shard in sorted(tmp_path.glob("state-*.npz")):
        state.update(np.load(shard))
    model = build((32, 32, 3), 10)
    models.load_torch_state(model, state)
    check = np.load(tmp_path / "check.npz")
    got = model.predict(check["images"].astype(np.float32) / 255, verbose=0)
    np.testing.assert_allclose(got, check["logits"], rtol=1e-4, atol=1e-4)
    # Keras counts BatchNorm statistics as parameters, like the state dict's buffers.
    assert json.loads(child.stdout.splitlines()[-1])["values"] == model.count_params()


def test_train_torch_run_is_evaluated_by_reproduce_paper(tmp_path, rng):
    """Two epochs on a tiny image tree; PyTorch's last test accuracy is the one measured here."""
    data_dir = tmp_path / "data"
    write_image_tree(str(data_dir / "cifar10"), "train", (32, 32), rng, per_class=3, fmt="png")
    write_image_tree(str(data_dir / "cifar10"), "test", (32, 32), rng, per_class=2, fmt="png")
    subprocess.run([sys.executable, os.path.join(EXAMPLES, "train_torch.py"), "--dataset",
                    "cifar10", "--models", "paper_cnn", "--data-dir", str(data_dir), "--out",
                    str(tmp_path / "torch"), "--epochs", "2"], check=True, capture_output=True)
    run_dir = tmp_path / "torch" / "paper_cnn"
    history = json.loads((run_dir / "history.json").read_text())
    assert history["epochs_done"] == 2 and history["recipe"]["seed"] == 42
    assert len(history["history"]["val_accuracy"]) == 2

    out = tmp_path / "results" / "cifar10_cnn_torch"
    reproduce_paper.main(["--run", "cifar10_cnn", "--data-dir", str(data_dir), "--epochs", "2",
                          "--torch-state", str(run_dir), "--out", str(out)])
    record = json.loads((out / "results.json").read_text())
    assert record["n_images"] == 20
    assert record["accuracy"] == pytest.approx(history["history"]["val_accuracy"][-1])
