"""tf_signsal.models: architectures against a plain numpy forward pass with PyTorch semantics,
parameter counts from the architecture formulas, shapes, logits, weights handling."""

import json

import keras
import numpy as np
import pytest

from reference import torch_state_of
from tf_signsal import models


def _conv_ref(x, kernel, bias, stride, pad):
    """PyTorch Conv2d (symmetric zero padding), plain loops over output pixels. x: (H, W, C)."""
    k = kernel.shape[0]
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    h = (x.shape[0] - k) // stride + 1
    w = (x.shape[1] - k) // stride + 1
    out = np.zeros((h, w, kernel.shape[-1]))
    for i in range(h):
        for j in range(w):
            patch = x[i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[i, j] = np.tensordot(patch, kernel, axes=3)
    return out + (0 if bias is None else bias)


def _maxpool_ref(x, k=3, stride=2, pad=1):
    """PyTorch MaxPool2d: padding with -inf."""
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), constant_values=-np.inf)
    h = (x.shape[0] - k) // stride + 1
    w = (x.shape[1] - k) // stride + 1
    return np.array([[x[i * stride:i * stride + k, j * stride:j * stride + k].max(axis=(0, 1))
                      for j in range(w)] for i in range(h)])


def _relu(x):
    return np.maximum(x, 0)


def _bn_ref(x, layer):
    gamma, beta, mean, var = (w.numpy() for w in layer.weights)
    return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta


def _paper_cnn_ref(model, image):
    params = {layer.name: [w.numpy() for w in layer.weights] for layer in model.layers}
    x = _relu(_conv_ref(image, *params["stem_conv"], stride=2, pad=3))
    x = _maxpool_ref(x)
    for block in (1, 2, 3):
        for conv, stride in ((1, 1), (2, 2), (3, 1)):
            x = _relu(_conv_ref(x, *params[f"block{block}_conv{conv}"], stride=stride, pad=1))
    kernel, bias = params["fc"]
    return x.mean(axis=(0, 1)) @ kernel + bias


def _resnet18_ref(model, image):
    net = model.get_layer("resnet18")

    def conv(x, name, stride, pad):
        return _conv_ref(x, net.get_layer(name).kernel.numpy(), None, stride, pad)

    x = _relu(_bn_ref(conv(image, "conv1", 2, 3), net.get_layer("bn1")))
    x = _maxpool_ref(x)
    for stage in (1, 2, 3, 4):
        for block in (0, 1):
            name = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            y = _relu(_bn_ref(conv(x, f"{name}.conv1", stride, 1), net.get_layer(f"{name}.bn1")))
            y = _bn_ref(conv(y, f"{name}.conv2", 1, 1), net.get_layer(f"{name}.bn2"))
            if stride == 2:
                x = _bn_ref(conv(x, f"{name}.downsample.0", 2, 0),
                            net.get_layer(f"{name}.downsample.1"))
            x = _relu(y + x)
    fc = net.get_layer("fc")
    logits_1000 = x.mean(axis=(0, 1)) @ fc.kernel.numpy() + fc.bias.numpy()
    head = model.get_layer("classifier")
    return logits_1000 @ head.kernel.numpy() + head.bias.numpy()


def _conv_params(c_in, c_out, k, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def test_paper_cnn_parameter_count_from_the_architecture():
    expected = _conv_params(3, 32, 7) + 128 * 10 + 10
    c_in = 32
    for c in (32, 64, 128):
        expected += _conv_params(c_in, c, 3) + 2 * _conv_params(c, c, 3)
        c_in = c
    assert expected == 495_146  # the number the spec gives for the authors' CNNModel
    assert models.paper_cnn((32, 32, 3), 10).count_params() == expected


@pytest.mark.parametrize("size, sizes", [
    (32, [16, 8, 4, 2, 1]), (224, [112, 56, 28, 14, 7]),
])
def test_paper_cnn_spatial_sizes_follow_pytorch(size, sizes):
    model = models.paper_cnn((size, size, 3), 10)
    got = [model.get_layer(name).output.shape[1] for name in
           ("stem_conv", "stem_pool", "block1_conv3", "block2_conv3", "block3_conv3")]
    # stem conv 16, pool 8, then each block halves: 4, 2, 1 (32 input).
    assert got == [sizes[0], sizes[1], sizes[2], sizes[3], sizes[4]]
    assert model.output_shape == (None, 10)


def test_paper_cnn_equals_pytorch_semantics_reference(rng):
    keras.utils.set_random_seed(1)
    model = models.paper_cnn((32, 32, 3), 10)
    images = rng.random((2, 32, 32, 3), dtype=np.float32)
    logits = model.predict(images, verbose=0)
    for image, got in zip(images, logits):
        np.testing.assert_allclose(got, _paper_cnn_ref(model, image.astype(np.float64)),
                                   rtol=1e-4, atol=1e-5)


def test_resnet18_equals_pytorch_semantics_reference(rng):
    keras.utils.set_random_seed(2)
    model = models.resnet18((32, 32, 3), 10)
    # Non-trivial BatchNorm statistics, so that the reference checks them too.
    for layer in model.get_layer("resnet18").layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0, 0.1, n))
    image = rng.random((1, 32, 32, 3), dtype=np.float32)
    got = model(image, training=False).numpy()[0]
    np.testing.assert_allclose(got, _resnet18_ref(model, image[0].astype(np.float64)),
                               rtol=1e-3, atol=1e-4)


def test_resnet18_parameter_count_from_the_architecture():
    def bn(c):
        return 2 * c  # gamma, beta (trainable); Keras also stores 2 * c moving statistics

    trainable = _conv_params(3, 64, 7, bias=False) + bn(64)
    bn_channels = 64
    c_in = 64
    for c in (64, 128, 256, 512):
        for block in range(2):
            first_in = c_in if block == 0 else c
            trainable += _conv_params(first_in, c, 3, False) + _conv_params(c, c, 3, False)
            trainable += 2 * bn(c)
            bn_channels += 2 * c
            if first_in != c:
                trainable += _conv_params(first_in, c, 1, False) + bn(c)
                bn_channels += c
        c_in = c
    torchvision_resnet18 = trainable + 512 * 1000 + 1000
    assert torchvision_resnet18 == 11_689_512  # torchvision's documented resnet18 size
    trainable = torchvision_resnet18 + 1000 * 10 + 10
    model = models.resnet18((32, 32, 3), 10)
    n_trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert n_trainable == trainable
    assert model.count_params() == trainable + 2 * bn_channels


@pytest.mark.parametrize("size", [32, 224])
def test_resnet18_output_shape(size):
    model = models.resnet18((size, size, 3), 10)
    assert model.output_shape == (None, 10)
    assert model.get_layer("resnet18").output_shape == (None, 1000)


def test_resnet18_weights_options(tmp_path):
    with pytest.raises(ValueError, match="no ImageNet weights.*weights file"):
        models.resnet18(weights="imagenet")
    with pytest.raises(ValueError, match="weights"):
        models.resnet18(weights=str(tmp_path / "missing.weights.h5"))
    keras.utils.set_random_seed(3)
    source = models.resnet18((32, 32, 3), 10)
    path = str(tmp_path / "rn18.weights.h5")
    source.get_layer("resnet18").save_weights(path)
    loaded = models.resnet18((32, 32, 3), 10, weights=path, frozen=True)
    for a, b in zip(source.get_layer("resnet18").weights, loaded.get_layer("resnet18").weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Frozen: only the new head trains.
    assert [w.path for w in loaded.trainable_weights] == ["classifier/kernel", "classifier/bias"]


def test_frozen_backbone_runs_in_inference_mode(rng):
    model = models.resnet18((32, 32, 3), 10, frozen=True)
    images = rng.random((4, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(model(images, training=True), model(images, training=False),
                               rtol=1e-5, atol=1e-6)


def test_convnext_tiny_shapes_head_and_preprocessing(rng):
    model = models.convnext_tiny((32, 32, 3), 10)
    assert model.output_shape == (None, 10)
    backbone = model.get_layer("convnext_tiny")
    assert backbone.output_shape == (None, 1000)
    assert backbone.layers[-1].activation is keras.activations.linear
    # The paper's setup: no ImageNet normalisation inside, no scaling to [0, 255].
    assert not any(isinstance(layer, (keras.layers.Normalization, keras.layers.Rescaling))
                   for layer in [*model.layers, *backbone.layers])
    scaled = models.convnext_tiny((32, 32, 3), 10, imagenet_normalization=True)
    assert scaled.get_layer("to_0_255").scale == 255.0
    norm = [layer for layer in scaled.get_layer("convnext_tiny").layers
            if isinstance(layer, keras.layers.Normalization)]
    assert len(norm) == 1
    np.testing.assert_allclose(np.ravel(norm[0].mean), np.array([0.485, 0.456, 0.406]) * 255,
                               rtol=1e-6)


def test_convnext_tiny_frozen_probe_trains_only_the_head():
    model = models.convnext_tiny((32, 32, 3), 10, frozen=True)
    assert [w.path for w in model.trainable_weights] == ["classifier/kernel", "classifier/bias"]


def test_convnext_tiny_offline_download_error(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")  # what keras.utils.get_file raises

    monkeypatch.setattr("keras.src.applications.convnext.file_utils.get_file", offline)
    with pytest.raises(RuntimeError, match="weights=None") as info:
        models.convnext_tiny(weights="imagenet")
    assert "\n" not in str(info.value) and "download" in str(info.value)


@pytest.mark.parametrize("build", [
    lambda: models.paper_cnn((16, 16, 3), 7),
    lambda: models.resnet18((32, 32, 3), 7),
])
def test_models_output_logits_not_probabilities(build, rng):
    model = build()
    assert model.output_shape == (None, 7)
    assert model.layers[-1].activation is keras.activations.linear
    logits = model.predict(rng.random((3, *model.input_shape[1:]), dtype=np.float32), verbose=0)
    assert not np.allclose(logits.sum(axis=1), 1.0)


@pytest.mark.parametrize("builder", [models.paper_cnn, models.resnet18, models.convnext_tiny])
def test_bad_arguments(builder):
    with pytest.raises(ValueError, match="input_shape"):
        builder((32, 32), 10)
    with pytest.raises(ValueError, match="input_shape"):
        builder((None, None, 3), 10)
    with pytest.raises(ValueError, match="num_classes"):
        builder((32, 32, 3), 0)


def _write_safetensors(path, tensors):
    """The safetensors layout, written plainly: u64 header length, JSON header, raw bytes."""
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        dtype = {np.float32: "F32", np.int64: "I64"}[array.dtype.type]
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + b"".join(chunks))


def _conv_nchw(x, weight, bias, stride, pad):
    """PyTorch Conv2d on (C, H, W) with a PyTorch (out, in, kh, kw) weight."""
    k = weight.shape[-1]
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h = (x.shape[1] - k) // stride + 1
    w = (x.shape[2] - k) // stride + 1
    out = np.zeros((weight.shape[0], h, w))
    for i in range(h):
        for j in range(w):
            patch = x[:, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, i, j] = np.tensordot(weight, patch, axes=3) + bias
    return out


def _paper_cnn_torch_ref(state, image_chw):
    """The authors' CNNModel forward pass in PyTorch's layout, from its state dict alone."""
    x = _relu(_conv_nchw(image_chw, state["stem_conv.weight"], state["stem_conv.bias"], 2, 3))
    x = _maxpool_ref(x.transpose(1, 2, 0)).transpose(2, 0, 1)
    for block in (1, 2, 3):
        for conv, stride in ((1, 1), (2, 2), (3, 1)):
            name = f"block{block}_conv{conv}"
            x = _relu(_conv_nchw(x, state[f"{name}.weight"], state[f"{name}.bias"], stride, 1))
    return state["fc.weight"] @ x.mean(axis=(1, 2)) + state["fc.bias"]


def test_load_torch_state_paper_cnn_equals_the_pytorch_layout_forward_pass(rng):
    shapes = {"stem_conv": (32, 3, 7, 7), "fc": (10, 128)}
    channels_in = 32
    for block, channels in zip((1, 2, 3), (32, 64, 128)):
        for conv in (1, 2, 3):
            shapes[f"block{block}_conv{conv}"] = (channels, channels_in, 3, 3)
            channels_in = channels
    state = {}
    for name, shape in shapes.items():
        state[f"{name}.weight"] = rng.normal(0, 0.6 / np.sqrt(np.prod(shape[1:])), shape)
        state[f"{name}.bias"] = rng.normal(0, 0.05, shape[0])
    model = models.paper_cnn((32, 32, 3), 10)
    models.load_torch_state(model, state)
    images = rng.random((2, 32, 32, 3))
    logits = model.predict(images.astype(np.float32), verbose=0)
    for image, got in zip(images, logits):
        np.testing.assert_allclose(got, _paper_cnn_torch_ref(state, image.transpose(2, 0, 1)),
                                   rtol=1e-4, atol=1e-5)

    del state["block2_conv3.bias"]
    with pytest.raises(ValueError, match=r"no \['block2_conv3.bias'\]"):
        models.load_torch_state(model, state)


def _with_random_batchnorm(state, rng):
    """Random BatchNorm parameters and statistics (fresh layers hold 1, 0, 0, 1)."""
    for name in [key for key in state if key.endswith(".running_var")]:
        n = state[name].shape[0]
        for key in ("weight", "bias", "running_mean"):
            state[name.replace("running_var", key)] = rng.normal(0, 0.1, n).astype(np.float32)
        state[name] = rng.uniform(0.5, 2, n).astype(np.float32)
    return state


def test_load_torch_state_names_nested_models_by_prefix(rng):
    """resnet18(...) takes examples/train_torch.py's layout: "resnet18.<torchvision name>"."""
    keras.utils.set_random_seed(5)
    state = _with_random_batchnorm(torch_state_of(models.resnet18((32, 32, 3), 10)), rng)
    assert "classifier.weight" in state and "resnet18.layer4.1.bn2.running_var" in state
    target = models.resnet18((32, 32, 3), 10)
    models.load_torch_state(target, state)
    np.testing.assert_array_equal(target.get_layer("classifier").kernel.numpy(),
                                  state["classifier.weight"].T.astype(np.float32))
    image = rng.random((1, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(target(image, training=False).numpy()[0],
                               _resnet18_ref(target, image[0].astype(np.float64)),
                               rtol=1e-3, atol=1e-4)


def test_torchvision_resnet18_state_dict_round_trip(tmp_path, rng):
    keras.utils.set_random_seed(4)
    source = models.resnet18((32, 32, 3), 10)
    state = _with_random_batchnorm(torch_state_of(source.get_layer("resnet18")), rng)
    for name in [key for key in state if key.endswith(".running_var")]:
        state[name.replace("running_var", "num_batches_tracked")] = np.array(7, np.int64)
    path = tmp_path / "model.safetensors"
    _write_safetensors(path, state)
    read = models.read_safetensors(path)
    assert set(read) == set(state)
    np.testing.assert_array_equal(read["layer2.0.downsample.0.weight"],
                                  state["layer2.0.downsample.0.weight"])

    target = models.resnet18((32, 32, 3), 10)
    target.get_layer("classifier").set_weights(source.get_layer("classifier").get_weights())
    models.load_torch_state(target.get_layer("resnet18"), read)
    np.testing.assert_array_equal(
        target.get_layer("resnet18").get_layer("bn1").moving_variance.numpy(),
        state["bn1.running_var"],
    )
    image = rng.random((1, 32, 32, 3), dtype=np.float32)
    got = target(image, training=False).numpy()[0]
    np.testing.assert_allclose(got, _resnet18_ref(target, image[0].astype(np.float64)),
                               rtol=1e-3, atol=1e-4)
    for a, b in zip(source.get_layer("resnet18").layers, target.get_layer("resnet18").layers):
        if isinstance(a, keras.layers.Conv2D):
            np.testing.assert_array_equal(a.kernel.numpy(), b.kernel.numpy())

    state["fc.weight"] = state["fc.weight"][:, :5]
    with pytest.raises(ValueError, match="fc needs shape"):
        models.load_torch_state(target.get_layer("resnet18"), state)
