"""Callbacks during model.fit: files written, maps equal to a direct explanation, logs, and
training left exactly as it is without them."""

import csv
import os
import warnings
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from matplotlib.image import imread

from tf_signsal import callbacks, plotting
from tf_signsal.evaluation import PAPER_PAIRS, AllegianceEvaluator, AllegianceResult
from tf_signsal.maps import METHODS, SignedSaliency

NUM_CLASSES = 3
AUC_KEYS = [f"allegiance_auc_{method}_{fill}" for method, fill in PAPER_PAIRS]


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
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    x = rng.random((48, 8, 8, 3), dtype=np.float32)
    # A learnable task (the brightest channel), so that the maps and AUCs move.
    y = np.argmax(x.mean(axis=(1, 2)), axis=1)
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


@pytest.fixture(scope="module", params=["sequential", "functional"])
def run(request, data, tmp_path_factory):
    """One fit of 2 epochs with both callbacks and a CSVLogger after them, read by the tests
    below: each checks one property of what it left."""
    kind = request.param
    x, y = data
    folder = tmp_path_factory.mktemp(f"run_{kind}")
    probe, labels = x[:3], y[:3]
    untrained = SignedSaliency(bn_net(kind)).explain(probe)
    model = bn_net(kind)
    names = ["a", "b", "c"]
    maps_cb = callbacks.SaliencyMapsCallback(probe, folder, labels=labels, class_names=names)
    held_out = (x[32:], y[32:])
    allegiance = callbacks.AllegianceCallback(held_out, save_dir=folder / "curves")
    csv_path = folder / "log.csv"
    history = fit(
        model,
        data,
        [maps_cb, allegiance, keras.callbacks.CSVLogger(str(csv_path))],
        validation_data=(x[:16], y[:16]),
    )
    logged = {}
    for epoch in (0, 1, 2):
        with np.load(folder / f"epoch_{epoch:04d}.npz") as npz:
            logged[epoch] = {k: npz[k] for k in npz.files}
    return SimpleNamespace(
        folder=folder,
        model=model,
        probe=probe,
        labels=labels,
        names=names,
        untrained=untrained,
        held_out=held_out,
        allegiance=allegiance,
        history=history,
        csv_path=csv_path,
        logged=logged,
    )


@pytest.mark.slow
def test_aucs_are_logged_once_per_epoch_in_history_and_csv(run):
    # AUCs: one per epoch in History and in the CSV written after the callback.
    allegiance = run.allegiance
    assert allegiance.evaluated_epochs == [1, 2]
    with open(run.csv_path) as file:
        rows = list(csv.DictReader(file))
    for method, fill in PAPER_PAIRS:
        key = f"allegiance_auc_{method}_{fill}"
        expected = [allegiance.results[e].auc[(method, fill)] for e in (1, 2)]
        assert run.history.history[key] == expected
        assert [float(row[key]) for row in rows] == pytest.approx(expected, abs=1e-12)
        assert all(0.0 <= v <= 0.9 + 1e-9 for v in expected)


@pytest.mark.slow
def test_allegiance_curves_are_saved_per_epoch(run):
    for epoch in (1, 2):
        saved = AllegianceResult.load_json(run.folder / "curves" / f"epoch_{epoch:04d}.json")
        assert saved == run.allegiance.results[epoch]


@pytest.mark.slow
def test_last_aucs_are_those_of_the_trained_model(run):
    # The last epoch's AUCs are those of the trained model, recomputed now
    # (deletion does flip predictions here, so the comparison has teeth).
    results = run.allegiance.results
    assert min(results[2].auc.values()) < 0.9
    assert results[2].auc == AllegianceEvaluator(run.model).evaluate(run.held_out, verbose=0).auc


@pytest.mark.slow
def test_map_files_are_written_for_every_logged_epoch(run):
    files = sorted(os.listdir(run.folder))
    for epoch in (0, 1, 2):
        assert f"epoch_{epoch:04d}.png" in files
        assert f"epoch_{epoch:04d}.npz" in files
    assert not [f for f in files if f.endswith(".tmp")]
    png = imread(run.folder / "epoch_0001.png")
    assert png.ndim == 3 and png.shape[0] > 100 and png.shape[1] > 100


@pytest.mark.slow
def test_npz_holds_the_probe_batch_and_its_maps(run):
    final = run.logged[2]
    expected_keys = {*METHODS, "logits", "predictions", "images", "labels", "epoch", "class_names"}
    assert set(final) == expected_keys
    assert int(final["epoch"]) == 2
    np.testing.assert_array_equal(final["images"], run.probe)
    np.testing.assert_array_equal(final["labels"], run.labels)
    assert list(final["class_names"]) == run.names
    assert final["logits"].shape == (3, NUM_CLASSES)
    np.testing.assert_array_equal(final["predictions"], np.argmax(final["logits"], axis=1))
    for method in METHODS:
        assert final[method].shape == (3, 8, 8)
        assert final[method].min() >= 0.0 and final[method].max() <= 1.0


@pytest.mark.slow
def test_each_epochs_maps_are_those_of_its_weights(run):
    # Each file holds the maps of that epoch's weights: before training, the
    # untrained model's; at the end, those of the trained model recomputed now.
    logged, final = run.logged, run.logged[2]
    recomputed = SignedSaliency(run.model).explain(run.probe)
    np.testing.assert_allclose(final["logits"], recomputed.logits.numpy(), rtol=1e-5, atol=1e-6)
    for method in METHODS:
        np.testing.assert_allclose(final[method], recomputed[method].numpy(), atol=1e-5)
        np.testing.assert_allclose(logged[0][method], run.untrained[method].numpy(), atol=1e-5)
    # ...so training changed them (the traced functions read the live weights).
    assert not np.allclose(logged[0]["standard"], logged[2]["standard"], atol=1e-3)
    assert not np.allclose(logged[1]["logits"], logged[2]["logits"], atol=1e-4)


@pytest.mark.slow
def test_tensorboard_gets_the_maps_of_every_logged_epoch_and_the_inputs_once(run):
    summaries = image_summaries(run.folder)
    for method in METHODS:
        assert sorted(summaries[f"maps/{method}"]) == [0, 1, 2]
    assert summaries["maps/inputs"] == [0]


@pytest.mark.slow
def test_training_is_not_perturbed(data, tmp_path):
    x, y = data
    plain = bn_net()
    fit(plain, data, [], epochs=2, validation_data=(x[:16], y[:16]))
    watched = bn_net()
    maps_cb = callbacks.SaliencyMapsCallback(x[:4], tmp_path, formats=["npz"])
    allegiance = callbacks.AllegianceCallback(x[:8])
    fit(watched, data, [maps_cb, allegiance], epochs=2, validation_data=(x[:16], y[:16]))
    assert allegiance.evaluated_epochs == [1, 2]
    # BatchNorm moving statistics are among the weights (non-trainable ones).
    assert len(plain.weights) == len(watched.weights)
    for a, b in zip(plain.weights, watched.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for a, b in zip(plain.optimizer.variables, watched.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # The comparison has teeth: the moving statistics did move during training.
    moving_mean = [w for w in watched.weights if "moving_mean" in w.path][0]
    assert np.any(moving_mean.numpy() != 0.0)


@pytest.mark.slow
def test_tf_data_input_every_n_epochs_and_initial_epoch(data, tmp_path):
    x, y = data
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = bn_net("functional")
    maps_cb = callbacks.SaliencyMapsCallback(
        x[:2], tmp_path, methods=["positive", "active"], every_n_epochs=2, formats=("npz",)
    )
    held_out = tf.data.Dataset.from_tensor_slices((x[:20], y[:20])).batch(8)
    allegiance = callbacks.AllegianceCallback(held_out, every_n_epochs=2)
    history = model.fit(
        dataset,
        epochs=4,
        initial_epoch=1,
        callbacks=[maps_cb, allegiance],
        verbose=0,
        shuffle=False,
        validation_data=held_out,
    )
    # Before training at the initial epoch (1), then after epochs 2 and 4.
    assert sorted(os.listdir(tmp_path)) == ["epoch_0001.npz", "epoch_0002.npz", "epoch_0004.npz"]
    # The first epoch of the fit (2) and every second one: epochs 2 and 4.
    assert allegiance.evaluated_epochs == [2, 4]
    assert allegiance.results[4].n_images == 20
    for key in AUC_KEYS:
        assert history.history[key] == [allegiance.results[e].auc[_pair(key)] for e in (2, 4)]
    with np.load(tmp_path / "epoch_0004.npz") as npz:
        assert set(npz.files) == {"positive", "active", "logits", "predictions", "images", "epoch"}


def test_targets_are_explained(data, tmp_path):
    x, _ = data
    model = bn_net()
    targets = np.array([2, 0, 1])
    maps_cb = callbacks.SaliencyMapsCallback(x[:3], tmp_path, targets=targets, formats=["npz"])
    maps_cb.set_model(model)
    maps_cb.log_epoch(7)
    expected = SignedSaliency(model).explain(x[:3], targets=targets)
    with np.load(tmp_path / "epoch_0007.npz") as npz:
        np.testing.assert_array_equal(npz["targets"], targets)
        for method in METHODS:
            np.testing.assert_allclose(npz[method], expected[method].numpy(), atol=1e-6)


@pytest.mark.slow
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


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"formats": ["png", "gif"]}, ValueError, "formats"),
        ({"every_n_epochs": 0}, ValueError, "every_n_epochs"),
        ({"every_n_epochs": 1.5}, TypeError, "every_n_epochs"),
        ({"labels": [0, 1]}, ValueError, "labels"),
        ({"labels": [-1] * 6}, ValueError, "labels"),
        ({"labels": [0.0] * 6}, TypeError, "labels"),
        ({"labels": ["a"] * 6}, TypeError, "labels"),
        ({"targets": [0]}, ValueError, "targets"),
        ({"methods": ["upside_down"]}, ValueError, "methods"),
    ],
)
def test_maps_callback_checks_its_arguments(images, kwargs, error, match):
    with pytest.raises(error, match=match):
        callbacks.SaliencyMapsCallback(images, "logs", **kwargs)


def test_maps_callback_checks_its_probe_images(images):
    with pytest.raises(ValueError, match="rank 4"):
        callbacks.SaliencyMapsCallback(images[0], "logs")
    with pytest.raises(ValueError, match="images"):
        callbacks.SaliencyMapsCallback(images[:0], "logs")


def test_maps_callback_takes_labels_as_keras_datasets_gives_them(images):
    labels = np.array([[2], [0], [1], [1], [0], [2]], dtype=np.uint8)  # (B, 1)
    maps_cb = callbacks.SaliencyMapsCallback(images, "logs", labels=labels)
    np.testing.assert_array_equal(maps_cb.labels, labels[:, 0])
    assert maps_cb.labels.dtype == np.int64


@pytest.mark.slow
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


def _pair(key):
    method, fill = key.removeprefix("allegiance_auc_").split("_")
    return method, fill


@pytest.mark.slow
def test_allegiance_every_n_epochs_with_csv_and_early_stopping(data, tmp_path):
    x, y = data
    model = bn_net()
    pairs = [("positive", "black"), ("negative", 0.5)]
    allegiance = callbacks.AllegianceCallback(x[:8], every_n_epochs=2, pairs=pairs, prefix="del")
    keys = ["del_auc_positive_black", "del_auc_negative_0.5"]
    csv_path = tmp_path / "log.csv"
    stopper = keras.callbacks.EarlyStopping(keys[0], mode="min", patience=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fit(
            model,
            data,
            [allegiance, keras.callbacks.CSVLogger(str(csv_path)), stopper],
            epochs=3,
        )
    # Epoch 1 (the first of the fit) and epoch 2; nothing is added at epoch 3.
    assert allegiance.evaluated_epochs == [1, 2]
    assert [allegiance.log_key(p) for p in pairs] == keys
    for key, pair in zip(keys, pairs):
        assert history.history[key] == [allegiance.results[e].auc[pair] for e in (1, 2)]
    with open(csv_path) as file:
        rows = list(csv.DictReader(file))
    assert [row[keys[0]] for row in rows][2] == "NA"
    assert float(rows[1][keys[1]]) == pytest.approx(allegiance.results[2].auc[pairs[1]])
    # EarlyStopping saw the key on the evaluated epochs and skipped epoch 3 only.
    missing = [w for w in caught if "not available" in str(w.message)]
    assert len(missing) == 1


@pytest.mark.slow
def test_allegiance_after_a_logs_reader_is_not_seen(data):
    model = bn_net()
    allegiance = callbacks.AllegianceCallback(data[0][:8], pairs=[("active", "black")])
    stopper = keras.callbacks.EarlyStopping("allegiance_auc_active_black", mode="min")
    with pytest.warns(UserWarning, match="not available"):
        fit(model, data, [stopper, allegiance], epochs=1)  # wrong order: documented


@pytest.mark.slow
def test_allegiance_save_dir_io_error_warns(data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    model = bn_net()
    allegiance = callbacks.AllegianceCallback(data[0][:8], save_dir=blocker / "curves")
    with pytest.warns(RuntimeWarning, match="could not write"):
        history = fit(model, data, [allegiance], epochs=1)
    assert len(history.history[AUC_KEYS[0]]) == 1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"every_n_epochs": 0}, ValueError, "every_n_epochs"),
        ({"every_n_epochs": 1.5}, TypeError, "every_n_epochs"),
        ({"prefix": ""}, ValueError, "prefix"),
        ({"prefix": 3}, TypeError, "prefix"),
        ({"pairs": [("sideways", "black")]}, ValueError, "sideways"),
        ({"pairs": []}, ValueError, "pairs"),
        ({"pairs": [("positive", "grey")]}, ValueError, "fill"),
        ({"fractions": [0.5, 0.1]}, ValueError, "fractions"),
        ({"fractions": [1.0]}, ValueError, "fractions"),
        ({"fractions": [0.1]}, ValueError, "two points"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 2.0}, TypeError, "batch_size"),
        ({"value_range": (1.0, 0.0)}, ValueError, "value_range"),
        ({"value_range": None}, TypeError, "value_range"),
    ],
)
def test_allegiance_callback_checks_its_arguments_when_made(data, kwargs, error, match):
    # Before `fit`: a wrong argument fails where it is written, not when training starts.
    with pytest.raises(error, match=match):
        callbacks.AllegianceCallback(data[0][:8], **kwargs)


def test_allegiance_evaluate_needs_a_model(data):
    with pytest.raises(RuntimeError, match="set_model"):
        callbacks.AllegianceCallback(data[0][:8]).evaluate()


def test_allegiance_callback_refuses_an_endless_dataset(data):
    endless = tf.data.Dataset.from_tensor_slices(data[0][:8]).batch(4).repeat()
    with pytest.raises(ValueError, match="endless"):
        callbacks.AllegianceCallback(endless)


def test_maps_callback_refuses_too_few_class_names(images):
    with pytest.raises(ValueError, match="`class_names` holds 2 names, but `labels`"):
        callbacks.SaliencyMapsCallback(images[:3], "logs", labels=[0, 1, 4], class_names=["a", "b"])


def _png_figure(monkeypatch, maps_cb, model):
    """The figure the callback saves as its png (captured instead of written)."""
    saved = []
    monkeypatch.setattr(plotting, "save_figure", lambda figure, path: saved.append((figure, path)))
    maps_cb.set_model(model)
    maps_cb.log_epoch(3)
    assert len(saved) == 1 and str(saved[0][1]).endswith("epoch_0003.png")
    return saved[0][0]


def test_png_has_a_colour_bar_and_the_maps(data, tmp_path, monkeypatch):
    model = bn_net()
    maps_cb = callbacks.SaliencyMapsCallback(
        data[0][:3], tmp_path, methods=["positive", "active"], formats=["png"], labels=[0, 1, 2]
    )
    figure = _png_figure(monkeypatch, maps_cb, model)
    axes = figure.get_axes()
    assert [a.get_title() for a in axes[:3]] == ["image", "positive", "active"]
    assert figure.get_suptitle() == "epoch 3"
    bar = axes[-1]._colorbar
    assert (bar.vmin, bar.vmax) == (0.0, 1.0)
    computed = maps_cb.compute()
    top = np.ma.getdata(axes[1].images[0].get_array())[:8]
    np.testing.assert_array_equal(top, computed["positive"][0])


def test_png_overlay_draws_the_maps_over_the_images(data, tmp_path, monkeypatch):
    model = bn_net()
    maps_cb = callbacks.SaliencyMapsCallback(
        data[0][:2], tmp_path, methods=["negative"], formats=["png"], overlay=True
    )
    figure = _png_figure(monkeypatch, maps_cb, model)
    axes = figure.get_axes()
    assert len(axes) == 2 * 2 + 1  # (image | negative) x 2 rows, then the colour bar
    computed = maps_cb.compute()
    for row in range(2):
        under, over = axes[2 * row + 1].images
        np.testing.assert_array_equal(under.get_array(), data[0][row])
        np.testing.assert_array_equal(over.get_array(), computed["negative"][row])
    assert (axes[-1]._colorbar.vmin, axes[-1]._colorbar.vmax) == (0.0, 1.0)
    with pytest.raises(TypeError, match="overlay"):
        callbacks.SaliencyMapsCallback(data[0][:2], tmp_path, overlay="yes")


@pytest.mark.slow
def test_png_overlay_file_is_written(data, tmp_path):
    maps_cb = callbacks.SaliencyMapsCallback(data[0][:2], tmp_path, formats=["png"], overlay=True)
    fit(bn_net(), data, [maps_cb], epochs=1)
    assert sorted(os.listdir(tmp_path)) == ["epoch_0000.png", "epoch_0001.png"]
    assert imread(tmp_path / "epoch_0001.png").shape[0] > 100


def test_maps_callback_names_probe_images_the_model_does_not_take(images, tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    maps_cb = callbacks.SaliencyMapsCallback(images, tmp_path / "maps")
    maps_cb.set_model(model)
    with pytest.raises(ValueError, match="but the model takes"):
        maps_cb.compute()
