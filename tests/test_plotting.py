"""Figures: the maps grid, overlays, the signed view, curves, map evolution and atomic
saving."""

import os
import threading

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import rgb_to_hsv
from matplotlib.figure import Figure

from tf_signsal import plotting
from tf_signsal.maps import METHODS


@pytest.fixture
def maps(rng):
    return {m: rng.random((3, 8, 8)).astype(np.float32) for m in METHODS}


def _cells(figure, rows):
    """[column][row] pictures of a `plot_maps_grid` figure (each column is one
    axes showing its pictures stacked, with equal gaps between them)."""
    return _cells_of(figure.get_axes(), rows)


def _cells_of(axes, rows):
    """[column][row] pictures of the grid's column axes `axes`."""
    columns = []
    for axis in axes:
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


# ----------------------------------------------------------------------------- colour bars


def _render(figure):
    """The figure drawn by Agg, as (height, width, 4) uint8 pixels."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())


def _colorbar_of(axis):
    """The Colorbar drawn in a colour bar's axes."""
    return axis._colorbar


def test_maps_grid_colorbar_spans_zero_to_one(images, maps):
    plain = plotting.plot_maps_grid(images[:3], maps)
    assert len(plain.get_axes()) == 1 + len(METHODS)  # no colour bar unless asked
    figure = plotting.plot_maps_grid(images[:3], maps, colorbar=True)
    axes = figure.get_axes()
    assert len(axes) == 2 + len(METHODS)
    bar = _colorbar_of(axes[-1])
    assert (bar.vmin, bar.vmax) == (0.0, 1.0)
    assert axes[-1].get_ylim() == (0.0, 1.0)
    assert bar.mappable.get_cmap().name.startswith("hot")
    assert bar.ax.get_ylabel() == "normalised map"
    # The map columns are those drawn without the bar.
    for with_bar, without in zip(_cells_of(axes[:-1], 3), _cells(plain, 3)):
        for a, b in zip(with_bar, without):
            np.testing.assert_array_equal(a, b)
    # The bar lies right of the last map column and is no taller than the pictures.
    last, bar_box = axes[-2].get_position(), axes[-1].get_position()
    assert bar_box.x0 > last.x1 and bar_box.height <= last.height + 1e-9


def test_add_colorbar_labels_and_refuses_what_is_not_drawn():
    axis = Figure().subplots()
    shown = axis.imshow(np.zeros((2, 2)), vmin=-2.0, vmax=3.0)
    bar = plotting.add_colorbar(shown, label="units")
    assert (bar.vmin, bar.vmax) == (-2.0, 3.0)
    assert bar.ax.get_ylabel() == "units"
    assert bar.ax in axis.figure.get_axes()
    with pytest.raises(TypeError, match="mappable"):
        plotting.add_colorbar(np.zeros((2, 2)))


# ----------------------------------------------------------------------------- overlays


def test_overlay_draws_the_image_then_the_map(images, maps):
    axis = Figure().subplots()
    shown = plotting.overlay(axis, images[1], maps["positive"][1], alpha=0.3, cmap="viridis")
    assert len(axis.images) == 2 and shown is axis.images[1]
    np.testing.assert_array_equal(axis.images[0].get_array(), images[1])
    np.testing.assert_array_equal(shown.get_array(), maps["positive"][1])
    assert shown.get_alpha() == 0.3
    assert shown.get_clim() == (0.0, 1.0)
    assert shown.get_cmap().name == "viridis"
    assert not axis.axison
    # Out-of-range pixels are clipped; a one-channel image is drawn in true gray.
    gray = Figure().subplots()
    plotting.overlay(gray, images[0, ..., :1] * 2.0, maps["active"][0], vmin=0.2, vmax=0.4)
    np.testing.assert_array_equal(
        gray.images[0].get_array(), np.clip(images[0, ..., 0] * 2.0, 0.0, 1.0)
    )
    assert gray.images[0].get_clim() == (0.0, 1.0)
    assert gray.images[1].get_clim() == (0.2, 0.4)


def test_overlay_blends_with_alpha_when_rendered():
    # What one sees: alpha * cmap(map) + (1 - alpha) * image, on the rendered canvas.
    figure = Figure(figsize=(1, 1), dpi=40)
    axis = figure.add_axes((0, 0, 1, 1))
    image = np.full((4, 4, 3), (0.0, 0.0, 1.0), np.float32)  # blue
    plotting.overlay(axis, image, np.ones((4, 4)), alpha=0.25, cmap="gray")  # map: white
    pixel = _render(figure)[20, 20, :3] / 255.0
    np.testing.assert_allclose(pixel, [0.25, 0.25, 1.0], atol=2 / 255)


def test_plot_overlays_cells_and_colorbar(images, maps):
    titles = ["one", "two", "three"]
    methods = ["positive", "inactive"]
    figure = plotting.plot_overlays(images[:3], maps, methods, titles=titles, alpha=0.7)
    axes = figure.get_axes()
    assert len(axes) == 3 * 3 + 1
    cells = np.array(axes[:-1]).reshape(3, 3)
    assert [a.get_title() for a in cells[0]] == ["image", *methods]
    assert [cells[r, 0].texts[0].get_text() for r in range(3)] == titles
    for r in range(3):
        np.testing.assert_array_equal(cells[r, 0].images[0].get_array(), images[r])
        for c, method in enumerate(methods, start=1):
            under, over = cells[r, c].images
            np.testing.assert_array_equal(under.get_array(), images[r])
            np.testing.assert_array_equal(over.get_array(), maps[method][r])
            assert over.get_alpha() == 0.7 and over.get_clim() == (0.0, 1.0)
    bar = _colorbar_of(axes[-1])
    assert (bar.vmin, bar.vmax) == (0.0, 1.0)
    plain = plotting.plot_overlays(images[:3], maps, methods, colorbar=False)
    assert len(plain.get_axes()) == 9


def test_plot_overlays_of_raw_maps_scales_each_map(images, maps):
    raw = {"standard": maps["standard"] * 5.0 + 1.0}
    figure = plotting.plot_overlays(images[:3], raw, ["standard"], normalized=False)
    for r in range(3):
        m = raw["standard"][r]
        np.testing.assert_allclose(
            figure.get_axes()[2 * r + 1].images[1].get_array(),
            (m - m.min()) / (m.max() - m.min()),
            atol=1e-6,
        )


# ----------------------------------------------------------------------------- signed view


@pytest.fixture
def gradient(rng):
    return rng.normal(size=(3, 8, 8, 3)).astype(np.float32)


def test_signed_view_is_positive_minus_negative_over_its_largest_magnitude(gradient):
    positive = np.maximum(gradient, 0).max(axis=-1)
    negative = np.maximum(-gradient, 0).max(axis=-1)
    expected = []
    for p, n in zip(positive, negative):
        s = p - n
        expected.append(s / np.abs(s).max())
    view = plotting.signed_view(positive, negative)
    assert view.dtype == np.float32
    np.testing.assert_allclose(view, expected, rtol=1e-6)
    for picture in view:
        assert np.abs(picture).max() == pytest.approx(1.0)
    # One signed map; an all-zero map stays zero (not NaN).
    signed = gradient.sum(axis=-1)
    signed[1] = 0.0
    view = plotting.signed_view(signed)
    np.testing.assert_allclose(view[0], signed[0] / np.abs(signed[0]).max(), rtol=1e-6)
    np.testing.assert_array_equal(view[1], 0.0)


def test_signed_view_errors(gradient):
    positive = np.maximum(gradient, 0).max(axis=-1)
    with pytest.raises(ValueError, match="negative.*shape"):
        plotting.signed_view(positive, positive[:2])
    with pytest.raises(ValueError, match="`negative` must be a raw map >= 0"):
        plotting.signed_view(positive, -positive - 1.0)
    with pytest.raises(ValueError, match="positive.*shape"):
        plotting.signed_view(gradient)
    with pytest.raises(ValueError, match="finite"):
        plotting.signed_view(np.full((1, 2, 2), np.nan))


def _rendered_centre(figure, axis):
    """The RGB colour at the centre of `axis` on the rendered figure."""
    pixels = _render(figure)
    box = axis.get_window_extent()
    x, y = int((box.x0 + box.x1) / 2), int(pixels.shape[0] - (box.y0 + box.y1) / 2)
    return pixels[y, x, :3] / 255.0


def test_plot_signed_draws_the_signed_view(images, gradient):
    positive = np.maximum(gradient, 0).max(axis=-1)
    negative = np.maximum(-gradient, 0).max(axis=-1)
    figure = plotting.plot_signed(images[:3], positive, negative, titles=["a", "b", "c"])
    axes = figure.get_axes()
    assert len(axes) == 3 * 2 + 1
    view = plotting.signed_view(positive, negative)
    for r in range(3):
        np.testing.assert_array_equal(axes[2 * r].images[0].get_array(), images[r])
        shown = axes[2 * r + 1].images[-1]
        np.testing.assert_array_equal(shown.get_array(), view[r])
        assert shown.get_clim() == (-1.0, 1.0)
        assert shown.get_cmap().name == "RdBu_r"
        scale = np.abs(positive[r] - negative[r]).max()
        # The row's title left of its image, the map's scale under the map.
        assert [t.get_text() for t in axes[2 * r].texts] == ["abc"[r]]
        assert [t.get_text() for t in axes[2 * r + 1].texts] == [f"max |map| = {scale:.3g}"]
    assert [axes[0].get_title(), axes[1].get_title()] == ["image", "signed map"]
    bar = _colorbar_of(axes[-1])
    assert (bar.vmin, bar.vmax) == (-1.0, 1.0)
    assert list(bar.get_ticks()) == [-1.0, -0.5, 0.0, 0.5, 1.0]


def _hues(rgb):
    """(hue in degrees, saturation) of RGB colours in [0, 1]."""
    hsv = rgb_to_hsv(np.clip(np.asarray(rgb, np.float64), 0.0, 1.0))
    return hsv[..., 0] * 360.0, hsv[..., 1]


def _reddish(rgb):
    hue, saturation = _hues(rgb)
    return np.all(((hue < 20) | (hue > 340)) & (saturation > 0.2))


def _bluish(rgb):
    hue, saturation = _hues(rgb)
    return np.all((hue > 190) & (hue < 260) & (saturation > 0.2))


@pytest.mark.parametrize("cmap", ["RdBu_r", "bwr", "seismic"])
def test_plot_signed_colours_positive_red_and_negative_blue(cmap, rng):
    bump = rng.random((1, 6, 6)).astype(np.float32) + 0.5  # > 0 everywhere
    zero = np.zeros_like(bump)
    for positive, negative, check in ((bump, zero, _reddish), (zero, bump, _bluish)):
        figure = plotting.plot_signed(None, positive, negative, cmap=cmap)
        shown = figure.get_axes()[0].images[0]
        assert check(shown.to_rgba(shown.get_array())[..., :3])  # every pixel
        # And on the rendered canvas (what a reader sees).
        assert check(_rendered_centre(figure, figure.get_axes()[0]))
    # A zero map (or a zero pixel) is white.
    figure = plotting.plot_signed(None, np.zeros((1, 6, 6)), cmap=cmap)
    np.testing.assert_allclose(_rendered_centre(figure, figure.get_axes()[0]), 1.0, atol=0.04)


def test_plot_signed_over_the_images(images, gradient):
    signed = gradient.sum(axis=-1)
    figure = plotting.plot_signed(images[:3], signed, alpha=0.6, colorbar=False)
    axes = figure.get_axes()
    assert len(axes) == 3
    view = plotting.signed_view(signed)
    for r, axis in enumerate(axes):
        under, over = axis.images
        np.testing.assert_array_equal(under.get_array(), images[r])
        np.testing.assert_array_equal(over.get_array(), view[r])
        assert over.get_alpha() == 0.6 and over.get_clim() == (-1.0, 1.0)


# ----------------------------------------------------------------------------- bad arguments


def test_overlay_and_signed_errors(images, maps, gradient):
    axis = Figure().subplots()
    with pytest.raises(ValueError, match="saliency_map"):
        plotting.overlay(axis, images[0], maps["positive"][0, :4])
    with pytest.raises(ValueError, match=r"`image` must have shape \(H, W, ch\)"):
        plotting.overlay(axis, images[:2], maps["positive"][0])
    with pytest.raises(TypeError, match="`image` must hold floats"):
        plotting.overlay(axis, (images[0] * 255).astype(np.uint8), maps["positive"][0])
    with pytest.raises(ValueError, match="alpha"):
        plotting.overlay(axis, images[0], maps["positive"][0], alpha=1.5)
    with pytest.raises(TypeError, match="alpha"):
        plotting.overlay(axis, images[0], maps["positive"][0], alpha="half")
    with pytest.raises(ValueError, match="vmin"):
        plotting.overlay(axis, images[0], maps["positive"][0], vmin=1.0, vmax=0.0)
    with pytest.raises(ValueError, match="`cmap` must be a matplotlib colormap name"):
        plotting.overlay(axis, images[0], maps["positive"][0], cmap="no-such-map")
    with pytest.raises(TypeError, match="maps"):
        plotting.plot_overlays(images[:3], list(maps.values()))
    with pytest.raises(ValueError, match="images"):
        plotting.plot_overlays(images, maps)  # 6 images, 3 maps
    with pytest.raises(ValueError, match="methods"):
        plotting.plot_overlays(images[:3], maps, methods=["upside"])
    with pytest.raises(ValueError, match="titles"):
        plotting.plot_overlays(images[:3], maps, titles="one title")
    with pytest.raises(TypeError, match="colorbar"):
        plotting.plot_overlays(images[:3], maps, colorbar="yes")
    with pytest.raises(TypeError, match="colorbar"):
        plotting.plot_maps_grid(images[:3], maps, colorbar=1)
    with pytest.raises(ValueError, match="cmap"):
        plotting.plot_maps_grid(images[:3], maps, cmap="no-such-map")
    signed = gradient.sum(axis=-1)
    with pytest.raises(ValueError, match="images"):
        plotting.plot_signed(images, signed)
    with pytest.raises(ValueError, match="`alpha` draws the signed map over the images"):
        plotting.plot_signed(None, signed, alpha=0.5)
    with pytest.raises(ValueError, match="nothing to draw"):
        plotting.plot_signed(None, signed[:0])
    with pytest.raises(ValueError, match="titles"):
        plotting.plot_signed(None, signed, titles=["a"])


def _record(orders=("morf", "lerf")):
    """An `AllegianceResult` record (`to_dict`'s format) of two pairs, made by hand."""
    fractions = [0.0, 0.25, 0.5]
    curves = {"positive/black": [0.9, 0.5, 0.25], "standard/white": [0.9, 0.7, 0.5]}
    record = {
        order: {
            "curves": {n: [v * (k + 1) / 2 for v in c] for n, c in curves.items()},
            "deleted": {n: fractions for n in curves},
            "accuracy": None,
        }
        for k, order in enumerate(orders)
    }
    return {"fractions": fractions, "n_images": 4, **record["morf"], "orders": record}


def _trapezoid(x, y):
    return sum((y[j] + y[j - 1]) / 2 * (x[j] - x[j - 1]) for j in range(1, len(x)))


def test_plot_curves_draws_each_curve_with_its_map_colour_and_fill_line():
    fractions = [0.0, 0.1, 0.5]
    curves = {
        "positive/black": [1.0, 0.6, 0.2],
        "negative/white": [1.0, 0.7, 0.3],
        "random/black": [1.0, 0.9, 0.8],
        "mine/0.5": [1.0, 0.8, 0.1],
    }
    auc = {name: _trapezoid(fractions, c) for name, c in curves.items()}
    ax = plotting.plot_curves(fractions, curves, auc, ax=Figure().subplots(), title="curves")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == [
        f"{name} (AUC {auc[name]:.3f})" for name in curves
    ]
    for line, values in zip(lines, curves.values()):
        np.testing.assert_array_equal(line.get_xdata(), np.array(fractions) * 100)
        np.testing.assert_array_equal(line.get_ydata(), values)
    assert [line.get_color() for line in lines] == ["C1", "C2", "C7", "C5"]
    assert [line.get_linestyle() for line in lines] == ["-", "--", "-", ":"]
    assert ax.get_title() == "curves" and ax.get_xlim() == (0.0, 50.0)
    plain = plotting.plot_curves(fractions, curves, ax=Figure().subplots())
    assert [line.get_label() for line in plain.get_lines()] == list(curves)


def test_plot_curves_bad_arguments():
    ax = Figure().subplots()
    with pytest.raises(ValueError, match="`curves` must hold one value per fraction"):
        plotting.plot_curves([0.0, 0.5], {"positive/black": [1.0]}, ax=ax)
    with pytest.raises(TypeError, match="`curves` must be a dict"):
        plotting.plot_curves([0.0, 0.5], [[1.0, 0.5]], ax=ax)
    with pytest.raises(ValueError, match="`fractions`"):
        plotting.plot_curves([], {}, ax=ax)
    with pytest.raises(ValueError, match=r"`auc` .* missing \['a/black'\]"):
        plotting.plot_curves([0.0, 0.5], {"a/black": [1.0, 0.5]}, {}, ax=ax)


def test_plot_allegiance_draws_the_result_with_plot_curves():
    from tf_signsal.evaluation.result import AllegianceResult

    record = _record()
    result = AllegianceResult.from_dict(record)
    ax = plotting.plot_allegiance(
        result, Figure().subplots(), title="t", pairs=[("standard", "white")], order="lerf"
    )
    (line,) = ax.get_lines()
    expected = record["orders"]["lerf"]["curves"]["standard/white"]
    np.testing.assert_array_equal(line.get_ydata(), expected)
    assert line.get_label() == f"standard/white (AUC {_trapezoid([0, 0.25, 0.5], expected):.3f})"
    assert ax.get_title() == "t - lerf"
    whole = result.plot(Figure().subplots())
    assert [line.get_label().split(" ")[0] for line in whole.get_lines()] == [
        "positive/black", "standard/white"
    ]
    assert whole.get_title() == ""
    with pytest.raises(ValueError, match="`order` must be among the result's orders"):
        result.plot(order="insertion")
    with pytest.raises(ValueError, match=r"received unknown \['active/white'\]"):
        result.plot(pairs=[("active", "white")])


def test_the_callback_log_format_moved_to_the_callbacks(tmp_path, rng):
    from tf_signsal import callbacks

    with pytest.warns(DeprecationWarning, match="tf_signsal.callbacks.EPOCH_FILE"):
        assert plotting.EPOCH_FILE is callbacks.EPOCH_FILE
    maps = [rng.random((2, 4, 4)).astype(np.float32) for _ in range(2)]
    for epoch, values in zip((3, 1), maps):
        _write_epoch(tmp_path, epoch, {"positive": values}, [epoch, 0], class_names=["a", "b"])
    with pytest.warns(DeprecationWarning, match="tf_signsal.callbacks.logged_epochs"):
        assert plotting.logged_epochs(tmp_path) == callbacks.logged_epochs(tmp_path)
    log = callbacks.read_map_log(tmp_path, 0, "positive")
    assert log.epochs == (1, 3) and log.predictions.tolist() == [1, 3]
    np.testing.assert_array_equal(log.maps, np.stack([maps[1][0], maps[0][0]]))
    assert log.image is None and log.class_names == ["a", "b"]


@pytest.mark.parametrize("signed", [[1.0, 0.4, -0.1], None])
def test_plot_randomization_draws_each_map_and_the_signed_one_when_given(signed):
    from types import SimpleNamespace

    spearman = {"positive": [1.0, 0.5, 0.2], "mine": [1.0, 0.9, 0.8]}
    result = SimpleNamespace(
        steps=("intact", "dense", "conv"), spearman=spearman, spearman_signed=signed,
        cascade=True,
    )
    ax = plotting.plot_randomization(result, Figure().subplots(), title="r")
    lines = ax.get_lines()
    drawn = {line.get_label(): line for line in lines if not line.get_label().startswith("_")}
    assert list(drawn) == ["positive", "mine"] + (["signed attribution"] if signed else [])
    for name, values in {**spearman, "signed attribution": signed}.items():
        if values is not None:
            np.testing.assert_array_equal(drawn[name].get_ydata(), values)
    assert drawn["positive"].get_color() == "C1"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(result.steps)
    assert ax.get_title() == "r"
