"""The paper's networks as Keras models: the basic CNN, ResNet-18 and ConvNeXt-Tiny.

Every model takes float32 images in [0, 1] (channels last, no mean/std normalisation, as the
paper) and outputs logits (no softmax). Layers match the authors' PyTorch code (spec section
3.2): PyTorch's symmetric padding is written as explicit `ZeroPadding2D` + "valid" wherever
Keras's "same" would pad differently (stride 2), so spatial sizes and pixel alignment are
PyTorch's, and weights use PyTorch's default initialisations.

Example:

```python
from tf_signsal import models

cnn = models.paper_cnn((32, 32, 3), 10)            # 495,146 parameters
rn18 = models.resnet18((224, 224, 3), 10)          # torchvision resnet18 + Linear(1000 -> 10)
probe = models.convnext_tiny(weights="imagenet", frozen=True)  # the paper's linear probe
```
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from tf_signsal import _checks

_CONVNEXT_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_tiny.h5"
)


def paper_cnn(input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10):
    """The paper's basic CNN (`CNNModel` of the authors' code): no BatchNorm, no dropout.

    Conv 7x7/2 (32) -> ReLU -> MaxPool 3/2, then three blocks of
    Conv3x3 -> ReLU -> Conv3x3 stride 2 -> ReLU -> Conv3x3 -> ReLU with 32, 64 and 128
    channels, global average pooling and a linear layer. Spatial sizes 32->16->8->4->2->1 on
    CIFAR-10 and 224->112->56->28->14->7 on Imagenette. 495,146 parameters at 32x32x3.

    Args:
        input_shape: (height, width, channels) of the [0, 1] input images.
        num_classes: number of logits.

    Returns:
        An uncompiled functional `keras.Model` named "paper_cnn" that outputs logits.

    Example:
        >>> model = paper_cnn((32, 32, 3), 10)
        >>> model.count_params()
        495146
    """
    _check_shape_and_classes(input_shape, num_classes)
    inputs = keras.Input(input_shape, name="images")
    x = _conv(inputs, 32, 7, 2, input_shape[-1], "stem_conv", activation="relu", bias=True)
    # PyTorch pads max-pooling with -inf; after a ReLU every value is >= 0, so zeros are the same.
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    channels_in = 32
    for index, channels in enumerate((32, 64, 128), start=1):
        name = f"block{index}"
        x = _conv(x, channels, 3, 1, channels_in, f"{name}_conv1", activation="relu", bias=True)
        x = _conv(x, channels, 3, 2, channels, f"{name}_conv2", activation="relu", bias=True)
        x = _conv(x, channels, 3, 1, channels, f"{name}_conv3", activation="relu", bias=True)
        channels_in = channels
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = keras.layers.Dense(num_classes, name="fc", **_torch_init(channels_in))(x)
    return keras.Model(inputs, outputs, name="paper_cnn")


def resnet18(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    weights: str | os.PathLike | None = None,
    frozen: bool = False,
):
    """torchvision's ResNet-18 with its 512->1000 `fc`, followed by the paper's Linear(1000->10).

    The ImageNet stem (Conv 7x7/2 + BN + ReLU + MaxPool 3/2, no CIFAR change), basic blocks
    [2, 2, 2, 2] with 64-512 channels, 1x1 conv + BN shortcuts where the shape changes,
    BatchNorm with PyTorch's eps 1e-5 and momentum 0.1 (Keras `momentum=0.9`). The backbone
    (up to the 1000 ImageNet logits) is a nested model named "resnet18"; the head is "classifier".

    Args:
        input_shape: (height, width, channels) of the [0, 1] input images.
        num_classes: number of logits of the new head.
        weights: None (random init, trained from scratch as in the paper) or the path of a Keras
            weights file for the backbone, e.g. torchvision's IMAGENET1K_V1 tensors copied into
            `resnet18((224, 224, 3)).get_layer("resnet18")` and saved with `save_weights`.
            Keras hosts no ImageNet ResNet-18, so "imagenet" raises a ValueError.
        frozen: make the backbone non-trainable and run it in inference mode (BatchNorm uses its
            stored statistics): the paper's linear probe on pre-trained weights.

    Returns:
        An uncompiled functional `keras.Model` named "resnet18_classifier" that outputs logits.

    Example:
        >>> model = resnet18((224, 224, 3), 10)
        >>> model.output_shape
        (None, 10)
    """
    _check_shape_and_classes(input_shape, num_classes)
    if isinstance(weights, str) and weights == "imagenet":
        raise ValueError(
            "`weights`: Keras hosts no ImageNet weights for ResNet-18, received 'imagenet'. "
            "Pass the path of a Keras weights file holding torchvision's ResNet18_Weights."
            "IMAGENET1K_V1 tensors, saved from `resnet18((224, 224, 3)).get_layer('resnet18')`"
            ".save_weights(path) after copying them in, or weights=None to train from scratch"
        )
    backbone = _resnet18_backbone(input_shape)
    if weights is not None:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise ValueError(
                f"`weights` must be None or the path of a Keras weights file, received "
                f"{weights!r}, which is not a file"
            )
        backbone.load_weights(path)
    return _with_head(backbone, input_shape, num_classes, frozen, "resnet18_classifier")


def convnext_tiny(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 10,
    weights: str | os.PathLike | None = None,
    frozen: bool = False,
    imagenet_normalization: bool = False,
):
    """`keras.applications.ConvNeXtTiny` with its 1000-way head, then Dense(num_classes).

    As in the paper's code, the backbone keeps its ImageNet classifier (1000 logits, no
    softmax) and the new head reads those logits. Keras's ConvNeXt normally starts with its own
    ImageNet mean/std normalisation, which expects [0, 255] inputs. The paper fed torchvision's
    ConvNeXt the raw [0, 1] images with no normalisation, so by default the backbone is built
    without that layer (`include_preprocessing=False`) and sees the [0, 1] images as they are.
    `imagenet_normalization=True` instead multiplies by 255 and keeps Keras's normalisation,
    the inputs the ImageNet weights were trained on (not the paper's setup).

    Args:
        input_shape: (height, width, channels) of the [0, 1] input images. ImageNet weights
            with the 1000-way head need (224, 224, 3).
        num_classes: number of logits of the new head.
        weights: None (random init), "imagenet" (downloaded by Keras from
            storage.googleapis.com and cached in ~/.keras/models), or the path of the Keras
            ConvNeXt-Tiny weights file (`convnext_tiny.h5`, the file Keras downloads).
        frozen: make the backbone non-trainable and run it in inference mode, so only the new
            head trains: with weights="imagenet", the paper's linear probe.
        imagenet_normalization: see above; False is the paper's setup.

    Returns:
        An uncompiled functional `keras.Model` named "convnext_tiny_classifier" that outputs
        logits.

    Raises:
        RuntimeError: when the ImageNet weights cannot be downloaded; the message suggests
            weights=None or a local file.

    Example:
        >>> probe = convnext_tiny(weights="imagenet", frozen=True)
    """
    _check_shape_and_classes(input_shape, num_classes)
    if weights is not None and not (isinstance(weights, str) and weights == "imagenet"):
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise ValueError(
                f"`weights` must be None, 'imagenet' or the path of a Keras weights file, "
                f"received {weights!r}, which is not a file"
            )
    try:
        backbone = keras.applications.ConvNeXtTiny(
            include_top=True,
            include_preprocessing=imagenet_normalization,
            weights=weights,
            input_shape=tuple(input_shape),
            classifier_activation=None,
        )
    except (ValueError, TypeError):
        raise  # argument errors (e.g. a shape the ImageNet head cannot take) speak for themselves
    except Exception as error:  # keras.utils.get_file raises a bare Exception when offline
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"Could not download the ConvNeXt-Tiny ImageNet weights ({error}); without network "
            f"pass weights=None, or weights='/path/to/convnext_tiny.h5' (a copy of "
            f"{_CONVNEXT_WEIGHTS_URL})"
        ) from error
    return _with_head(backbone, input_shape, num_classes, frozen, "convnext_tiny_classifier",
                      scale=255.0 if imagenet_normalization else None)


TORCHVISION_RESNET18_URL = (
    # timm's copy of torchvision's ResNet18_Weights.IMAGENET1K_V1 (same tensors, same names),
    # as safetensors, which numpy reads without PyTorch.
    "https://huggingface.co/timm/resnet18.tv_in1k/resolve/main/model.safetensors"
)
_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a .safetensors file (e.g. a PyTorch state dict) into numpy arrays.

    The format: an 8-byte little-endian header length, a JSON header giving each tensor's
    dtype, shape and byte range, then the raw little-endian data.
    """
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(length))
        data = handle.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _SAFETENSORS_DTYPES:
            raise ValueError(
                f"`path`: tensor {name!r} has dtype {info['dtype']}, expected one of "
                f"{sorted(_SAFETENSORS_DTYPES)}"
            )
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], _SAFETENSORS_DTYPES[info["dtype"]])
        tensors[name] = array.reshape(info["shape"])
    return tensors


def load_torch_state(model: keras.Model, state: Mapping[str, np.ndarray], prefix: str = "") -> None:
    """Copy a PyTorch state dict (numpy arrays) into a model of this module, by layer name.

    Keras layer names here are PyTorch's parameter prefixes: torchvision's in the ResNet-18
    backbone ("layer1.0.conv1", "fc"), the authors' module names elsewhere. A nested model
    adds its own name, so `resnet18(...)` takes "resnet18.conv1.weight", ...,
    "classifier.weight" (the layout of `examples/train_torch.py`), and its backbone alone takes
    torchvision's own names. Conv kernels (out, in, kh, kw) become (kh, kw, in, out), Linear
    weights are transposed, BatchNorm takes weight/bias/running_mean/running_var.

    Args:
        model: a model of this module, or a nested part such as
            `resnet18(...).get_layer("resnet18")` (any input size).
        state: parameter name -> array, e.g. `read_safetensors(path)` or a `torch` state dict
            turned into numpy; extra entries such as `num_batches_tracked` are ignored.
        prefix: prepended to every name (used for nested models).

    Raises:
        ValueError: a parameter is missing from `state` or has the wrong shape.

    Example:
        >>> backbone = resnet18((224, 224, 3)).get_layer("resnet18")
        >>> load_torch_state(backbone, read_safetensors("model.safetensors"))  # torchvision's
        >>> backbone.save_weights("resnet18_imagenet.weights.h5")  # for resnet18(weights=...)
    """
    for layer in model.layers:
        name = prefix + layer.name
        if isinstance(layer, keras.Model):
            load_torch_state(layer, state, f"{name}.")
            continue
        if isinstance(layer, keras.layers.Conv2D):
            keys = ("weight", "bias") if layer.use_bias else ("weight",)
        elif isinstance(layer, keras.layers.Dense):
            keys = ("weight", "bias")
        elif isinstance(layer, keras.layers.BatchNormalization):
            keys = ("weight", "bias", "running_mean", "running_var")
        else:
            continue
        missing = [f"{name}.{key}" for key in keys if f"{name}.{key}" not in state]
        if missing:
            raise ValueError(f"`state` has no {missing}: is it a state dict of this model?")
        values = [np.asarray(state[f"{name}.{key}"]) for key in keys]
        if isinstance(layer, keras.layers.Conv2D):
            values[0] = np.transpose(values[0], (2, 3, 1, 0))
        elif isinstance(layer, keras.layers.Dense):
            values[0] = values[0].T
        for variable, value in zip(layer.weights, values):
            if tuple(variable.shape) != value.shape:
                raise ValueError(
                    f"`state`: {name} needs shape {tuple(variable.shape)}, received "
                    f"{value.shape}: is it a state dict of this model?"
                )
        layer.set_weights(values)


def _with_head(backbone, input_shape, num_classes, frozen, name, scale=None):
    """inputs [0, 1] -> (optional scaling) -> backbone (1000 logits) -> Dense(num_classes)."""
    inputs = keras.Input(input_shape, name="images")
    x = inputs if scale is None else keras.layers.Rescaling(scale, name="to_0_255")(inputs)
    if frozen:
        backbone.trainable = False
    # A frozen backbone always runs in inference mode (BatchNorm statistics fixed, no stochastic
    # depth); otherwise Keras passes the training flag through.
    x = backbone(x, training=False) if frozen else backbone(x)
    outputs = keras.layers.Dense(num_classes, name="classifier", **_torch_init(1000))(x)
    return keras.Model(inputs, outputs, name=name)


def _resnet18_backbone(input_shape):
    """torchvision.models.resnet18 up to its 1000 logits, as a functional Keras model."""
    inputs = keras.Input(input_shape, name="images")
    x = _conv(inputs, 64, 7, 2, None, "conv1", padding=3)
    x = _bn_relu(x, "bn1")
    x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(x)  # zeros == -inf after the ReLU
    x = keras.layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    channels_in = 64
    for stage, channels in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            x = _basic_block(x, channels_in, channels, stride, f"layer{stage}.{block}")
            channels_in = channels
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = keras.layers.Dense(1000, name="fc", **_torch_init(512))(x)
    return keras.Model(inputs, outputs, name="resnet18")


def _basic_block(x, channels_in, channels, stride, name):
    shortcut = x
    y = _conv(x, channels, 3, stride, None, f"{name}.conv1")
    y = _bn_relu(y, f"{name}.bn1")
    y = _conv(y, channels, 3, 1, None, f"{name}.conv2")
    y = _bn(y, f"{name}.bn2")
    if stride != 1 or channels_in != channels:
        # 1x1, stride 2, no padding: samples pixels 0, 2, 4, ... exactly like PyTorch.
        shortcut = _conv(x, channels, 1, stride, None, f"{name}.downsample.0", padding=0)
        shortcut = _bn(shortcut, f"{name}.downsample.1")
    y = keras.layers.Add(name=f"{name}.add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}.relu")(y)


def _conv(x, channels, kernel, stride, channels_in, name, padding=None, activation=None,
          bias=False):
    """Conv2d with PyTorch's symmetric padding (default kernel // 2).

    `bias=True` gives PyTorch's default Conv2d init (`channels_in` sets its fan-in); bias-free
    convs (ResNet) get torchvision's kaiming_normal(fan_out, relu).
    """
    padding = kernel // 2 if padding is None else padding
    if padding and stride == 1:
        pad_mode = "same"  # symmetric for odd kernels at stride 1: identical to PyTorch
    else:
        pad_mode = "valid"
        if padding:
            x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    if bias:
        init = _torch_init(channels_in * kernel * kernel)
    else:
        init = {
            "use_bias": False,
            "kernel_initializer": keras.initializers.VarianceScaling(
                2.0, mode="fan_out", distribution="untruncated_normal"
            ),
        }
    return keras.layers.Conv2D(channels, kernel, strides=stride, padding=pad_mode,
                               activation=activation, name=name, **init)(x)


def _bn(x, name):
    # PyTorch BatchNorm2d: eps 1e-5, running stats updated with weight 0.1 (Keras 0.9 keeps).
    return keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name)(x)


def _bn_relu(x, name):
    return keras.layers.ReLU(name=f"{name}_relu")(_bn(x, name))


def _torch_init(fan_in: int) -> dict:
    """PyTorch's default Conv2d/Linear init: weights and biases U(-1/sqrt(fan_in), +)."""
    bound = 1.0 / math.sqrt(fan_in)
    return {
        # kaiming_uniform(a=sqrt(5)) has limit sqrt(6 / ((1 + 5) fan_in)) = 1 / sqrt(fan_in).
        "kernel_initializer": keras.initializers.VarianceScaling(
            1.0 / 3.0, mode="fan_in", distribution="uniform"
        ),
        "bias_initializer": keras.initializers.RandomUniform(-bound, bound),
    }


def _check_shape_and_classes(input_shape: Any, num_classes: Any) -> None:
    """(height, width, channels) positive integers, the size the model is built for."""
    shape = _checks.image_shape(input_shape, "input_shape")
    if None in shape:
        raise ValueError(
            f"`input_shape` must give the height and width the model is built for, "
            f"received {input_shape!r}"
        )
    _checks.positive_int("num_classes", num_classes)
