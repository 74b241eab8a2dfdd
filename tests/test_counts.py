"""Public deletion counts: additive over any split into batches, fingerprinted, saved
without pickle; and the deletion protocol they carry."""

import json
import zipfile

import numpy as np
import pytest

from conftest import small_conv_net
from tf_signsal.evaluation import (
    AllegianceEvaluator,
    Blur,
    DeletionCounts,
    DeletionProtocol,
    Insertion,
    LeRF,
    Mean,
    MoRF,
    Road,
)

FRACTIONS = (0.0, 0.1, 0.5, 0.9)
# A constant, one per channel, an image fill, ROAD's mask-dependent fill and the control.
PAIRS = (
    ("positive", "black"),
    ("standard", (0.2, 0.4, 0.6)),
    ("negative", Blur(1.0)),
    ("active", Road()),
    ("random", "white"),
)


@pytest.fixture
def evaluator(model):
    return AllegianceEvaluator(
        model, fractions=FRACTIONS, pairs=PAIRS, orders=(MoRF(), LeRF(), Insertion()),
        batch_size=4, seed=5,
    )


def test_counts_of_uneven_batches_sum_to_evaluate_exactly(evaluator, rng):
    images = rng.random((9, 8, 8, 3), dtype=np.float32)
    labels = np.arange(9) % 5
    whole = evaluator.evaluate((images, labels), verbose=0)
    for splits in ([3, 4], [1, 2, 8], [5]):
        parts = [
            evaluator.batch_counts(x, y)
            for x, y in zip(np.split(images, splits), np.split(labels, splits))
        ]
        summed = DeletionCounts.sum(parts)
        assert evaluator.result(summed) == whole
        # Python's sum and the neutral element give the same counts.
        for other in (sum(parts), DeletionCounts.zeros(evaluator.protocol) + summed):
            assert other.images == summed.images == 9
            for name in ("agree", "correct", "deleted"):
                np.testing.assert_array_equal(getattr(other, name), getattr(summed, name))
    assert summed.shape == (3, len(PAIRS), len(FRACTIONS))
    assert summed.labelled and summed.num_pixels == 64


def test_counts_without_labels_match_evaluate(evaluator, rng):
    images = rng.random((5, 8, 8, 3), dtype=np.float32)
    counts = evaluator.batch_counts(images[:2]) + evaluator.batch_counts(images[2:])
    result = evaluator.result(counts)
    assert result == evaluator.evaluate(images, verbose=0) and result.accuracy is None


def test_save_and_load_round_trip_without_pickle(evaluator, rng, tmp_path):
    counts = evaluator.batch_counts(rng.random((3, 8, 8, 3), dtype=np.float32), [0, 1, 2])
    path = tmp_path / "counts.npz"
    counts.save(path)
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(str(archive["header"][()]))
        assert archive["agree"].dtype == np.int64
    assert header["format"] == "tf_signsal.DeletionCounts" and header["version"] == 1
    assert header["fingerprint"] == evaluator.protocol.fingerprint
    assert header["pairs"][2] == "negative/blur(1.0)"
    loaded = DeletionCounts.load(path)
    for name in ("images", "fingerprint", "fractions", "pairs", "orders", "num_pixels",
                 "labelled"):
        assert getattr(loaded, name) == getattr(counts, name)
    for name in ("agree", "correct", "deleted"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(counts, name))
    assert evaluator.result(loaded) == evaluator.result(counts)
    assert evaluator.result(loaded + counts).n_images == 6
    # The same bytes between processes (an engine's workers), without a file.
    sent = DeletionCounts.from_bytes(counts.to_bytes())
    assert sent.fingerprint == counts.fingerprint and sent.images == counts.images
    np.testing.assert_array_equal(sent.agree, counts.agree)
    assert evaluator.result(sent) == evaluator.result(counts)
    with pytest.raises(ValueError, match="`data` is not a DeletionCounts file"):
        DeletionCounts.from_bytes(b"PK not an npz")
    with pytest.raises(TypeError, match="`data` must be bytes"):
        DeletionCounts.from_bytes(counts)


def test_counts_of_other_protocols_image_sizes_or_labelling_are_not_added(evaluator, rng):
    images = rng.random((2, 8, 8, 3), dtype=np.float32)
    counts = evaluator.batch_counts(images)
    model = evaluator.model
    for changed in ({"seed": 6}, {"pairs": PAIRS[:2] + (("negative", Blur(2.0)),) + PAIRS[3:]},
                    {"fractions": (0.0, 0.2, 0.5, 0.9)}, {"attribution": "gradient_x_input"}):
        options = {"fractions": FRACTIONS, "pairs": PAIRS, "orders": ("morf", "lerf",
                   "insertion"), "seed": 5, **changed}
        other = AllegianceEvaluator(model, **options)
        assert other.protocol.fingerprint != evaluator.protocol.fingerprint
        with pytest.raises(ValueError, match="different protocols"):
            counts + other.batch_counts(images)
        with pytest.raises(ValueError, match="another protocol"):
            evaluator.result(other.batch_counts(images))
    with pytest.raises(ValueError, match="with and without labels"):
        counts + evaluator.batch_counts(images, [0, 1])
    larger = AllegianceEvaluator(
        small_conv_net((10, 10, 3)), fractions=FRACTIONS, pairs=PAIRS,
        orders=("morf", "lerf", "insertion"), seed=5,
    )
    assert larger.protocol == evaluator.protocol  # same protocol: only the size differs
    with pytest.raises(ValueError, match="image sizes"):
        counts + larger.batch_counts(rng.random((2, 10, 10, 3), dtype=np.float32))


def test_bad_counts_and_files_are_refused(evaluator, rng, tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        DeletionCounts.sum([])
    with pytest.raises(ValueError, match="no images"):
        evaluator.result(DeletionCounts.zeros(evaluator.protocol))
    with pytest.raises(TypeError, match="`counts`"):
        evaluator.result({"agree": 1})
    with pytest.raises(ValueError, match="value_range"):
        evaluator.batch_counts(rng.random((2, 8, 8, 3), dtype=np.float32) * 255)
    with pytest.raises(ValueError, match="labels"):
        evaluator.batch_counts(rng.random((2, 8, 8, 3), dtype=np.float32), [0, 1, 2])
    path = tmp_path / "counts.npz"
    evaluator.batch_counts(rng.random((1, 8, 8, 3), dtype=np.float32)).save(path)
    with np.load(path) as archive:
        arrays = dict(archive)
    header = json.loads(str(arrays["header"][()]))
    broken = {
        "version": dict(arrays, header=np.array(json.dumps({**header, "version": 99}))),
        "not a DeletionCounts": dict(arrays, header=np.array("{}")),
        "must have the shape": dict(arrays, agree=arrays["agree"][:1]),
    }
    for message, content in broken.items():
        np.savez(path, **content)
        with pytest.raises(ValueError, match=message):
            DeletionCounts.load(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a DeletionCounts"):
        DeletionCounts.load(path)
    with zipfile.ZipFile(path, "w") as archive:  # an object array needs pickle: refused
        archive.writestr("header.npy", b"")
    with pytest.raises(ValueError, match="not a DeletionCounts"):
        DeletionCounts.load(path)


def test_protocol_is_checked_once_and_fingerprinted():
    protocol = DeletionProtocol(FRACTIONS, PAIRS, ("morf", "lerf"), seed=5)
    assert protocol.keys == (
        ("positive", "black"), ("standard", (0.2, 0.4, 0.6)), ("negative", "blur(1.0)"),
        ("active", "road"), ("random", "white"),
    )
    assert [order.name for order in protocol.orders] == ["morf", "lerf"]
    as_text = [("positive", "black"), ("standard", [0.2, 0.4, 0.6]), ("negative", "blur:1"),
               ("active", "road"), ("random", "white")]
    same = DeletionProtocol(list(FRACTIONS), as_text, (MoRF(), LeRF()), seed=5)
    assert same == protocol and same.fingerprint == protocol.fingerprint
    record = protocol.to_dict()
    assert record["fills"]["blur(1.0)"]["config"] == {"sigma": 1.0}
    assert record["fingerprint"] == protocol.fingerprint
    json.dumps(record)
    for changed in ({"value_range": (0.0, 2.0)}, {"seed": 6}, {"explainer": "other"},
                    {"orders": ("morf",)}):
        options = {"fractions": FRACTIONS, "pairs": PAIRS, "orders": ("morf", "lerf"),
                   "seed": 5, **changed}
        assert DeletionProtocol(**options).fingerprint != protocol.fingerprint
    with pytest.raises(AttributeError):
        protocol.seed = 3  # frozen


class SubBlur(Blur):
    """Named "blur" by Blur: not the built-in blur."""


class SubLeRF(LeRF):
    """Named "lerf" by LeRF: not the built-in LeRF."""


class Twin(Blur):
    name = "twin"


class OtherTwin(Mean):
    name = "twin"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"pairs": [("positive", Road)]}, TypeError, r"Road\(\)"),
        ({"orders": [MoRF]}, TypeError, r"MoRF\(\)"),
        ({"orders": ["morf", 3]}, TypeError, "`orders`"),
        ({"pairs": [("positive", "blur"), ("positive", Blur(5.0))]}, ValueError, "repeat"),
        ({"pairs": [("positive", "blur:0")]}, ValueError, "`sigma`"),
        ({"seed": -1}, ValueError, "`seed`"),
        ({"pairs": [("positive", SubBlur())]}, ValueError, "name of its own"),
        ({"orders": ["morf", SubLeRF()]}, ValueError, "name of its own"),
        ({"pairs": [("positive", Twin()), ("negative", OtherTwin())]}, ValueError,
         "two different fills named 'twin'"),
    ],
)
def test_bad_protocols(kwargs, error, message):
    with pytest.raises(error, match=message):
        DeletionProtocol(**kwargs)


def test_the_callback_takes_fill_objects_and_a_protocol(model, rng):
    from tf_signsal.callbacks import AllegianceCallback

    images = rng.random((4, 8, 8, 3), dtype=np.float32)
    protocol = DeletionProtocol(FRACTIONS, PAIRS[:3], ("morf", "lerf"), seed=5)
    callback = AllegianceCallback(images, protocol=protocol)
    callback.set_model(model)
    expected = AllegianceEvaluator(
        model, fractions=FRACTIONS, pairs=PAIRS[:3], orders=("morf", "lerf"), seed=5
    ).evaluate(images, verbose=0)
    assert callback.evaluate() == expected and callback.pairs == protocol.keys
    assert callback.log_key(("negative", "blur(1.0)")) == "allegiance_auc_negative_blur(1.0)"
    blurred = AllegianceCallback(images, pairs=[("positive", Blur(2.0))], fractions=FRACTIONS)
    assert blurred.pairs == (("positive", "blur(2.0)"),)
    with pytest.raises(ValueError, match="not both"):
        AllegianceCallback(images, pairs=PAIRS, protocol=protocol)
    with pytest.raises(ValueError, match="valid methods"):
        AllegianceCallback(images, pairs=[("gxi", "black")])
    with pytest.raises(TypeError, match="`protocol`"):
        AllegianceCallback(images, protocol={"pairs": PAIRS})
