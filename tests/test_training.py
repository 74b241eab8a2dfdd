"""tf_signsal.training.fit_paper_recipe: optimiser and loss, per-epoch test accuracy, outputs."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_conv_net
from tf_signsal import training


def _dataset(rng, n=24, batch=8):
    images = rng.random((n, 8, 8, 3), dtype=np.float32)
    labels = rng.integers(0, 5, n).astype(np.int64)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch), images, labels


@pytest.mark.slow
def test_fit_writes_model_and_history_and_reload_predicts_the_same(tmp_path, rng):
    train, images, labels = _dataset(rng)
    test, test_images, _ = _dataset(rng, n=10, batch=4)
    model = small_conv_net()
    history = training.fit_paper_recipe(model, train, epochs=2, test_ds=test,
                                        out_dir=tmp_path / "run", verbose=0)
    assert set(os.listdir(tmp_path / "run")) == {"model.keras", "history.json"}
    record = json.loads((tmp_path / "run" / "history.json").read_text())
    assert record["epochs_done"] == 2 and record["recipe"]["seed"] == 42
    assert record["train_seconds"] > 0
    for name in ("model.keras", "history.json"):  # atomic writes, with the usual permissions
        assert (tmp_path / "run" / name).stat().st_mode & 0o044 == 0o044 & ~_umask()
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(record["history"][key]) == 2
        np.testing.assert_allclose(record["history"][key], history.history[key], rtol=1e-6)
    # Test accuracy after the last epoch is the accuracy of the final model on the test split.
    predictions = model.predict(test_images, verbose=0)
    final_test = [y for _, y in test.unbatch().as_numpy_iterator()]
    assert record["history"]["val_accuracy"][-1] == pytest.approx(
        np.mean(predictions.argmax(1) == np.array(final_test)), abs=1e-6)
    reloaded = keras.models.load_model(tmp_path / "run" / "model.keras")
    np.testing.assert_allclose(reloaded.predict(test_images, verbose=0), predictions,
                               rtol=1e-6, atol=1e-6)
    assert not reloaded.compiled  # saved without the optimizer state


@pytest.mark.slow
def test_recipe_optimizer_and_loss(rng):
    train, _, _ = _dataset(rng)
    model = small_conv_net()
    training.fit_paper_recipe(model, train, epochs=1, verbose=0)
    opt = model.optimizer
    assert isinstance(opt, keras.optimizers.AdamW)
    assert float(opt.learning_rate) == pytest.approx(1e-3)
    assert opt.weight_decay == pytest.approx(0.01)
    assert (opt.beta_1, opt.beta_2, opt.epsilon) == (0.9, 0.999, 1e-8)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert model.loss.get_config()["from_logits"] is True


@pytest.mark.slow
def test_one_step_equals_a_plain_adamw_update(rng):
    """A single batch, one epoch: the weights move by one AdamW step, computed by hand."""
    images = rng.random((8, 8, 8, 3), dtype=np.float32)
    labels = rng.integers(0, 5, 8).astype(np.int64)
    model = small_conv_net()
    before = [w.numpy().astype(np.float64) for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
            labels, model(images, training=True))
    grads = [g.numpy().astype(np.float64) for g in tape.gradient(loss, model.trainable_weights)]
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    training.fit_paper_recipe(model, ds, epochs=1, verbose=0)
    lr, wd, b1, b2, eps = 1e-3, 0.01, 0.9, 0.999, 1e-8
    for w0, g, w1 in zip(before, grads, model.trainable_weights):
        m, v = (1 - b1) * g, (1 - b2) * g * g  # first step, from zero moments
        # Decoupled decay, then Adam. Keras adds eps to sqrt(v) before bias correction,
        # PyTorch after: eps is effectively scaled by sqrt(1 - b2**t) relative to PyTorch.
        want = w0 * (1 - lr * wd) - lr * np.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(w1.numpy(), want, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_same_seed_same_training(rng):
    train, _, _ = _dataset(rng)
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(42)
        model = small_conv_net(seed=42)
        training.fit_paper_recipe(model, train.shuffle(24, seed=1), epochs=2, verbose=0)
        runs.append([w.numpy() for w in model.weights])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments(rng):
    train, images, labels = _dataset(rng)
    model = small_conv_net()
    with pytest.raises(ValueError, match="epochs"):
        training.fit_paper_recipe(model, train, epochs=0)
    with pytest.raises(TypeError, match="train_ds"):
        training.fit_paper_recipe(model, (images, labels), epochs=1)
    with pytest.raises(TypeError, match="test_ds"):
        training.fit_paper_recipe(model, train, epochs=1, test_ds=[1, 2])
    with pytest.raises(TypeError, match="model"):
        training.fit_paper_recipe("cnn", train, epochs=1)


def _umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask
