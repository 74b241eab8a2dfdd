"""The demo program: the paper's CNN on synthetic signs, its maps, scores and report.

`run_demo` trains `models.paper_cnn` on `synthetic.synthetic_signs` (bright and dark
shapes whose place is known), explains the test images, plays the pointing game
(`synthetic.pointing_game`), runs the black and white deletion benchmark, and writes
figures, `results.json` and a self-contained `report.html`. Each step is one function
below, in the order `run_demo` calls them; `summary` gives the results as text.

Example:

```python
from tf_signsal import demo

record = demo.run_demo("runs/signsal-demo", epochs=3)
print(demo.summary(record))
```
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from tf_signsal import _checks, _io, models, plotting, training
from tf_signsal.callbacks import SaliencyMapsCallback
from tf_signsal.data import synthetic
from tf_signsal.evaluation import PAPER_PAIRS, RANDOM_PAIRS, AllegianceEvaluator, AllegianceResult
from tf_signsal.maps import METHODS, SignedSaliency
from tf_signsal.report import HtmlReport, versions

TOP_FRACTION = 0.05
"""The share of each map's pixels the pointing game takes."""

RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"
MAPS_DIR = "maps_over_training"
"""What `run_demo` writes in its folder, beside the figures, history.json and model.keras."""

OUTPUTS: tuple[str, ...] = (
    RESULTS_FILE, REPORT_FILE, "history.json", "model.keras", "maps_grid.png", "history.png",
    "curves.png", "overlays.png", "signed.png", "maps_over_training_positive.png",
    "maps_over_training_negative.png", MAPS_DIR,
)
"""What `run_demo` writes in its folder: files, and the `MAPS_DIR` folder of the maps logged
during training (each file listed in its manifest, `.tf-signsal-demo.json`)."""

OWN_OUTPUTS = re.compile(
    "|".join(map(re.escape, OUTPUTS[:-1])) + rf"|{re.escape(MAPS_DIR)}/epoch_\d+\.(png|npz)"
)
"""The names the demo may replace in its folder (its manifest is obeyed for these only)."""

MAP_DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("standard", "max over channels of |g|: every pixel whose change moves the score"),
    ("positive", "max over channels of relu(g): pixels whose brightening raises the score"),
    ("negative", "max over channels of relu(-g): pixels whose darkening raises the score"),
    ("active", "|g| where g exceeds every other class's gradient: pixels whose brightening "
     "favours the class over every other one"),
    ("inactive", "|g| where g is below every other class's gradient: pixels whose darkening "
     "favours the class over every other one"),
)
"""The five maps, g being the input gradient of the explained class's score (the report's
table)."""


class _Data(NamedTuple):
    """The demo's images: training and test sets, the test shapes, and one probe per class."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    masks: np.ndarray
    probe: np.ndarray


def run_demo(
    out: str | os.PathLike,
    epochs: int = 6,
    seed: int = 0,
    train_size: int = 4000,
    test_size: int = 256,
    image_size: int = 32,
    batch_size: int = 64,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train, explain and evaluate the paper's CNN on synthetic signs; write a report.

    Writes in `out`: `results.json` (the returned record), `report.html`, the figures
    `maps_grid.png`, `history.png` (loss and accuracy per epoch), `curves.png`,
    `maps_over_training_{positive,negative}.png`, the trained `model.keras`,
    `history.json` and the maps of the probe images after each epoch in
    `maps_over_training/`.

    Args:
        out: the output folder: a new one, an empty one or one the package wrote in (see
            `OUTPUTS`); a rerun replaces the files the demo wrote there, never another.
        epochs: training epochs.
        seed: seed of the data (the test set uses seed + 1), the initial weights, the
            shuffling and the pointing game's random map.
        train_size: training images.
        test_size: test images.
        image_size: pixels per side (at least 8).
        batch_size: images per training batch.
        verbose: show Keras's training log and the benchmark's progress bar.

    Returns:
        The record written to `results.json`: "command", "config" (the arguments above
        but `out` and `verbose`), "class_names", "test_accuracy", "history",
        "pointing_game" ({"top_fraction", "scores": map -> group -> score}),
        "allegiance" (`AllegianceResult.to_dict()`), "notes" (e.g. a pointing-game group
        with no test image, whose scores are None), "versions" and "seconds".

    Raises:
        FileExistsError: before any work, `out` exists and is not a folder, holds a file of
            `OUTPUTS` that the demo did not write, is a folder of files the package did
            not write, or another run is writing in it (`out` holds the earlier run until
            the new one is complete and moved in: an interrupted run leaves it as it was).

    Example:
        >>> record = run_demo("runs/signsal-demo", epochs=1, train_size=200, test_size=32)
        >>> record["pointing_game"]["scores"]["positive"]["bright classes"]
    """
    config = {
        "epochs": _checks.positive_int("epochs", epochs),
        "seed": _checks.non_negative_int("seed", seed),
        "train_size": _checks.positive_int("train_size", train_size),
        "test_size": _checks.positive_int("test_size", test_size),
        "image_size": _checks.integer("image_size", image_size, minimum=8),
        "batch_size": _checks.positive_int("batch_size", batch_size),
    }
    out = os.path.abspath(os.fspath(out))
    _io.check_output_path(out)
    with _io.locked_output_folder(out, "demo"):
        earlier = _io.claim_output_folder(out, "demo", OUTPUTS, OWN_OUTPUTS)
        record, _ = _io.write_output_folder(
            out, "demo", OUTPUTS, earlier,
            lambda folder: _run(folder, config, epochs, seed, train_size, test_size,
                                image_size, batch_size, verbose),
        )
    return record


def _run(
    out: str, config: dict[str, int], epochs: int, seed: int, train_size: int, test_size: int,
    image_size: int, batch_size: int, verbose: bool,
) -> dict[str, Any]:
    """`run_demo`'s work, written in the folder `out` (moved into place once complete)."""
    started = time.perf_counter()
    data = _synthetic_data(train_size, test_size, image_size, seed)
    model, history = _train(data, out, epochs, seed, batch_size, verbose)
    trained = time.perf_counter()
    maps, predictions = _explain(model, data.x_test)
    pointing = synthetic.pointing_game(
        maps, data.masks, data.y_test, seed=seed, top_fraction=TOP_FRACTION
    )
    pointing, notes = _without_nan(pointing)
    result = _allegiance(model, data, verbose)
    raw = SignedSaliency(model).explain(
        data.x_test[data.probe], methods=["positive", "negative"], normalize=False
    )  # the signed view needs the raw maps, on one scale
    figures = _figures(data, maps, predictions, result, history, out)
    figures.update(_sign_figures(data, maps, {m: v.numpy() for m, v in raw.items()}))
    pngs = _save_figures(figures, out)
    record = {
        "command": "demo",
        "config": config,
        "class_names": list(synthetic.SYNTHETIC_CLASS_NAMES),
        "test_accuracy": float(np.mean(predictions == data.y_test)),
        "history": history,
        "pointing_game": {"top_fraction": TOP_FRACTION, "scores": pointing},
        "allegiance": result.to_dict(),
        "notes": notes,
        "versions": versions(),
        "seconds": {"training": trained - started, "total": time.perf_counter() - started},
    }
    _io.write_json(os.path.join(out, RESULTS_FILE), record)
    _report(record, pngs).save(os.path.join(out, REPORT_FILE))
    return record


def summary(record: dict[str, Any]) -> str:
    """The results of a `run_demo` record as text: accuracy, pointing game, allegiance.

    Args:
        record: what `run_demo` returns (or its `results.json`, read back).

    Returns:
        Lines of text, without a final newline.

    Example:
        >>> print(summary(run_demo("signsal-demo")))
    """
    groups, rows = _pointing_rows(record)
    width = max(len(row[0]) for row in rows)
    top = record["pointing_game"]["top_fraction"]
    lines = [
        f"test accuracy {record['test_accuracy']:.3f}",
        f"pointing game (top {top:.0%} inside the shape):",
        f"  {'map':<{width}}  " + "  ".join(f"{group:>14}" for group in groups),
    ]
    for name, *values in rows:
        lines.append(f"  {name:<{width}}  " + "  ".join(f"{_number(v):>14}" for v in values))
    lines += [f"  note: {note}" for note in record.get("notes", [])]
    allegiance = AllegianceResult.from_dict(record["allegiance"])
    return "\n".join(lines) + "\n\n" + allegiance.summary()


def _number(value: float | None) -> str:
    """A score with three decimals, or "-" for None (no image to score)."""
    return "-" if value is None else f"{value:.3f}"


def _without_nan(
    scores: dict[str, dict[str, float]],
) -> tuple[dict[str, dict[str, float | None]], list[str]]:
    """The pointing scores with None for a group that has no image (NaN is not JSON),
    and a note naming each such group."""
    empty = sorted({g for row in scores.values() for g, v in row.items() if math.isnan(v)})
    cleaned = {
        name: {g: None if math.isnan(v) else v for g, v in row.items()}
        for name, row in scores.items()
    }
    notes = [f"no test image of the {group}: its pointing scores are None" for group in empty]
    return cleaned, notes


# ----------------------------------------------------------------------------- the steps


def _synthetic_data(train_size: int, test_size: int, image_size: int, seed: int) -> _Data:
    """Training and test signs (the test set with seed + 1), and the probe images."""
    x_train, y_train, _ = synthetic.synthetic_signs(train_size, image_size, seed)
    x_test, y_test, masks = synthetic.synthetic_signs(test_size, image_size, seed + 1)
    # One probe image per class, in class order: the maps grid and the maps over training.
    classes = range(len(synthetic.SYNTHETIC_CLASS_NAMES))
    probe = np.array([np.flatnonzero(y_test == c)[0] for c in classes if c in y_test])
    return _Data(x_train, y_train, x_test, y_test, masks, probe)


def _train(
    data: _Data, out: str, epochs: int, seed: int, batch_size: int, verbose: bool
) -> tuple[keras.Model, dict[str, list[float]]]:
    """The paper's CNN trained with the paper's recipe, the probe maps logged each epoch.

    Returns the model and its history (metric -> one value per epoch)."""
    names = synthetic.SYNTHETIC_CLASS_NAMES
    train_ds = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
    train_ds = train_ds.shuffle(len(data.x_train), seed=seed).batch(batch_size)
    test_ds = tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test)).batch(batch_size)
    keras.utils.set_random_seed(seed)  # the initial weights
    model = models.paper_cnn(data.x_train.shape[1:], len(names))
    maps_callback = SaliencyMapsCallback(
        data.x_test[data.probe], os.path.join(out, MAPS_DIR), formats=("png", "npz"),
        class_names=names, labels=data.y_test[data.probe],
    )
    history = training.fit_paper_recipe(
        model, train_ds, epochs, test_ds, seed=seed, out_dir=out,
        callbacks=[maps_callback], verbose=2 if verbose else 0,
    )
    return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}


def _explain(model: keras.Model, images: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The five maps of the predicted classes, and the predictions."""
    explanation = SignedSaliency(model).explain(images)
    maps = {m: v.numpy() for m, v in explanation.items()}
    return maps, np.argmax(explanation.logits.numpy(), axis=1)


def _allegiance(model: keras.Model, data: _Data, verbose: bool) -> AllegianceResult:
    """Black and white deletion of the test images: the paper's pairs and the random ones."""
    evaluator = AllegianceEvaluator(model, pairs=PAPER_PAIRS + RANDOM_PAIRS)
    return evaluator.evaluate((data.x_test, data.y_test), verbose=int(verbose))


def _figures(
    data: _Data,
    maps: dict[str, np.ndarray],
    predictions: np.ndarray,
    result: AllegianceResult,
    history: dict[str, list[float]],
    out: str,
) -> dict[str, Figure]:
    """File name -> figure: the maps grid, the training history, the curves and the maps
    over training."""
    # A panel per fill (black, white), the random control alike in both.
    title = f"{len(data.x_test)} synthetic test images"
    curves = plotting.allegiance_figures(result, title=title)["curves_morf"]
    figures = {
        "maps_grid.png": _maps_grid(data, maps, predictions),
        "history.png": _history_figure(history),
        "curves.png": curves,
    }
    # The first probe image is of a bright class and the second of a dark one.
    for index, method in ((0, "positive"), (1, "negative")):
        if index < len(data.probe):
            figures[f"maps_over_training_{method}.png"] = plotting.plot_map_evolution(
                os.path.join(out, MAPS_DIR), index, method
            )
    return figures


def _sign_figures(
    data: _Data, maps: dict[str, np.ndarray], raw: dict[str, np.ndarray]
) -> dict[str, Figure]:
    """The positive and negative maps over their images, and the signed view (positive red,
    negative blue, from the raw maps) of the probe images."""
    images = data.x_test[data.probe]
    chosen = {m: maps[m][data.probe] for m in ("positive", "negative")}
    names = [synthetic.SYNTHETIC_CLASS_NAMES[y] for y in data.y_test[data.probe]]
    return {
        "overlays.png": plotting.plot_overlays(images, chosen, list(chosen), titles=names),
        "signed.png": plotting.plot_signed(
            images, raw["positive"], raw["negative"], titles=names
        ),
    }


def _history_figure(history: dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, training and test."""
    figure = Figure(figsize=(8, 3.2))
    for axis, metric in zip(figure.subplots(1, 2), ("loss", "accuracy")):
        for key, label in ((metric, "training"), (f"val_{metric}", "test")):
            if key in history:
                values = history[key]
                axis.plot(range(1, len(values) + 1), values, marker="o", label=label)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    figure.tight_layout()
    return figure


def _maps_grid(data: _Data, maps: dict[str, np.ndarray], predictions: np.ndarray) -> Figure:
    """The probe images, their shapes (the truth) and their five maps."""
    names = synthetic.SYNTHETIC_CLASS_NAMES
    grid_maps = {"shape": data.masks[data.probe].astype(np.float32)}
    grid_maps.update({method: maps[method][data.probe] for method in METHODS})
    # Short row titles: the true class on two lines, and the prediction only when wrong.
    titles = [
        "\n".join(names[true].rsplit(" ", 1))
        + ("" if true == predicted else f"\npred: {names[predicted]}")
        for true, predicted in zip(data.y_test[data.probe], predictions[data.probe])
    ]
    return plotting.plot_maps_grid(
        data.x_test[data.probe], grid_maps, ("shape", *METHODS), titles=titles
    )


def _save_figures(figures: dict[str, Figure], out: str) -> dict[str, bytes]:
    """Save each figure as PNG in `out` (atomically); file name -> its bytes."""
    pngs = {}
    for name, figure in figures.items():
        path = os.path.join(out, name)
        plotting.save_figure(figure, path, dpi=150)  # sharp at the report's full width
        with open(path, "rb") as file:
            pngs[name] = file.read()
    return pngs


def _pointing_rows(record: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The pointing game of a record as a table: the groups, and a row per map."""
    scores = record["pointing_game"]["scores"]
    groups = list(next(iter(scores.values())))
    return groups, [[name, *(row[g] for g in groups)] for name, row in scores.items()]


def _report(record: dict[str, Any], pngs: dict[str, bytes]) -> HtmlReport:
    """The HTML report of a record, with its figures."""
    config, names = record["config"], record["class_names"]
    groups, rows = _pointing_rows(record)
    page = HtmlReport("tf-signsal demo: sign-aware saliency on synthetic signs")
    page.paragraph(
        f"Paper CNN trained {config['epochs']} epochs on {config['train_size']} images of "
        f"{len(names)} classes, each a shape brighter or darker than a textured background at "
        f"a class-specific place ({', '.join(names)}). Test accuracy "
        f"{record['test_accuracy']:.3f} on {config['test_size']} images. A bright class's "
        "shape should appear in the positive map (pixels to brighten), a dark class's in the "
        "negative map (pixels to darken)."
    )
    page.heading("The five maps")
    page.table(["map", "definition (g: the input gradient of the explained class's score)"],
               [list(row) for row in MAP_DEFINITIONS])
    page.paragraph("Each map is then scaled to [0, 1] per image.", note=True)
    page.heading("Training")
    page.figure(pngs["history.png"], "loss and accuracy after each epoch")
    page.heading("Maps of one test image per class")
    page.figure(pngs["maps_grid.png"], "first column: the image; second: its shape (the truth)")
    page.figure(pngs["overlays.png"], "the positive and negative maps over their images")
    page.figure(pngs["signed.png"], "the signed view: pixels to brighten in red, to darken in "
                "blue (raw gradients, each image on its own scale)")
    top = record["pointing_game"]["top_fraction"]
    page.heading(f"Pointing game (share of the top {top:.0%} pixels of each map inside the shape)")
    page.table(["map", *groups], [[row[0], *(_number(v) for v in row[1:])] for row in rows])
    page.paragraph("Higher is better; chance is the shape's share of the image.", note=True)
    for note in record.get("notes", []):
        page.paragraph(note, note=True)
    page.heading("Maps over training")
    for method in ("positive", "negative"):
        name = f"maps_over_training_{method}.png"
        if name in pngs:
            page.figure(pngs[name], f"the {method} map of a probe image after each epoch")
    page.heading("Black and white deletion (allegiance)")
    page.figure(pngs["curves.png"], "allegiance as pixels are deleted in the map's order")
    auc = record["allegiance"]["auc"]
    page.table(["pair", "AUC (lower is better)"], [[pair, value] for pair, value in auc.items()])
    page.heading("Configuration and versions")
    page.table(["argument", "value"], [[k, str(v)] for k, v in config.items()])
    page.table(["package", "version"], [[k, v] for k, v in record["versions"].items()])
    page.paragraph(
        f"Total time {record['seconds']['total']:.0f} s. Files: {RESULTS_FILE}, history.json, "
        f"model.keras, {', '.join(pngs)}, {MAPS_DIR}/.", note=True
    )
    return page
