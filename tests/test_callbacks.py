"""Callbacks during model.fit: files written, maps equal to a direct explanation, logs, and
training left exactly as it is without them."""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from matplotlib.image import imread

from tf_signsal import callbacks, plotting
from tf_signsal.maps import METHODS, SignedSaliency

NUM_CLASSES = 4


def bn_net(kind="sequential", seed=0):
    """A tiny seeded conv net with BatchNorm (its moving statistics must not move)."""
    keras.utils.set_random_seed(seed)
    layers = [
        keras.layers.Conv2D(4, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(NUM_CLASSES),
    ]
    if kind == "sequential":
        model = keras.Sequential([keras.Input((8, 8, 3)), *layers])
    else:
        inputs = keras.Input((8, 8, 3))
        x = inputs
        for layer in layers:
            x = layer(x)
        model = keras.Model(inputs, x)
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    x = rng.random((48, 8, 8, 3), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, 48)
    return x, y


def fit(model, data, callback_list, epochs=2, seed=0, **kwargs):
    x, y = data
    keras.utils.set_random_seed(seed)
    return model.fit(
        x, y, batch_size=16, epochs=epochs, callbacks=callback_list, verbose=0, **kwargs
    )


def image_summaries(log_dir):
    """{tag: [steps]} of the image summaries in the event files of `log_dir`."""
    found = {}
    for name in os.listdir(log_dir):
        if not name.startswith("events.out.tfevents"):
            continue
        for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir, name)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    found.setdefault(value.tag, []).append(event.step)
    return found


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_maps_callback_during_fit(kind, data, tmp_path):
    x, y = data
    probe, labels = x[:3], y[:3]
    untrained = SignedSaliency(bn_net(kind)).explain(probe)
    model = bn_net(kind)
    names = ["a", "b", "c", "d"]
    maps_cb = callbacks.SaliencyMapsCallback(probe, tmp_path, labels=labels, class_names=names)
    fit(model, data, [maps_cb], validation_data=(x[:16], y[:16]))

    files = sorted(os.listdir(tmp_path))
    for epoch in (0, 1, 2):
        assert f"epoch_{epoch:04d}.png" in files
        assert f"epoch_{epoch:04d}.npz" in files
    assert not [f for f in files if f.endswith(".tmp")]

    png = imread(tmp_path / "epoch_0001.png")
    assert png.ndim == 3 and png.shape[0] > 100 and png.shape[1] > 100

    logged = {}
    for epoch in (0, 1, 2):
        with np.load(tmp_path / f"epoch_{epoch:04d}.npz") as npz:
            logged[epoch] = {k: npz[k] for k in npz.files}
    final = logged[2]
    expected_keys = {*METHODS, "logits", "predictions", "images", "labels", "epoch", "class_names"}
    assert set(final) == expected_keys
    assert int(final["epoch"]) == 2
    np.testing.assert_array_equal(final["images"], probe)
    np.testing.assert_array_equal(final["labels"], labels)
    assert list(final["class_names"]) == names
    assert final["logits"].shape == (3, NUM_CLASSES)
    np.testing.assert_array_equal(final["predictions"], np.argmax(final["logits"], axis=1))
    for method in METHODS:
        assert final[method].shape == (3, 8, 8)
        assert final[method].min() >= 0.0 and final[method].max() <= 1.0

    # Each file holds the maps of that epoch's weights: before training, the
    # untrained model's; at the end, those of the trained model recomputed now.
    recomputed, logits = SignedSaliency(model).explain_with_logits(probe)
    np.testing.assert_allclose(final["logits"], logits.numpy(), rtol=1e-5, atol=1e-6)
    for method in METHODS:
        np.testing.assert_allclose(final[method], recomputed[method].numpy(), atol=1e-5)
        np.testing.assert_allclose(logged[0][method], untrained[method].numpy(), atol=1e-5)
    # ...so training changed them (the traced functions read the live weights).
    assert not np.allclose(logged[0]["standard"], logged[2]["standard"], atol=1e-3)
    assert not np.allclose(logged[1]["logits"], logged[2]["logits"], atol=1e-4)

    summaries = image_summaries(tmp_path)
    for method in METHODS:
        assert sorted(summaries[f"maps/{method}"]) == [0, 1, 2]
    assert summaries["maps/inputs"] == [0]


def test_training_is_not_perturbed(data, tmp_path):
    x, y = data
    plain = bn_net()
    fit(plain, data, [], epochs=2, validation_data=(x[:16], y[:16]))
    watched = bn_net()
    maps_cb = callbacks.SaliencyMapsCallback(x[:4], tmp_path, formats=["npz"])
    fit(watched, data, [maps_cb], epochs=2, validation_data=(x[:16], y[:16]))
    # BatchNorm moving statistics are among the weights (non-trainable ones).
    assert len(plain.weights) == len(watched.weights)
    for a, b in zip(plain.weights, watched.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for a, b in zip(plain.optimizer.variables, watched.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # The comparison has teeth: the moving statistics did move during training.
    moving_mean = [w for w in watched.weights if "moving_mean" in w.path][0]
    assert np.any(moving_mean.numpy() != 0.0)


def test_tf_data_input_every_n_epochs_and_initial_epoch(data, tmp_path):
    x, y = data
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = bn_net("functional")
    maps_cb = callbacks.SaliencyMapsCallback(
        x[:2], tmp_path, methods=["positive", "active"], every_n_epochs=2, formats=("npz",)
    )
    model.fit(dataset, epochs=4, initial_epoch=1, callbacks=[maps_cb], verbose=0, shuffle=False)
    # Before training at the initial epoch (1), then after epochs 2 and 4.
    assert sorted(os.listdir(tmp_path)) == ["epoch_0001.npz", "epoch_0002.npz", "epoch_0004.npz"]
    with np.load(tmp_path / "epoch_0004.npz") as npz:
        assert set(npz.files) == {"positive", "active", "logits", "predictions", "images", "epoch"}


def test_targets_are_explained(data, tmp_path):
    x, _ = data
    model = bn_net()
    targets = np.array([3, 0, 1])
    maps_cb = callbacks.SaliencyMapsCallback(x[:3], tmp_path, targets=targets, formats=["npz"])
    maps_cb.set_model(model)
    maps_cb.log_epoch(7)
    expected = SignedSaliency(model).explain(x[:3], targets=targets)
    with np.load(tmp_path / "epoch_0007.npz") as npz:
        np.testing.assert_array_equal(npz["targets"], targets)
        for method in METHODS:
            np.testing.assert_allclose(npz[method], expected[method].numpy(), atol=1e-6)


def test_io_error_warns_and_training_goes_on(data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("the log folder's parent is a file, so it cannot be created")
    model = bn_net()
    maps_cb = callbacks.SaliencyMapsCallback(data[0][:2], blocker / "maps")
    with pytest.warns(RuntimeWarning, match="could not write"):
        history = fit(model, data, [maps_cb], epochs=2)
    assert len(history.history["loss"]) == 2


def test_failed_write_leaves_no_partial_file(data, tmp_path, monkeypatch):
    model = bn_net()
    maps_cb = callbacks.SaliencyMapsCallback(data[0][:2], tmp_path, formats=("png", "npz"))
    maps_cb.set_model(model)

    def full_disk(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps_cb.log_epoch(1)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 2 and all("No space left" in m for m in messages)
    assert os.listdir(tmp_path) == []


def test_argument_validation(images):
    with pytest.raises(ValueError, match="formats"):
        callbacks.SaliencyMapsCallback(images, "logs", formats=["png", "gif"])
    with pytest.raises(ValueError, match="every_n_epochs"):
        callbacks.SaliencyMapsCallback(images, "logs", every_n_epochs=0)
    with pytest.raises(TypeError, match="every_n_epochs"):
        callbacks.SaliencyMapsCallback(images, "logs", every_n_epochs=1.5)
    with pytest.raises(ValueError, match="rank 4"):
        callbacks.SaliencyMapsCallback(images[0], "logs")
    with pytest.raises(ValueError, match="labels"):
        callbacks.SaliencyMapsCallback(images, "logs", labels=[0, 1])
    with pytest.raises(ValueError, match="targets"):
        callbacks.SaliencyMapsCallback(images, "logs", targets=[0])
    with pytest.raises(ValueError, match="methods"):
        callbacks.SaliencyMapsCallback(images, "logs", methods=["upside_down"])
    with pytest.raises(ValueError, match="images"):
        callbacks.SaliencyMapsCallback(images[:0], "logs")


def test_map_evolution_of_a_logged_run(data, tmp_path):
    model = bn_net()
    maps_cb = callbacks.SaliencyMapsCallback(data[0][:2], tmp_path, formats=["npz"])
    fit(model, data, [maps_cb], epochs=2)
    figure = plotting.plot_map_evolution(tmp_path, image_index=1, method="negative")
    axes = figure.get_axes()
    assert [a.get_title().split("\n")[0] for a in axes] == [
        "image",
        "epoch 0",
        "epoch 1",
        "epoch 2",
    ]
    with np.load(tmp_path / "epoch_0001.npz") as npz:
        np.testing.assert_array_equal(axes[2].images[0].get_array(), npz["negative"][1])
