"""Figures: the maps grid, prediction titles, map evolution and atomic saving."""

import os
import threading

import numpy as np
import pytest
from matplotlib.figure import Figure

from tf_signsal import plotting
from tf_signsal.maps import METHODS


@pytest.fixture
def maps(rng):
    return {m: rng.random((3, 8, 8)).astype(np.float32) for m in METHODS}


def _cells(figure, rows):
    """[column][row] pictures of a `plot_maps_grid` figure (each column is one
    axes showing its pictures stacked, with equal gaps between them)."""
    columns = []
    for axis in figure.get_axes():
        tall = np.ma.getdata(axis.images[0].get_array())
        height = tall.shape[1]  # the test pictures are square
        gap = (tall.shape[0] - rows * height) // max(rows - 1, 1)
        columns.append(
            [tall[r * (height + gap) : r * (height + gap) + height] for r in range(rows)]
        )
    return columns


def test_maps_grid_layout_and_content(images, maps):
    titles = ["true: a / pred: b", "x", "y"]
    figure = plotting.plot_maps_grid(images[:3], maps, titles=titles, suptitle="epoch 3")
    assert isinstance(figure, Figure)
    axes = figure.get_axes()
    assert [a.get_title() for a in axes] == ["image", *METHODS]
    assert [t.get_text() for t in axes[0].texts] == titles
    assert figure.get_suptitle() == "epoch 3"
    columns = _cells(figure, 3)
    for r in range(3):
        # The image column is RGBA (opaque) for transparent gaps.
        np.testing.assert_array_equal(columns[0][r][..., :3], images[r])
        np.testing.assert_array_equal(columns[0][r][..., 3], 1.0)
    for method, axis, column in zip(METHODS, axes[1:], columns[1:]):
        shown = axis.images[0]
        assert shown.get_clim() == (0.0, 1.0)
        assert shown.get_cmap().name.startswith("hot")
        for r in range(3):
            np.testing.assert_array_equal(column[r], maps[method][r])


def test_maps_grid_subset_raw_maps_and_no_images(maps):
    raw = {m: v * 7.0 - 2.0 for m, v in maps.items()}
    figure = plotting.plot_maps_grid(None, raw, methods=["negative", "active"], normalized=False)
    assert [a.get_title() for a in figure.get_axes()] == ["negative", "active"]
    assert not figure.get_axes()[0].texts
    # Unnormalised maps are each scaled to their own range.
    for method, column in zip(["negative", "active"], _cells(figure, 3)):
        for r in range(3):
            m = raw[method][r]
            np.testing.assert_allclose(column[r], (m - m.min()) / (m.max() - m.min()), atol=1e-6)


def test_maps_grid_raw_constant_map_shows_as_zero(maps):
    raw = {"standard": np.full((3, 8, 8), 4.0), "positive": maps["positive"] * 3.0}
    figure = plotting.plot_maps_grid(None, raw, methods=["standard"], normalized=False)
    for picture in _cells(figure, 3)[0]:
        np.testing.assert_array_equal(picture, 0.0)


def test_maps_grid_single_channel_image(rng, maps):
    gray = rng.random((3, 8, 8, 1), dtype=np.float32)
    figure = plotting.plot_maps_grid(gray, maps, methods=["standard"])
    picture = _cells(figure, 3)[0][1]
    for channel in range(3):
        np.testing.assert_array_equal(picture[..., channel], gray[1, ..., 0])


def test_maps_grid_single_row(images, maps):
    one = {m: v[:1] for m, v in maps.items()}
    columns = _cells(plotting.plot_maps_grid(images[:1], one), 1)
    np.testing.assert_array_equal(columns[2][0], one["positive"][0])


def test_maps_grid_errors(images, maps):
    with pytest.raises(ValueError, match="methods"):
        plotting.plot_maps_grid(images[:3], maps, methods=["sideways"])
    with pytest.raises(ValueError, match="images"):
        plotting.plot_maps_grid(images, maps)  # 6 images, 3 maps
    with pytest.raises(ValueError, match="titles"):
        plotting.plot_maps_grid(images[:3], maps, titles=["only one"])
    bad = dict(maps, positive=maps["positive"][:2])
    with pytest.raises(ValueError, match="maps"):
        plotting.plot_maps_grid(images[:3], bad)
    with pytest.raises(ValueError, match="rank 4"):
        plotting.plot_maps_grid(images[0], maps)


def test_prediction_titles():
    names = ["cat", "dog", "ship"]
    assert plotting.prediction_titles([1, 0], [0, 0], names) == [
        "true: cat / pred: dog",
        "true: cat / pred: cat",
    ]
    assert plotting.prediction_titles(np.array([2]), None, names) == ["pred: ship"]
    assert plotting.prediction_titles([4], [3]) == ["true: 3 / pred: 4"]
    assert plotting.prediction_titles([1], [2], names, separator="\n") == ["true: ship\npred: dog"]
    with pytest.raises(ValueError, match="labels"):
        plotting.prediction_titles([1, 2], [1])


def _write_epoch(folder, epoch, maps, predictions, images=None, class_names=None):
    content = dict(maps, predictions=np.asarray(predictions), epoch=np.int64(epoch))
    if images is not None:
        content["images"] = images
    if class_names is not None:
        content["class_names"] = np.asarray(class_names)
    np.savez(os.path.join(folder, f"epoch_{epoch:04d}.npz"), **content)


def test_map_evolution_reads_epochs_in_order(tmp_path, rng, images):
    epochs = [10, 0, 2]  # written out of order; 10 must come last
    logged = {}
    for epoch in epochs:
        logged[epoch] = {m: rng.random((3, 8, 8)).astype(np.float32) for m in METHODS}
        _write_epoch(tmp_path, epoch, logged[epoch], [epoch % 3, 1, 2], images[:3], ["a", "b", "c"])
    (tmp_path / "epoch_0001.png").write_bytes(b"not read")
    figure = plotting.plot_map_evolution(tmp_path, image_index=1, method="active")
    axes = figure.get_axes()
    assert len(axes) == 4
    np.testing.assert_array_equal(axes[0].images[0].get_array(), images[1])
    for axis, epoch in zip(axes[1:], sorted(epochs)):
        np.testing.assert_array_equal(axis.images[0].get_array(), logged[epoch]["active"][1])
        assert axis.get_title() == f"epoch {epoch}\npred: b"
    first_row = plotting.plot_map_evolution(tmp_path, image_index=0, method="active")
    assert [a.get_title() for a in first_row.get_axes()[1:]] == [
        "epoch 0\npred: a",
        "epoch 2\npred: c",
        "epoch 10\npred: b",
    ]


def test_map_evolution_without_images(tmp_path, rng):
    _write_epoch(tmp_path, 1, {"positive": rng.random((2, 4, 4))}, [0, 1])
    figure = plotting.plot_map_evolution(tmp_path, 0, "positive")
    assert len(figure.get_axes()) == 1
    assert figure.get_axes()[0].get_title() == "epoch 1\npred: 0"


def test_map_evolution_errors(tmp_path, rng):
    with pytest.raises(ValueError, match="log_dir"):
        plotting.plot_map_evolution(tmp_path, 0, "positive")
    _write_epoch(tmp_path, 0, {"positive": rng.random((2, 4, 4))}, [0, 1])
    with pytest.raises(ValueError, match="method"):
        plotting.plot_map_evolution(tmp_path, 0, "active")
    with pytest.raises(ValueError, match="image_index"):
        plotting.plot_map_evolution(tmp_path, 2, "positive")
    with pytest.raises(ValueError, match="image_index"):
        plotting.plot_map_evolution(tmp_path, -1, "positive")
    with pytest.raises(TypeError, match="image_index"):
        plotting.plot_map_evolution(tmp_path, 1.0, "positive")


def test_save_figure_writes_png_atomically(tmp_path, maps, monkeypatch):
    path = tmp_path / "grid.png"
    plotting.save_figure(plotting.plot_maps_grid(None, maps), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not private like a mkstemp file
    before = path.read_bytes()

    def interrupted(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(OSError, match="disk full"):
        plotting.save_figure(plotting.plot_maps_grid(None, maps, methods=["active"]), path)
    # The old file is intact and no temporary file is left behind.
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["grid.png"]


def test_plots_in_a_thread(tmp_path, images, maps):
    errors = []

    def draw():
        try:
            plotting.save_figure(plotting.plot_maps_grid(images[:3], maps), tmp_path / "t.png")
        except Exception as error:  # reported to the main thread below
            errors.append(error)

    thread = threading.Thread(target=draw)
    thread.start()
    thread.join()
    assert not errors
    assert (tmp_path / "t.png").stat().st_size > 0


def test_map_evolution_shows_a_gray_image_unstretched(tmp_path, rng):
    gray = rng.uniform(0.2, 0.6, (2, 4, 4, 1)).astype(np.float32)
    _write_epoch(tmp_path, 0, {"positive": rng.random((2, 4, 4))}, [0, 1], gray)
    shown = plotting.plot_map_evolution(tmp_path, 1, "positive").get_axes()[0].images[0]
    np.testing.assert_array_equal(shown.get_array(), gray[1, ..., 0])
    assert shown.get_clim() == (0.0, 1.0)
