"""Every figure kind at its extremes (1 and 10 rows or columns, 1 and 24 curves, class
names of 40 characters): rendered with Agg, no text box overlaps another or leaves the
figure, and the pictures keep their size.

The boxes are those matplotlib's renderer gives (`Text.get_window_extent`) of the texts
it really draws: `Text.draw` is watched while the canvas draws, so hidden texts (the
ticks of an axes drawn without axis, ticks outside the limits) are left out."""

import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from tf_signsal import plotting
from tf_signsal.maps import METHODS

LONG = "a class name of exactly forty characters"  # len 40
assert len(LONG) == 40
FRACTIONS = (0.0, 0.03, 0.05, 0.07, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FILLS = ("black", "white", "blur(2.0)", "road(0.02)")


def drawn_texts(figure, monkeypatch):
    """(text, box in pixels) of every text the Agg canvas draws, and the figure's box."""
    canvas = FigureCanvasAgg(figure)
    drawn = []
    draw = Text.draw

    def watched(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)
        return draw(self, renderer)

    with monkeypatch.context() as patch:
        patch.setattr(Text, "draw", watched)
        canvas.draw()
    renderer = canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in drawn], figure.bbox


def assert_texts_apart(figure, monkeypatch, tolerance=0.5):
    """No drawn text box overlaps another or crosses the figure's edge (in pixels)."""
    texts, frame = drawn_texts(figure, monkeypatch)
    assert texts, "the figure draws no text"
    for text, box in texts:
        assert (
            box.x0 >= frame.x0 - tolerance and box.y0 >= frame.y0 - tolerance
            and box.x1 <= frame.x1 + tolerance and box.y1 <= frame.y1 + tolerance
        ), f"{text!r} leaves the figure: {box} outside {frame}"
    for (a, box_a), (b, box_b) in itertools.combinations(texts, 2):
        overlap_x = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        overlap_y = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        assert overlap_x <= tolerance or overlap_y <= tolerance, (
            f"{a!r} {box_a} overlaps {b!r} {box_b}"
        )
    return texts


def test_the_check_sees_overlapping_and_clipped_texts(monkeypatch):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1))
    figure.text(0.1, 0.5, "one label")
    figure.text(0.15, 0.5, "another label")
    with pytest.raises(AssertionError, match="overlaps"):
        assert_texts_apart(figure, monkeypatch)
    clipped = Figure(figsize=(2, 1))
    clipped.text(0.9, 0.5, "a label running off the edge")
    with pytest.raises(AssertionError, match="leaves the figure"):
        assert_texts_apart(clipped, monkeypatch)


def assert_cells_keep_their_size(figure, cell_size, count):
    """`count` picture axes (the non-colour-bar ones holding images) of `cell_size` inches."""
    pictures = [a for a in figure.get_axes() if a.images and not hasattr(a, "_colorbar")]
    assert len(pictures) == count
    for axis in pictures:
        width = axis.get_position().width * figure.get_figwidth()
        np.testing.assert_allclose(width, cell_size, rtol=1e-6)


def _data(rng, rows, methods=METHODS, size=8):
    images = rng.random((rows, size, size, 3)).astype(np.float32)
    return images, {m: rng.random((rows, size, size)).astype(np.float32) for m in methods}


def _explain_titles(rows):
    """Row titles as `tf-signsal explain` writes them, of 40-character class names."""
    return [
        f"holiday_photo_number_{row:03d}_from_the_camera.jpeg\npred {LONG} (3), "
        f"map of {LONG} (7)"
        for row in range(rows)
    ]


# ----------------------------------------------------------------------------- grids


@pytest.mark.parametrize("rows", [1, 10])
@pytest.mark.parametrize("colorbar", [False, True])
def test_maps_grid_texts_apart(rng, monkeypatch, rows, colorbar):
    images, maps = _data(rng, rows)
    figure = plotting.plot_maps_grid(
        images, maps, titles=_explain_titles(rows), colorbar=colorbar, suptitle="epoch 3"
    )
    assert_texts_apart(figure, monkeypatch)
    columns = [a for a in figure.get_axes() if not hasattr(a, "_colorbar")]
    for axis in columns:  # a column's pictures stacked: cell_size wide
        np.testing.assert_allclose(axis.get_position().width * figure.get_figwidth(), 1.6)


@pytest.mark.parametrize("rows", [1, 10])
def test_overlays_texts_apart(rng, monkeypatch, rows):
    images, maps = _data(rng, rows)
    titles = plotting.prediction_titles(np.zeros(rows, int), np.ones(rows, int),
                                        ["x" * 40, LONG], separator="\n")
    figure = plotting.plot_overlays(images, maps, titles=titles, suptitle="epoch 12")
    assert_texts_apart(figure, monkeypatch)
    assert_cells_keep_their_size(figure, 1.6, rows * (len(METHODS) + 1))


def test_overlays_of_two_maps_and_one_image_are_not_tiny(rng, monkeypatch):
    # The case of `explain --methods positive negative --targets 3` on one image.
    images, maps = _data(rng, 1, ("positive", "negative"))
    figure = plotting.plot_overlays(images, maps, ["positive", "negative"],
                                    titles=_explain_titles(1))
    assert_texts_apart(figure, monkeypatch)
    assert_cells_keep_their_size(figure, 1.6, 3)
    # The pictures fill the figure's width but for the labels and the bar.
    pictures = sum(a.get_position().width for a in figure.get_axes()[:3])
    assert pictures > 0.5


@pytest.mark.parametrize("columns", [1, 10])
def test_maps_grid_of_one_to_ten_columns_of_long_names(rng, monkeypatch, columns):
    names = [f"{LONG[:38]}{c:02d}" for c in range(columns)]
    images, maps = _data(rng, 2, names)
    figure = plotting.plot_maps_grid(images, maps, names, titles=[LONG, LONG], colorbar=True)
    texts = assert_texts_apart(figure, monkeypatch)
    # Every header is shown (wrapped over lines, not cut): its words all appear.
    shown = " ".join(text.replace("\n", " ") for text, _ in texts)
    for name in names:
        assert name.split()[-1] in shown


def test_a_label_too_long_for_its_row_is_shortened_and_given_in_full(rng, monkeypatch):
    images, maps = _data(rng, 2)
    label = " ".join(f"word{i}" for i in range(120))
    figure = plotting.plot_overlays(images, maps, ["positive"], titles=[label, "short"])
    texts = assert_texts_apart(figure, monkeypatch)
    row_label = figure.get_axes()[0].texts[0].get_text()
    assert row_label.endswith("…") and len(row_label) < len(label)
    caption = [t for t, _ in texts if t.startswith("In full:")]
    assert len(caption) == 1 and label in " ".join(caption[0].split())


@pytest.mark.parametrize("rows", [1, 10])
@pytest.mark.parametrize("mode", ["beside", "alone", "over"])
def test_signed_view_texts_apart(rng, monkeypatch, rows, mode):
    images, _ = _data(rng, rows)
    signed = rng.normal(size=(rows, 8, 8)).astype(np.float32)
    figure = plotting.plot_signed(
        None if mode == "alone" else images, signed, titles=[LONG] * rows,
        alpha=0.6 if mode == "over" else None, suptitle="signed view",
    )
    texts = assert_texts_apart(figure, monkeypatch)
    notes = [t for t, _ in texts if t.startswith("max |map| = ")]
    assert len(notes) == rows  # the scale of each row's map, stated under it
    bar = figure.get_axes()[-1]._colorbar
    assert (bar.vmin, bar.vmax) == (-1.0, 1.0)  # diverging, centred on zero
    assert bar.mappable.get_cmap().name == "RdBu_r"


@pytest.mark.parametrize("epochs", [1, 10])
def test_map_evolution_texts_apart(tmp_path, rng, monkeypatch, epochs):
    names = [LONG, "x" * 40]
    for epoch in range(epochs):
        np.savez(
            tmp_path / f"epoch_{epoch:04d}.npz", positive=rng.random((2, 8, 8)),
            predictions=np.array([epoch % 2, 1]), epoch=np.int64(epoch),
            images=rng.random((2, 8, 8, 3)), class_names=np.asarray(names),
        )
    figure = plotting.plot_map_evolution(tmp_path, 0, "positive")
    assert_texts_apart(figure, monkeypatch)
    assert_cells_keep_their_size(figure, 1.6, epochs + 1)


# ----------------------------------------------------------------------------- curves


def _curves(rng, methods, fills):
    curves = {}
    for fill in fills:
        for method in methods:
            tail = np.sort(rng.random(len(FRACTIONS) - 1))[::-1]
            curves[f"{method}/{fill}"] = np.concatenate([[1.0], tail])
    return curves, {n: float(np.trapezoid(c, FRACTIONS)) for n, c in curves.items()}


@pytest.mark.parametrize("order", ["morf", "lerf", "insertion"])
@pytest.mark.parametrize("count", [1, 24])
def test_order_curves_texts_apart(rng, monkeypatch, order, count):
    if count == 1:
        curves, auc = _curves(rng, ["positive"], ["black"])
    else:  # the five maps and the random control with four fills
        curves, auc = _curves(rng, [*METHODS, "random"], FILLS)
    figure = plotting.plot_order_curves(FRACTIONS, curves, auc, order, title="cifar10")
    texts = [t for t, _ in assert_texts_apart(figure, monkeypatch)]
    panels = figure.get_axes()
    assert len(panels) == (1 if count == 1 else len(FILLS))
    for name, values in curves.items():  # each curve in its fill's panel, its AUC in the legend
        method, _, fill = name.partition("/")
        panel = panels[list(dict.fromkeys(n.partition("/")[2] for n in curves)).index(fill)]
        labels = [t.get_text() for t in panel.get_legend().get_texts()]
        shown = "random (control)" if method == "random" else method
        index = labels.index(f"{shown}, AUC {auc[name]:.3f}")
        np.testing.assert_array_equal(panel.get_lines()[index].get_ydata(), values)
        np.testing.assert_array_equal(panel.get_lines()[index].get_xdata(),
                                      np.array(FRACTIONS) * 100)
    # The random control looks the same in every panel.
    styles = {
        (line.get_color(), line.get_linestyle(), line.get_marker())
        for panel in panels for line, label in zip(panel.get_lines(), panel.get_legend().texts)
        if label.get_text().startswith("random")
    }
    assert len(styles) == (0 if count == 1 else 1)
    assert any(t.startswith("allegiance") for t in texts)
    assert any("share of pixels" in t for t in texts)


def test_order_curves_of_many_maps_with_long_names_in_one_panel(rng, monkeypatch):
    methods = [f"{LONG[:36]} {i:03d}" for i in range(24)]
    curves, auc = _curves(rng, methods, ["black"])
    figure = plotting.plot_order_curves(FRACTIONS, curves, auc)
    assert_texts_apart(figure, monkeypatch)
    assert len(figure.get_axes()[0].get_legend().get_texts()) == 24


@pytest.mark.parametrize("count", [1, 24])
def test_srg_bars_texts_apart(rng, monkeypatch, count):
    methods = [*METHODS, "random"]
    names = [f"{m}/{f}" for f in FILLS for m in methods][:count]
    srg = {n: float(v) for n, v in zip(names, rng.uniform(-0.2, 0.4, count))}
    figure = plotting.plot_srg(srg, title=LONG)
    texts = [t for t, _ in assert_texts_apart(figure, monkeypatch)]
    (axis,) = figure.get_axes()
    widths = [patch.get_width() for patch in axis.patches]
    np.testing.assert_allclose(widths, list(srg.values()))
    for value in srg.values():
        assert f"{value:.3f}" in texts


def test_allegiance_figures_of_a_result(rng):
    from tf_signsal.evaluation.result import AllegianceResult

    curves, _ = _curves(rng, ["positive", "standard"], ["black", "white"])
    record = {
        "fractions": list(FRACTIONS), "n_images": 4,
        "orders": {
            order: {"curves": {n: c.tolist() for n, c in curves.items()},
                    "deleted": {n: list(FRACTIONS) for n in curves}, "accuracy": None}
            for order in ("morf", "lerf")
        },
    }
    record.update(record["orders"]["morf"])
    result = AllegianceResult.from_dict(record)
    figures = plotting.allegiance_figures(result, title="data")
    assert list(figures) == ["curves_morf", "curves_lerf", "srg"]
    srg_bars = [p.get_width() for p in figures["srg"].get_axes()[0].patches]
    np.testing.assert_allclose(srg_bars, [result.srg[p] for p in result.pairs])
    morf_only = plotting.allegiance_figures({**result.to_dict(), "orders": None, "srg": {}})
    assert list(morf_only) == ["curves_morf"]


def test_curve_figure_errors():
    with pytest.raises(ValueError, match="`curves` holds no curve"):
        plotting.plot_order_curves(FRACTIONS, {})
    with pytest.raises(ValueError, match="`srg` must be a non-empty dict"):
        plotting.plot_srg({})
    with pytest.raises(ValueError, match="finite"):
        plotting.plot_srg({"positive/black": float("nan")})
    with pytest.raises(TypeError, match="`result` must be an AllegianceResult"):
        plotting.allegiance_figures([1, 2])
    with pytest.raises(ValueError, match=r"`auc` must give the AUC of every curve"):
        plotting.plot_order_curves([0.0, 0.5], {"a/black": [1.0, 0.5]}, {})


# ----------------------------------------------------------------------------- evaluate


@pytest.mark.slow  # two runs of the command: ~20 s on 2 cores
def test_evaluate_writes_a_figure_per_order_and_the_srg_in_the_format_asked(
    tmp_path, capsys
):
    from PIL import Image

    from conftest import small_conv_net
    from tf_signsal._io import manifest_name, read_json, write_json
    from tf_signsal.cli import main

    model = tmp_path / "net.keras"
    small_conv_net(num_classes=2, seed=1).save(model)
    rng = np.random.default_rng(0)
    for index in range(4):
        folder = tmp_path / "pictures" / f"class_{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
            folder / f"{index}.png"
        )
    out = tmp_path / "eval"
    out.mkdir()
    # An older run's one figure, listed in its manifest: replaced by the new ones.
    (out / "results.json").write_text("{}")
    (out / "curves.png").write_bytes(b"old")
    write_json(out / manifest_name("evaluate"),
               {"command": "evaluate", "files": ["results.json", "curves.png"]})
    base = ["evaluate", "--model", str(model), "--data", str(tmp_path / "pictures"),
            "--out", str(out), "--batch-size", "4"]
    assert main([*base, "--orders", "morf", "lerf", "insertion", "--format", "svg"]) == 0, (
        capsys.readouterr().err
    )
    names = ["results.json", "curves_morf.svg", "curves_lerf.svg", "curves_insertion.svg",
             "srg.svg"]
    assert read_json(out / manifest_name("evaluate"))["files"] == names
    assert sorted(p.name for p in out.iterdir()) == sorted([manifest_name("evaluate"), *names])
    for name in names[1:]:
        assert (out / name).read_text().lstrip().startswith("<?xml")
    capsys.readouterr()
    # MoRF alone: no SRG; the earlier run's other figures are removed.
    assert main([*base, "--orders", "morf"]) == 0, capsys.readouterr().err
    assert read_json(out / manifest_name("evaluate"))["files"] == [
        "results.json", "curves_morf.png"
    ]
    assert (out / "curves_morf.png").read_bytes().startswith(b"\x89PNG")
    assert not (out / "srg.svg").exists() and not (out / "curves_lerf.svg").exists()


# ----------------------------------------------------------------------------- the report


def test_report_lists_its_sections_and_aligns_only_numbers_right():
    import re

    from tf_signsal.report import HtmlReport

    page = HtmlReport("Title <1>")
    page.paragraph("before the first heading")
    page.heading("Maps & more")
    page.table(["map", "definition", "score", "count"], [["positive", "pixels to brighten",
                                                          0.61234, 3]])
    page.heading("Curves")
    text = page.html()
    # The contents after the text before the first heading, linking each heading's anchor.
    anchors = re.findall(r'<h2 id="([\w-]+)">([^<]*)</h2>', text)
    assert [name for _, name in anchors] == ["Maps &amp; more", "Curves"]
    contents = re.search(r'<nav class="contents">.*?</nav>', text).group(0)
    assert re.findall(r'href="#([\w-]+)"', contents) == [anchor for anchor, _ in anchors]
    assert text.index("before the first heading") < text.index(contents) < text.index(
        '<h2 id="'
    )
    assert "<h1>Title &lt;1&gt;</h1>" in text
    # Text cells left-aligned (the default), numbers right-aligned.
    assert "<td>pixels to brighten</td>" in text
    assert '<td class="number">0.612</td>' in text and '<td class="number">3</td>' in text
    assert "td.number { text-align: right" in text and "text-align: left" in text
    # Without headings, no contents.
    assert "contents" not in HtmlReport("x").html().split("</style>")[1]
