"""The one data adapter (`tf_signsal._data`): inputs, unpacking and the checks, made once."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_signsal import _data


@pytest.fixture
def data(rng):
    return rng.random((7, 8, 8, 3), dtype=np.float32), np.arange(7) % 3


def as_arrays(source):
    return [(b.images.numpy(), None if b.labels is None else np.asarray(b.labels)) for b in source]


@pytest.mark.parametrize("element", ["x", "(x,)", "(x, y)", "(x, y, w)", "[x, y]"])
def test_unpack_is_keras_unpack(element):
    x, y, w = object(), object(), object()
    value = {"x": x, "(x,)": (x,), "(x, y)": (x, y), "(x, y, w)": (x, y, w), "[x, y]": [x, y]}
    expected = keras.utils.unpack_x_y_sample_weight(value[element])
    assert _data.unpack(value[element]) == expected


def test_unpack_refuses_other_elements():
    with pytest.raises(ValueError, match="tuple of 4"):
        _data.unpack((1, 2, 3, 4), "data")
    with pytest.raises(TypeError, match="`data` elements .* received a dict"):
        _data.unpack({"images": 1}, "data")


@pytest.mark.parametrize("batch_size", [None, 1, 3, 7, 50])
def test_arrays_are_sliced_in_order(data, batch_size):
    images, labels = data
    source = _data.batches((images, labels), batch_size=batch_size)
    assert source.total == 7
    got = as_arrays(source)
    step = 7 if batch_size is None else batch_size
    expected = [(images[i : i + step], labels[i : i + step]) for i in range(0, 7, step)]
    assert len(got) == len(expected)
    for (gx, gy), (ex, ey) in zip(got, expected):
        np.testing.assert_array_equal(gx, ex)
        np.testing.assert_array_equal(gy, ey)


@pytest.mark.parametrize("form", ["images", "(x,)", "(x, y)", "(x, y, w)", "list", "float64"])
def test_every_input_form_gives_the_same_images(data, form):
    images, labels = data
    weights = np.ones(7)
    value = {
        "images": images, "(x,)": (images,), "(x, y)": (images, labels),
        "(x, y, w)": (images, labels, weights), "list": list(images),
        "float64": images.astype(np.float64),
    }[form]
    batch = _data.batches(value, batch_size=4).stack()
    assert batch.images.dtype == tf.float32
    np.testing.assert_array_equal(batch.images.numpy(), images)
    has_labels = form in ("(x, y)", "(x, y, w)")
    assert (batch.labels is not None) == has_labels
    if has_labels:
        np.testing.assert_array_equal(batch.labels, labels)
    assert (batch.weights is not None) == (form == "(x, y, w)")


@pytest.mark.parametrize("element", ["images", "(x,)", "(x, y)", "(x, y, w)"])
def test_datasets_give_their_batches(data, element):
    images, labels = data
    slices = {
        "images": images, "(x,)": (images,), "(x, y)": (images, labels),
        "(x, y, w)": (images, labels, np.ones(7, np.float32)),
    }[element]
    dataset = tf.data.Dataset.from_tensor_slices(slices).batch(3)
    source = _data.batches(dataset, batch_size=100)  # a dataset's own batches are used
    assert source.total is None
    got = as_arrays(source)
    assert [len(x) for x, _ in got] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in got]), images)
    if element in ("(x, y)", "(x, y, w)"):
        np.testing.assert_array_equal(np.concatenate([y for _, y in got]), labels)
    else:
        assert all(y is None for _, y in got)


def test_steps_bound_a_dataset_and_refuse_arrays(data):
    images, _ = data
    repeating = tf.data.Dataset.from_tensor_slices(images).batch(3).repeat()
    got = as_arrays(_data.batches(repeating, steps=4))
    np.testing.assert_array_equal(
        np.concatenate([x for x, _ in got]), np.concatenate([images, images[:3]])  # 3, 3, 1, 3
    )
    with pytest.raises(ValueError, match="endless"):
        _data.batches(repeating)
    with pytest.raises(ValueError, match="`steps`"):
        _data.batches(images, steps=2)


def test_unknown_length_warning_points_at_the_caller(data):
    filtered = tf.data.Dataset.from_tensor_slices(data[0]).batch(3).filter(lambda x: True)
    with pytest.warns(UserWarning, match="steps=") as caught:
        _data.batches(filtered, name="data", what="evaluate")
    assert caught[0].filename == __file__


def test_first_batch_checks(data, model):
    images, labels = data
    with pytest.raises(ValueError, match="`data` has 7 images but 6 labels"):
        _data.batches((images, labels[:6]), name="data")
    with pytest.raises(ValueError, match="`images` holds no images: there is nothing to explain"):
        _data.batches(images[:0])
    empty = _data.batches(images[:0], allow_empty=True)
    assert [b.images.shape for b in empty] == [(0, 8, 8, 3)]
    with pytest.raises(ValueError, match="empty tf.data.Dataset: there is nothing to evaluate"):
        _data.batches(tf.data.Dataset.from_tensor_slices(images).take(0).batch(2), what="evaluate")
    with pytest.raises(ValueError, match="per-image shape"):
        _data.batches(np.zeros((2, 9, 8, 3), np.float32), model=model)
    with pytest.raises(TypeError, match="images / 255"):
        _data.batches((images * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="rank 4"):
        _data.batches(images[0])
    with pytest.raises(ValueError, match="NaN or Inf"):
        _data.batches(np.full((1, 8, 8, 3), np.nan, np.float32))


def test_value_range_is_checked_once_on_the_first_batch(data):
    images, _ = data
    with pytest.raises(ValueError, match=r"\[0, 255\], outside `value_range` \(0, 1\)"):
        _data.batches(np.concatenate([images[:1] * 0, images[:1] * 0 + 255]), value_range=(0, 1))
    within = _data.batches(images + 5e-4, value_range=(0, 1))  # the slack of 1e-3 of the span
    assert within.total == 7
    # Later batches are not read for it: no host sync per batch.
    late = np.concatenate([images[:3], images[3:] + 2])
    dataset = tf.data.Dataset.from_tensor_slices(late).batch(3)
    assert len(list(_data.batches(dataset, value_range=(0, 1)))) == 3


def test_later_batches_keep_one_image_size_and_are_checked(rng):
    sizes = tf.data.Dataset.from_generator(
        lambda: iter([rng.random((2, 8, 8, 3), dtype=np.float32),
                      rng.random((2, 6, 8, 3), dtype=np.float32)]),
        output_signature=tf.TensorSpec((None, None, None, 3), tf.float32),
    )
    source = _data.batches(sizes, steps=2, name="data", what="evaluate")
    with pytest.raises(ValueError, match=r"`data` batches must share one image shape.*evaluate"):
        list(source)
    bad = tf.data.Dataset.from_tensor_slices(
        np.stack([np.zeros((8, 8, 3)), np.full((8, 8, 3), np.inf)]).astype(np.float32)
    ).batch(1)
    with pytest.raises(ValueError, match="NaN or Inf"):
        list(_data.batches(bad))


def test_check_is_the_later_batch_check(data):
    images, _ = data
    source = _data.batches(images, name="data", what="evaluate")
    np.testing.assert_array_equal(source.check(images[:2].astype(np.float64)), images[:2])
    with pytest.raises(ValueError, match="share one image shape"):
        source.check(np.zeros((1, 4, 4, 3), np.float32))


@pytest.mark.parametrize("batch_size", [None, 3])
def test_dataset_gives_the_same_batches(data, batch_size):
    images, labels = data
    for value in (images, (images, labels)):
        source = _data.batches(value, batch_size=batch_size)
        expected = as_arrays(source)
        got = []
        for element in source.dataset():
            x, y, _ = _data.unpack(element)
            got.append((source.check(x).numpy(), None if y is None else y.numpy()))
        assert len(got) == len(expected)
        for (gx, gy), (ex, ey) in zip(got, expected):
            np.testing.assert_array_equal(gx, ex)
            np.testing.assert_array_equal(gy, ey)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(2).repeat()
    assert sum(1 for _ in _data.batches(dataset, steps=3).dataset()) == 3


def test_no_warning_for_plain_inputs(data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _data.batches(data, batch_size=2).stack()
        _data.batches(tf.data.Dataset.from_tensor_slices(data).batch(2)).stack()


def test_the_maps_callback_reads_its_probe_through_the_adapter(data, tmp_path):
    from tf_signsal.callbacks import SaliencyMapsCallback

    images, labels = data
    apart = SaliencyMapsCallback(images, tmp_path, labels=labels)
    together = SaliencyMapsCallback((images, labels), tmp_path)
    np.testing.assert_array_equal(together.images, apart.images)
    np.testing.assert_array_equal(together.labels, apart.labels)
    with pytest.raises(ValueError, match="`labels` is given twice"):
        SaliencyMapsCallback((images, labels), tmp_path, labels=labels)
