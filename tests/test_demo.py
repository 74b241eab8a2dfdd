"""tf_signsal.demo: its arguments and its text summary (the whole program runs in
test_cli's tiny demo)."""

import json

import numpy as np
import pytest

from conftest import small_conv_net
from tf_signsal import demo
from tf_signsal._io import read_json
from tf_signsal.datasets import POINTING_GROUPS, pointing_game, synthetic_signs
from tf_signsal.evaluation import PAPER_PAIRS, AllegianceEvaluator, AllegianceResult


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"epochs": 0}, ValueError, "`epochs` must be a positive integer"),
        ({"epochs": 1.5}, TypeError, "`epochs` must be an integer"),
        ({"seed": -1}, ValueError, "`seed` must be a non-negative integer"),
        ({"train_size": 0}, ValueError, "`train_size` must be a positive integer"),
        ({"test_size": "8"}, TypeError, "`test_size` must be an integer"),
        ({"image_size": 4}, ValueError, "`image_size` must be an integer >= 8"),
        ({"batch_size": 0}, ValueError, "`batch_size` must be a positive integer"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        demo.run_demo(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_summary_of_a_record():
    _, labels, masks = synthetic_signs(16, image_size=8, seed=0)
    scores = pointing_game({"mask": masks * 1.0}, masks, labels)
    model = small_conv_net(num_classes=3)
    images = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    result = AllegianceEvaluator(model, pairs=PAPER_PAIRS).evaluate(images, verbose=0)
    record = {
        "test_accuracy": 0.5,
        "pointing_game": {"top_fraction": 0.05, "scores": scores},
        "allegiance": result.to_dict(),
    }
    record = json.loads(json.dumps(record))  # the summary reads a results.json back as well
    lines = demo.summary(record).split("\n")
    assert lines[0] == "test accuracy 0.500"
    assert lines[1] == "pointing game (top 5% inside the shape):"
    assert lines[2].split() == ["map", *" ".join(POINTING_GROUPS).split()]
    assert lines[3].split() == ["mask", *(f"{scores['mask'][g]:.3f}" for g in POINTING_GROUPS)]
    assert lines[5].startswith("  chance (shape area)  ") and lines[6] == ""
    assert "\n".join(lines[7:]) == AllegianceResult.from_dict(record["allegiance"]).summary()


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path):
    out = tmp_path / "results"
    out.write_text("keep")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        demo.run_demo(out)
    assert out.read_text() == "keep"


@pytest.mark.slow
def test_one_test_image_writes_valid_json(tmp_path):
    """With one test image a pointing-game group has no image: None and a note, not NaN."""
    record = demo.run_demo(tmp_path / "out", epochs=1, train_size=16, test_size=1,
                           image_size=16, verbose=False)
    saved = read_json(tmp_path / "out" / demo.RESULTS_FILE)  # refuses NaN
    assert saved["notes"] == record["notes"] and len(saved["notes"]) == 1
    empty = [g for g, v in saved["pointing_game"]["scores"]["positive"].items() if v is None]
    assert len(empty) == 1 and empty[0] in saved["notes"][0]
    assert "-" in demo.summary(saved).split("\n")[3].split()  # shown as "-"
    assert "note: no test image of the" in demo.summary(saved)
