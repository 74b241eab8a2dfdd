"""AllegianceEvaluator against the plain numpy reference of the spec's section 2.2."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import any_size_model, small_conv_net
from reference import reference_class_gradients
from reference_deletion import reference_allegiance, reference_mask, reference_order_mask
from tf_signsal.evaluation import (
    ALL_PAIRS,
    PAPER_FRACTIONS,
    PAPER_PAIRS,
    AllegianceEvaluator,
    AllegianceResult,
    Blur,
    Mean,
    Road,
    as_fill,
    deletion_masks,
    random_maps,
    trapezoid_auc,
)
from tf_signsal.maps import SignedSaliency

RANDOM_PAIR = ("random", "black")


def tie_net(seed=1):
    """1x1 convolutions + ReLU + average pooling: a pixel's gradient depends only on
    which units it switches on, so the maps hold many exact ties and zeros."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(3, 1, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4),
    ])


def maps_for(model, images, pairs, seed=0):
    methods = sorted({m for m, _ in pairs} - {"random"})
    maps = {m: v.numpy() for m, v in SignedSaliency(model).explain(images, methods=methods).items()}
    maps["random"] = random_maps(tf.constant(images), tf.constant(seed, tf.int64)).numpy()
    return maps


def assert_same(result, other):
    assert result.n_images == other.n_images
    assert list(result.curves) == list(other.curves)
    for pair in result.curves:
        np.testing.assert_array_equal(result.curves[pair], other.curves[pair])
        np.testing.assert_array_equal(result.deleted[pair], other.deleted[pair])
        assert result.auc[pair] == other.auc[pair]
    assert (result.accuracy is None) == (other.accuracy is None)


@pytest.mark.parametrize("make_model", [small_conv_net, tie_net], ids=["tanh_relu", "ties"])
def test_matches_numpy_reference(make_model, rng):
    model = make_model()
    images = rng.random((24, 8, 8, 3), dtype=np.float32)
    images[:4, 2:6, 2:6] = 0.5  # flat patches: more ties in the maps
    labels = rng.integers(0, 4, 24)
    pairs = ALL_PAIRS + (RANDOM_PAIR,)
    maps = maps_for(model, images, pairs)
    if make_model is tie_net:  # the rules under test must really be exercised
        assert any((maps[m] == 0).any() for m in maps)
        assert any(len(np.unique(maps[m][b])) < 50 for m in maps for b in range(24))

    result = AllegianceEvaluator(model, pairs=pairs, batch_size=64).evaluate(
        (images, labels), verbose=0
    )
    curves, auc, deleted, accuracy = reference_allegiance(
        model, images, maps, pairs, PAPER_FRACTIONS, labels=labels
    )
    assert result.n_images == 24
    np.testing.assert_array_equal(result.fractions, PAPER_FRACTIONS)
    for pair in pairs:
        np.testing.assert_array_equal(result.curves[pair], curves[pair])
        np.testing.assert_array_equal(result.accuracy[pair], accuracy[pair])
        np.testing.assert_allclose(result.deleted[pair], deleted[pair], rtol=1e-12)
        assert result.auc[pair] == pytest.approx(auc[pair], rel=1e-12)
        assert result.curves[pair][0] == 1.0


def test_deletion_masks_follow_the_numpy_rule(rng):
    # 2 x 5 = 10 pixels: round(p * 10) hits the halves 0.5 -> 0, 2.5 -> 2, 3.5 -> 4
    # (half to even), and the maps hold ties, zeros and negative values.
    fractions = (0.0, 0.05, 0.25, 0.3, 0.35, 0.6, 0.99)
    maps = np.stack([
        np.array([[0.9, 0.9, 0.5, 0.5, 0.5], [0.1, 0.0, 0.0, 0.0, 0.0]]),
        np.array([[1.0, 0.8, 0.6, 0.4, 0.2], [0.0, -0.2, -0.4, -0.6, -0.8]]),
        np.zeros((2, 5)),
        rng.integers(0, 3, (2, 5)).astype(float),
        rng.random((2, 5)),
    ]).astype(np.float32)
    masks = deletion_masks(maps, fractions).numpy()
    assert masks.shape == (5, len(fractions), 2, 5)
    for b in range(len(maps)):
        for j, p in enumerate(fractions):
            np.testing.assert_array_equal(masks[b, j], reference_mask(maps[b], p))
    # Ties at the threshold stay, zeros stay even below a negative threshold.
    assert masks[0, 3].sum() == 2 and not masks[1, 6][1, 0]


def test_arrays_dataset_and_batch_size_agree(model, rng):
    images = rng.random((21, 8, 8, 3), dtype=np.float32)
    pairs = PAPER_PAIRS + (RANDOM_PAIR,)
    base = AllegianceEvaluator(model, pairs=pairs, batch_size=21).evaluate(images, verbose=0)
    for batch_size in (1, 8):
        other = AllegianceEvaluator(model, pairs=pairs, batch_size=batch_size)
        assert_same(base, other.evaluate(images, verbose=0))
    # A tiny memory budget: one occluded image per model call.
    small = AllegianceEvaluator(model, pairs=pairs, memory_budget=1)
    assert_same(base, small.evaluate(images, verbose=0))
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(5)
    assert_same(base, AllegianceEvaluator(model, pairs=pairs).evaluate(dataset, verbose=0))
    labelled = tf.data.Dataset.from_tensor_slices((images, np.arange(21) % 5)).batch(4)
    with_labels = AllegianceEvaluator(model, pairs=pairs).evaluate(labelled, verbose=1)
    assert with_labels.accuracy is not None
    assert_same(base, AllegianceEvaluator(model, pairs=pairs).evaluate(
        labelled.map(lambda x, y: x), verbose=0
    ))
    direct = AllegianceEvaluator(model, pairs=pairs).evaluate((images, np.arange(21) % 5), 0)
    for pair in pairs:
        np.testing.assert_array_equal(with_labels.accuracy[pair], direct.accuracy[pair])


def test_value_range_and_fills(model, rng):
    # A model taking [0, 255] inputs: black and white are the ends of value_range.
    images = rng.random((10, 8, 8, 3), dtype=np.float32)
    pairs = (("positive", "black"), ("negative", "white"), ("standard", 0.25),
             ("active", (0.1, 0.5, 0.9)))
    result = AllegianceEvaluator(model, pairs=pairs, value_range=(-1.0, 2.0)).evaluate(images, 0)
    maps = maps_for(model, images, pairs)
    explicit = (("positive", -1.0), ("negative", 2.0), ("standard", 0.25),
                ("active", (0.1, 0.5, 0.9)))
    curves, _, _, _ = reference_allegiance(model, images, maps, explicit, PAPER_FRACTIONS)
    for pair, same in zip(pairs, explicit):
        np.testing.assert_array_equal(result.curves[pair], curves[same])


def test_auc_of_a_known_curve():
    fractions = (0.0, 0.5, 0.9)
    assert trapezoid_auc(fractions, (1.0, 1.0, 1.0)) == pytest.approx(0.9)
    assert trapezoid_auc(fractions, (1.0, 0.0, 0.0)) == pytest.approx(0.25)
    assert trapezoid_auc(fractions, (1.0, 0.5, 0.5)) == pytest.approx(0.375 + 0.2)


def test_random_maps_are_seeded_and_batch_independent(images):
    first = random_maps(tf.constant(images), tf.constant(3, tf.int64)).numpy()
    alone = random_maps(tf.constant(images[2:3]), tf.constant(3, tf.int64)).numpy()
    other_seed = random_maps(tf.constant(images), tf.constant(4, tf.int64)).numpy()
    np.testing.assert_array_equal(first[2], alone[0])
    assert (first > 0).all() and (first <= 1).all()
    assert not np.array_equal(first, other_seed)
    assert not np.array_equal(first[0], first[1])
    assert len(np.unique(first[0])) == first[0].size


def test_json_round_trip_and_summary(model, images, tmp_path):
    pairs = PAPER_PAIRS + (("standard", 0.5), ("active", (0.1, 0.2, 0.3)))
    result = AllegianceEvaluator(model, pairs=pairs).evaluate((images, np.arange(6) % 5), 0)
    path = tmp_path / "allegiance.json"
    result.save_json(path)
    assert "positive/black" in json.loads(path.read_text())["curves"]
    loaded = AllegianceResult.load_json(path)
    assert loaded == result
    assert_same(result, loaded)
    assert list(loaded.curves) == list(pairs)
    assert os.listdir(tmp_path) == ["allegiance.json"]  # no temporary file left
    text = result.summary()
    assert "positive/black" in text and f"{result.auc[('positive', 'black')]:.3f}" in text


def test_plot_returns_axes(model, images):
    import matplotlib

    matplotlib.use("Agg")
    result = AllegianceEvaluator(model).evaluate(images, verbose=0)
    ax = result.plot()
    assert len(ax.lines) == len(PAPER_PAIRS)
    assert ax.lines[0].get_linestyle() == "-" and ax.lines[3].get_linestyle() == "--"
    np.testing.assert_allclose(ax.lines[0].get_xdata(), np.array(PAPER_FRACTIONS) * 100)
    assert "AUC" in ax.get_legend().get_texts()[0].get_text()
    white = [pair for pair in PAPER_PAIRS if pair[1] == "white"]
    ax = result.plot(pairs=white)
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), result.curves[white[1]])
    assert [t.get_text().split(" ")[0] for t in ax.get_legend().get_texts()] == [
        "standard/white", "negative/white", "inactive/white"
    ]
    with pytest.raises(ValueError, match="`pairs` must be among the evaluated pairs"):
        result.plot(pairs=[("active", "white")])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fractions": (0.0, 0.2, 0.1)}, "strictly increasing"),
        ({"fractions": (0.0, 0.5, 1.0)}, r"\[0, 1\)"),
        ({"fractions": (-0.1, 0.5)}, r"\[0, 1\)"),
        ({"pairs": (("gradcam", "black"),)}, "valid methods are"),
        ({"pairs": (("positive", "grey"),)}, "black"),
        ({"pairs": (("positive", "black"), ("positive", "black"))}, "repeat"),
        ({"value_range": (1.0, 0.0)}, "low < high"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        AllegianceEvaluator(model, **kwargs)


def test_bad_data(model, images):
    evaluator = AllegianceEvaluator(model)
    with pytest.raises(ValueError, match="model takes"):
        evaluator.evaluate(np.zeros((2, 9, 9, 3), np.float32), verbose=0)
    with pytest.raises(ValueError, match="no images"):
        evaluator.evaluate(np.zeros((0, 8, 8, 3), np.float32), verbose=0)
    with pytest.raises(ValueError, match="empty"):
        evaluator.evaluate(tf.data.Dataset.from_tensor_slices(images).take(0).batch(2), 0)
    with pytest.raises(ValueError, match="empty"):
        evaluator.evaluate(tf.data.Dataset.from_tensor_slices(images).filter(
            lambda x: False).batch(2), 0)
    with pytest.raises(ValueError, match="channel"):
        AllegianceEvaluator(model, pairs=(("positive", (0.0, 1.0)),)).evaluate(images, 0)


def gradient_x_input(saliency):
    """A map the package does not make, as a user would write it: |g * x| summed over
    channels, g the gradient of the predicted class's logit."""

    def explainer(images):
        gradients = saliency.class_gradients(images)  # (B, C, H, W, ch)
        predicted = tf.argmax(saliency.logits(images), axis=1)
        g = tf.gather(gradients, predicted, axis=1, batch_dims=1)
        return {"gxi": tf.reduce_sum(tf.abs(g * images), axis=-1)}

    return explainer


def test_custom_explainer_matches_numpy_reference(model, rng):
    images = rng.random((13, 8, 8, 3), dtype=np.float32)
    labels = rng.integers(0, 5, 13)
    saliency = SignedSaliency(model)
    explainer = gradient_x_input(saliency)
    pairs = (("gxi", "black"), ("gxi", "white"), RANDOM_PAIR)
    result = AllegianceEvaluator(model, pairs=pairs, batch_size=5, explainer=explainer).evaluate(
        (images, labels), verbose=0
    )
    # The reference's map, in numpy from the per-class loop gradients.
    gradients = reference_class_gradients(model, images)  # (B, C, H, W, ch)
    predicted = np.asarray(model(images, training=False)).argmax(axis=1)
    g = gradients[np.arange(13), predicted]
    maps = {"gxi": np.abs(g * images).sum(axis=-1)}
    maps["random"] = random_maps(tf.constant(images), tf.constant(0, tf.int64)).numpy()
    curves, auc, deleted, accuracy = reference_allegiance(
        model, images, maps, pairs, PAPER_FRACTIONS, labels=labels
    )
    for pair in pairs:
        np.testing.assert_array_equal(result.curves[pair], curves[pair])
        np.testing.assert_array_equal(result.accuracy[pair], accuracy[pair])
        np.testing.assert_allclose(result.deleted[pair], deleted[pair], rtol=1e-12)
        assert result.auc[pair] == pytest.approx(auc[pair], rel=1e-12)


def test_signed_saliency_is_an_explainer(model, rng):
    images = rng.random((9, 8, 8, 3), dtype=np.float32)
    pairs = ALL_PAIRS + (RANDOM_PAIR,)
    default = AllegianceEvaluator(model, pairs=pairs).evaluate(images, verbose=0)
    # Given explicitly, as the fast path (same model) or as any callable (another object).
    explicit = AllegianceEvaluator(model, pairs=pairs, explainer=SignedSaliency(model))
    assert_same(default, explicit.evaluate(images, verbose=0))
    as_callable = AllegianceEvaluator(
        model, pairs=pairs, explainer=lambda x: SignedSaliency(model)(x)
    )
    assert_same(default, as_callable.evaluate(images, verbose=0))


def test_custom_explainer_batching_and_memory_budget_agree(model, rng):
    images = rng.random((11, 8, 8, 3), dtype=np.float32)
    explainer = gradient_x_input(SignedSaliency(model))
    pairs = (("gxi", "black"), ("gxi", 0.5))
    base = AllegianceEvaluator(model, pairs=pairs, batch_size=11, explainer=explainer)
    base = base.evaluate(images, verbose=0)
    for kwargs in ({"batch_size": 2}, {"memory_budget": 1}):
        other = AllegianceEvaluator(model, pairs=pairs, explainer=explainer, **kwargs)
        assert_same(base, other.evaluate(images, verbose=0))


@pytest.mark.parametrize(
    "explainer, error, message",
    [
        (lambda x: {"other": tf.zeros(x.shape[:3])}, ValueError, "returns only"),
        (lambda x: {"gxi": tf.zeros(x.shape[:2])}, ValueError, r"shape \(batch, height, width\)"),
        (lambda x: tf.zeros(x.shape[:3]), TypeError, "mapping"),
        (lambda x: {"gxi": np.full(x.shape[:3], np.nan)}, ValueError, "NaN"),
    ],
    ids=["missing", "shape", "not_a_mapping", "nan"],
)
def test_bad_explainer_output(model, images, explainer, error, message):
    evaluator = AllegianceEvaluator(model, pairs=[("gxi", "black")], explainer=explainer)
    with pytest.raises(error, match=message):
        evaluator.evaluate(images, verbose=0)


def test_explainer_must_be_callable(model):
    with pytest.raises(TypeError, match="explainer"):
        AllegianceEvaluator(model, explainer="gradcam")


def test_labels_as_keras_datasets_columns(model, images):
    labels = (np.arange(6) % 5).reshape(6, 1)  # keras.datasets gives (N, 1)
    column = AllegianceEvaluator(model).evaluate((images, labels), verbose=0)
    flat = AllegianceEvaluator(model).evaluate((images, labels[:, 0]), verbose=0)
    for pair in PAPER_PAIRS:
        np.testing.assert_array_equal(column.accuracy[pair], flat.accuracy[pair])


def test_endless_dataset_is_refused(model, images):
    endless = tf.data.Dataset.from_tensor_slices(images).batch(2).repeat()
    with pytest.raises(ValueError, match="endless"):
        AllegianceEvaluator(model).evaluate(endless, verbose=0)


def test_single_output_model_is_refused(images):
    binary = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1),
    ])
    with pytest.raises(ValueError, match="single output"):
        AllegianceEvaluator(binary, pairs=[("standard", "black")]).evaluate(images, 0)


def test_data_outside_value_range_is_refused(model, images):
    with pytest.raises(ValueError, match="outside `value_range`"):
        AllegianceEvaluator(model).evaluate(images * 255, verbose=0)
    with pytest.raises(ValueError, match="outside `value_range`"):
        AllegianceEvaluator(model).evaluate(images * 2 - 1, verbose=0)
    wide = AllegianceEvaluator(model, value_range=(0, 255)).evaluate(images * 255, verbose=0)
    assert wide.n_images == 6


@pytest.mark.parametrize(
    "labels, error, message",
    [
        (np.array([1.7, 0, 1, 2, 3, 4]), TypeError, "integer class indices"),
        (np.array([99, 0, 1, 2, 3, 4]), ValueError, r"\[0, 5\)"),
        (np.array([-1, 0, 1, 2, 3, 4]), ValueError, r"\[0, 5\)"),
    ],
    ids=["float", "out_of_range", "negative"],
)
def test_bad_labels(model, images, labels, error, message):
    with pytest.raises(error, match=message):
        AllegianceEvaluator(model).evaluate((images, labels), verbose=0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"fractions": (0.1,)}, ValueError, "two points"),
        ({"seed": "abc"}, TypeError, "`seed` must be an integer"),
        ({"seed": 2**70}, ValueError, "`seed` must be an integer <="),
        ({"seed": -1}, ValueError, "`seed`"),
        ({"fractions": "0.1"}, TypeError, "`fractions`"),
        ({"pairs": "positive/black"}, TypeError, "`pairs`"),
        ({"batch_size": 2.5}, TypeError, "`batch_size`"),
        ({"value_range": None}, TypeError, "`value_range`"),
    ],
)
def test_bad_argument_types_and_values(model, kwargs, error, message):
    with pytest.raises(error, match=message):
        AllegianceEvaluator(model, **kwargs)


def test_json_with_nan_is_refused(model, images, tmp_path):
    result = AllegianceEvaluator(model).evaluate(images, verbose=0)
    text = json.dumps(result.to_dict()).replace("1.0", "NaN", 1)
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="NaN"):
        AllegianceResult.load_json(path)
    result.curves[PAPER_PAIRS[0]][1] = np.nan  # a NaN never reaches a file
    with pytest.raises(ValueError, match="nan.json was not written: the record holds NaN"):
        result.save_json(tmp_path / "nan.json")
    assert not (tmp_path / "nan.json").exists()


@pytest.mark.parametrize("make_model", [small_conv_net, tie_net], ids=["tanh_relu", "ties"])
def test_orders_match_numpy_reference(make_model, rng):
    model = make_model()
    images = rng.random((12, 8, 8, 3), dtype=np.float32)
    images[:3, 2:6, 2:6] = 0.5  # flat patches: ties in the maps
    labels = rng.integers(0, 4, 12)
    pairs = (("positive", "black"), ("active", "white"), ("standard", 0.3), RANDOM_PAIR)
    fractions = (0.0, 0.05, 0.25, 0.5, 0.99)
    maps = maps_for(model, images, pairs)
    result = AllegianceEvaluator(
        model, fractions=fractions, pairs=pairs, batch_size=5,
        orders=("morf", "lerf", "insertion"),
    ).evaluate((images, labels), verbose=0)
    assert result.orders == ("morf", "lerf", "insertion")
    assert_orders_match_reference(result, model, images, maps, pairs, fractions, labels=labels)
    for pair in pairs:  # MoRF stays result.curves, and SRG is LeRF minus MoRF
        np.testing.assert_array_equal(result.curves[pair], result.order_curves["morf"][pair])
        assert result.srg[pair] == result.order_auc["lerf"][pair] - result.auc[pair]


def test_lerf_masks_follow_the_numpy_rule(rng):
    fractions = (0.0, 0.05, 0.25, 0.35, 0.6, 0.99)
    maps = np.stack([
        np.array([[0.9, 0.9, 0.5, 0.5, 0.5], [0.1, 0.0, 0.0, 0.0, 0.0]]),
        np.zeros((2, 5)),
        rng.integers(0, 3, (2, 5)).astype(float),
    ]).astype(np.float32)
    for order in ("lerf", "insertion"):
        masks = deletion_masks(maps, fractions, order=order).numpy()
        for b in range(len(maps)):
            for j, p in enumerate(fractions):
                np.testing.assert_array_equal(
                    masks[b, j], reference_order_mask(maps[b], p, order)
                )
    # Ties go by pixel index: of the all-zero map, the first pixels in row-major order.
    assert deletion_masks(maps, fractions, order="lerf").numpy()[1, 3].reshape(-1).tolist() == (
        [True] * 4 + [False] * 6
    )


def test_orders_json_round_trip_summary_and_plot(model, images, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    result = AllegianceEvaluator(model, orders=("morf", "lerf", "insertion")).evaluate(
        (images, np.arange(6) % 5), verbose=0
    )
    path = tmp_path / "orders.json"
    result.save_json(path)
    loaded = AllegianceResult.load_json(path)
    assert loaded == result and loaded.orders == result.orders
    assert set(json.loads(path.read_text())["srg"]) == {
        "standard/black", "positive/black", "active/black", "standard/white",
        "negative/white", "inactive/white",
    }
    text = result.summary()
    assert "lerf" in text and "insertion" in text and "SRG" in text
    ax = result.plot(order="insertion")
    np.testing.assert_array_equal(
        ax.lines[0].get_ydata(), result.order_curves["insertion"][PAPER_PAIRS[0]]
    )
    with pytest.raises(ValueError, match="`order`"):
        AllegianceEvaluator(model).evaluate(images, verbose=0).plot(order="lerf")


def test_results_written_before_orders_still_load(model, images):
    result = AllegianceEvaluator(model).evaluate((images, np.arange(6) % 5), verbose=0)
    old = result.to_dict()
    del old["orders"], old["srg"]  # the layout of files written before orders existed
    loaded = AllegianceResult.from_dict(json.loads(json.dumps(old)))
    assert loaded.orders == ("morf",) and loaded.srg == {}
    assert loaded == result


@pytest.mark.parametrize(
    "orders, error", [(("lerf",), ValueError), (("sideways",), ValueError), (3, TypeError)]
)
def test_bad_orders(model, orders, error):
    with pytest.raises(error, match="`orders`"):
        AllegianceEvaluator(model, orders=orders)


def test_an_order_given_as_a_string_is_named_whole(model):
    with pytest.raises(ValueError, match=r"received \['lerf'\]"):
        AllegianceEvaluator(model, orders="lerf")


def test_huge_road_noise_and_blur_sigma_are_refused(model):
    with pytest.raises(ValueError, match="`road_noise`"):
        AllegianceEvaluator(model, road_noise=1e39)  # the noise would be Inf in float32
    with pytest.raises(ValueError, match="`blur_sigma`"):
        AllegianceEvaluator(model, blur_sigma=1e9)  # a kernel of 6e9 taps
    with pytest.raises(ValueError, match="`noise_std`"):
        Road(1e39)
    with pytest.raises(ValueError, match="`sigma`"):
        Blur(1e9)


def test_broken_records_are_refused_with_a_message(model, images):
    record = AllegianceEvaluator(model).evaluate(images, verbose=0).to_dict()
    short = {**record, "fractions": record["fractions"][:-1]}
    short.pop("orders")
    with pytest.raises(ValueError, match="one value per fraction"):
        AllegianceResult.from_dict(short)
    with pytest.raises(ValueError, match="not an AllegianceResult"):
        AllegianceResult.from_dict({**record, "curves": [1, 2], "orders": None})
    with pytest.raises(ValueError, match="not an AllegianceResult"):  # a name without "/"
        AllegianceResult.from_dict({**record, "curves": {"nope": [1.0] * 13}, "orders": None})
    lerf = AllegianceEvaluator(model, orders=("morf", "lerf")).evaluate(images, verbose=0)
    record = lerf.to_dict()
    record["orders"]["lerf"]["curves"].pop(next(iter(record["orders"]["lerf"]["curves"])))
    with pytest.raises(ValueError, match="the same pairs in every order"):
        AllegianceResult.from_dict(record)


def test_a_one_channel_tuple_fill_keeps_its_key_through_json(rng, tmp_path):
    keras.utils.set_random_seed(0)
    grey = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(3, 3, activation="tanh"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3),
    ])
    pair = ("positive", (0.5,))
    result = AllegianceEvaluator(grey, pairs=[pair]).evaluate(
        rng.random((4, 8, 8, 1), dtype=np.float32), verbose=0
    )
    result.save_json(tmp_path / "grey.json")
    loaded = AllegianceResult.load_json(tmp_path / "grey.json")
    assert loaded.auc[pair] == result.auc[pair]


def test_batches_of_several_image_sizes_are_refused(rng):
    model = any_size_model()
    small = tf.data.Dataset.from_tensor_slices(rng.random((2, 8, 8, 3), dtype=np.float32))
    large = tf.data.Dataset.from_tensor_slices(rng.random((2, 16, 16, 3), dtype=np.float32))
    mixed = small.batch(2).concatenate(large.batch(2))
    with pytest.raises(ValueError, match="share one image shape"):
        AllegianceEvaluator(model).evaluate(mixed, verbose=0)


def test_unrelated_json_is_refused(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"loss": [1.0, 0.5]}))
    with pytest.raises(ValueError, match="not an AllegianceResult"):
        AllegianceResult.load_json(path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pairs": [("positive", 255)]}, "outside `value_range`"),
        ({"pairs": [("positive", (0.0, 2.0, 0.5))]}, "outside `value_range`"),
        ({"pairs": [("positive", "black"), ("positive", 0.0)]}, "same deletion"),
        ({"pairs": [("positive", (0.0, 0.0, 0.0)), ("positive", "black")]}, "same deletion"),
        ({"pairs": [("positive", 0.5), ("positive", (0.5, 0.5, 0.5))]}, "same deletion"),
        ({"pairs": [("positive", np.float32(0.3)), ("positive", 0.3)]}, "same deletion"),
        ({"pairs": [("a/b", "black")], "explainer": lambda x: {}}, "must not contain"),
    ],
)
def test_pairs_that_would_mislead(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        AllegianceEvaluator(model, **kwargs)


def test_verbose_is_checked(model, images):
    with pytest.raises(TypeError, match="`verbose`"):
        AllegianceEvaluator(model).evaluate(images, verbose="yes")


def test_a_list_is_images_and_a_tuple_is_images_and_labels(model, images):
    as_list = AllegianceEvaluator(model).evaluate(list(images), verbose=0)
    as_array = AllegianceEvaluator(model).evaluate(images, verbose=0)
    assert as_list == as_array


@pytest.mark.parametrize(
    "pairs, options",
    [
        ((("positive", Blur(1.5)), ("negative", "mean"), ("active", Road(0.02)),
          ("standard", "black"), RANDOM_PAIR), {"batch_size": 4}),
        # Occluded images are gathered from one table of the batch's pixels, the constant
        # fills' values and the blur/mean images: mix them, per channel too, one occluded
        # image per chunk.
        ((("positive", "blur(1.5)"), ("standard", (0.2, 0.4, 0.6)), ("active", Mean()),
          ("negative", "white"), ("standard", "road"), RANDOM_PAIR),
         {"batch_size": 3, "memory_budget": 1}),
    ],
    ids=["with_road", "one_image_per_chunk"],
)
def test_image_fills_match_the_reference_loop(model, rng, pairs, options):
    from tf_signsal.evaluation.fills import blur_images, mean_images
    from tf_signsal.evaluation.road import road_impute

    images = rng.random((7, 8, 8, 3), dtype=np.float32)
    fractions = (0.0, 0.1, 0.5, 0.9)
    image_fills = {  # one image at a time, through the public fill functions
        "blur(1.5)": lambda x, m: blur_images(x[None], sigma=1.5).numpy()[0],
        "mean": lambda x, m: mean_images(x[None]).numpy()[0],
        "road": lambda x, m: road_impute(x[None], m[None], noise_std=0.01, seed=3).numpy()[0],
        "road(0.02)": lambda x, m: road_impute(
            x[None], m[None], noise_std=0.02, seed=3).numpy()[0],
    }
    maps = maps_for(model, images, pairs, seed=3)
    result = AllegianceEvaluator(
        model, pairs=pairs, fractions=fractions, orders=("morf", "lerf", "insertion"), seed=3,
        **options,
    ).evaluate(images, verbose=0)
    keys = [(method, as_fill(fill).key) for method, fill in pairs]
    assert result.pairs == tuple(keys)
    assert_orders_match_reference(
        result, model, images, maps, keys, fractions, image_fills=image_fills
    )


def test_deprecated_blur_sigma_and_road_noise_name_their_fills(model, images):
    with pytest.warns(DeprecationWarning, match="Blur"):
        evaluator = AllegianceEvaluator(
            model, pairs=[("positive", "blur"), ("positive", "road")], blur_sigma=2.0,
            road_noise=0.05,
        )
    assert evaluator.pairs == (("positive", "blur(2.0)"), ("positive", "road(0.05)"))
    assert evaluator.protocol == AllegianceEvaluator(
        model, pairs=[("positive", Blur(2.0)), ("positive", Road(0.05))]
    ).protocol


def test_steps_bound_a_repeating_dataset_and_unknown_lengths_warn(model, images):
    repeating = tf.data.Dataset.from_tensor_slices(images).batch(3).filter(
        lambda x: True
    ).repeat()
    bounded = AllegianceEvaluator(model).evaluate(repeating, verbose=0, steps=2)
    assert bounded == AllegianceEvaluator(model).evaluate(images, verbose=0)
    unknown = tf.data.Dataset.from_tensor_slices(images).filter(lambda x: True).batch(3)
    with pytest.warns(UserWarning, match="steps="):
        AllegianceEvaluator(model).evaluate(unknown, verbose=0)
    with pytest.raises(ValueError, match="`steps`"):
        AllegianceEvaluator(model).evaluate(images, verbose=0, steps=2)


def assert_orders_match_reference(
    result, model, images, maps, pairs, fractions, labels=None, image_fills=None
):
    """Every order's curves (and accuracy, with labels) equal the numpy reference's; its
    deleted shares and AUCs match to float rounding."""
    for order in result.orders:
        curves, auc, deleted, accuracy = reference_allegiance(
            model, images, maps, pairs, fractions, labels=labels, order=order,
            image_fills=image_fills,
        )
        for pair in pairs:
            np.testing.assert_array_equal(result.order_curves[order][pair], curves[pair])
            if labels is not None:
                np.testing.assert_array_equal(result.order_accuracy[order][pair], accuracy[pair])
            np.testing.assert_allclose(result.order_deleted[order][pair], deleted[pair],
                                       rtol=1e-12)
            assert result.order_auc[order][pair] == pytest.approx(auc[pair], rel=1e-12)


def test_truncated_json_is_named(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text('{"fractions": [0.0, 0.1')
    with pytest.raises(ValueError, match="not valid JSON"):
        AllegianceResult.load_json(path)


def test_deletion_masks_refuse_nan_maps():
    maps = np.zeros((1, 2, 2), np.float32)
    maps[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        deletion_masks(maps, (0.0, 0.5))
