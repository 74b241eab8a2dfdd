"""examples/reproduce_paper.py and examples/results_table.py end to end on a tiny image tree."""

import json
import os
import sys

import keras
import numpy as np
import pytest

from conftest import write_image_tree
from reference import torch_state_of
from tf_signsal import data, models
from tf_signsal.evaluation import trapezoid_auc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples"))

import reproduce_paper  # noqa: E402
import results_table  # noqa: E402

pytestmark = pytest.mark.slow  # runs the examples


@pytest.fixture
def cifar_tree(tmp_path, rng):
    root = tmp_path / "data" / "cifar10"
    write_image_tree(str(root), "train", (32, 32), rng, per_class=3, fmt="jpg")
    write_image_tree(str(root), "test", (32, 32), rng, per_class=2, fmt="jpg")
    return tmp_path / "data"


def test_reproduce_paper_writes_a_run_and_reloads_it(cifar_tree, tmp_path, capsys):
    out = tmp_path / "results" / "cifar10_cnn"
    args = ["--run", "cifar10_cnn", "--data-dir", str(cifar_tree), "--epochs", "1",
            "--out", str(out)]
    reproduce_paper.main(args)
    assert {"model.keras", "history.json", "results.json", "curves.png", "maps.png"} <= set(
        os.listdir(out)
    )
    record = json.loads((out / "results.json").read_text())
    assert (record["dataset"], record["model"], record["epochs"], record["seed"]) == (
        "cifar10", "paper_cnn", 1, 42
    )
    assert record["split"] == "test" and record["n_images"] == 20
    assert record["train_seconds"] > 0 and record["eval_seconds"] > 0
    for name, curve in record["curves"].items():
        assert record["auc"][name] == pytest.approx(trapezoid_auc(record["fractions"], curve))

    # The accuracy is the saved model's on the test images, computed plainly here.
    model = keras.saving.load_model(out / "model.keras")
    correct = [np.argmax(model(x, training=False), -1) == y.numpy()
               for x, y in data.load("cifar10", "test", data_dir=cifar_tree)]
    assert record["accuracy"] == pytest.approx(np.mean(np.concatenate(correct)))

    # A second call finds the finished run and evaluates it without training again.
    capsys.readouterr()
    reproduce_paper.main(args + ["--split", "train", "--eval-every", "3"])
    assert "loading the finished run" in capsys.readouterr().out
    train_record = json.loads((out / "results_train.json").read_text())
    assert train_record["split"] == "train" and train_record["n_images"] == 10  # 30 / 3
    assert os.path.isfile(out / "curves_train.png")

    results_table.main(["--results", str(tmp_path / "results"),
                        "--out", str(tmp_path / "summary.md")])
    summary = (tmp_path / "summary.md").read_text()
    assert f"| cifar10_cnn | 1 | 20 | {record['accuracy']:.4f} (0.6307) |" in summary
    assert f"{record['auc']['positive/black']:.3f} (0.14)" in summary
    assert "cifar10_resnet18 (not run here)" in summary and "Train split" in summary


def test_reproduce_paper_evaluates_a_run_of_train_torch(cifar_tree, tmp_path, rng):
    """A model folder of examples/train_torch.py: state-<i>.npz shards and history.json."""
    keras.utils.set_random_seed(3)
    trained = models.paper_cnn((32, 32, 3), 10)
    state = torch_state_of(trained)
    torch_dir = tmp_path / "torch_run"
    torch_dir.mkdir()
    names = sorted(state)
    np.savez(torch_dir / "state-0.npz", **{name: state[name] for name in names[:5]})
    np.savez(torch_dir / "state-1.npz", **{name: state[name] for name in names[5:]})
    history = {"model": "PaperCNN", "framework": "torch 2.11.0", "device": "NVIDIA H200",
               "recipe": {"seed": 42, "epochs": 7}, "epochs_done": 7, "train_seconds": 21.5,
               "history": {"loss": [2.0] * 7}}
    (torch_dir / "history.json").write_text(json.dumps(history))

    out = tmp_path / "results" / "cifar10_cnn_torch"
    args = ["--run", "cifar10_cnn", "--data-dir", str(cifar_tree), "--out", str(out),
            "--torch-state", str(torch_dir)]
    with pytest.raises(SystemExit, match="must be a model folder of examples/train_torch.py"):
        reproduce_paper.main(args[:-1] + [str(tmp_path)])
    with pytest.raises(SystemExit, match="holds 7 epochs with seed 42"):
        reproduce_paper.main(args)  # --epochs defaults to 50
    reproduce_paper.main(args + ["--epochs", "7"])
    model = keras.saving.load_model(out / "model.keras")
    images = rng.random((3, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(model.predict(images, verbose=0),
                               trained.predict(images, verbose=0), rtol=1e-6, atol=1e-6)
    record = json.loads((out / "results.json").read_text())
    assert (record["epochs"], record["train_seconds"]) == (7, 21.5)
    assert (record["framework"], record["device"]) == ("torch 2.11.0", "NVIDIA H200")

    results_table.main(["--results", str(tmp_path / "results"),
                        "--out", str(tmp_path / "summary.md")])
    summary = (tmp_path / "summary.md").read_text()
    assert (f"| cifar10_cnn, trained in PyTorch on NVIDIA H200 | 7 | 20 | "
            f"{record['accuracy']:.4f} (0.6307) |") in summary
    assert f"{record['auc']['negative/white']:.3f} (0.14)" in summary


def test_reproduce_paper_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        reproduce_paper.main(["--run", "cifar10_cnn", "--epochs", "0"])
    assert "--epochs and --eval-every must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        reproduce_paper.main(["--run", "imagenette_resnet18_pretrained"])
    assert "--weights is required" in capsys.readouterr().err
