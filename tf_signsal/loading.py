"""Load the user's own classifier from disk as a Keras model the package explains.

`load_model(path)` takes a `.keras` file, a legacy `.h5` file, or a SavedModel directory
(written by `keras.Model.export`, `tf.saved_model.save` or `tf-signsal export`, the
format TF Serving serves) and returns a Keras model of one float image input and one
(batch, classes) output, so that `SignedSaliency`, `class_gradients`, the evaluator and
`serving.export` accept it as they accept a model built in Python.

Security: TensorFlow's guidance is that a SavedModel is a program. Loading one runs the
graph it holds, so a SavedModel from an untrusted source can run any code it carries;
load only SavedModels you trust. `.keras` and `.h5` files are loaded with
`safe_mode=True` by default, which refuses to deserialize the Python code (`Lambda`
layers) that such a file may hold.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_signsal import _checks, _model
from tf_signsal.vocabulary import MODEL_OUTPUTS as OUTPUTS

_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
EXPECTED = "a .keras file, an .h5 file, or a SavedModel directory (holding saved_model.pb)"
"""What `load_model` reads, as its messages (and the command line's) say it."""
# Height and width of the probe images for a SavedModel whose input size is dynamic.
_PROBE_SIDE = 64
# The explanation of why probabilities are not logits, shared by the error and the warning.
_LOG_SOFTMAX = (
    "a softmax inside a SavedModel cannot be stripped, so its logits cannot be reached. "
    "The log of the probabilities is the logits minus one term shared by every class "
    "(log-sum-exp), whose gradient is added to every class's gradient alike: the active and "
    "inactive maps, which compare the classes, are unchanged; the standard, positive and "
    "negative maps are of log-probabilities, not logits"
)


def load_model(
    path: str | os.PathLike,
    *,
    signature: str = "serving_default",
    output: str | None = None,
    custom_objects: dict[str, Any] | None = None,
    safe_mode: bool = True,
    outputs: str = "logits",
) -> keras.Model:
    """Load a classifier saved as a `.keras` file, an `.h5` file or a SavedModel directory.

    A `.keras` or `.h5` file is loaded with `keras.saving.load_model` (uncompiled); a
    softmax last layer is stripped later by the package, as for any Keras model. A
    SavedModel directory is loaded with `tf.saved_model.load`, and the chosen signature's
    one image input and one output are wrapped in a Keras model (a `keras.Input` of the
    signature's shape and a layer calling the signature), through which gradients flow.

    Security: TensorFlow's security guidance says that a SavedModel is a program: loading
    one runs the graph it holds, so a SavedModel from an untrusted source can run any code
    it carries. Load only SavedModels you trust; `safe_mode` does not apply to them.
    `.keras` and `.h5` files stay loaded with `safe_mode=True` unless you pass False,
    which allows the Python code of `Lambda` layers to be deserialized (and run): only for
    files you trust.

    Pixel range: a Keras file's first layers show the range the model expects (a
    `Rescaling(1/255)` takes [0, 255]; `SignedSaliency` and the evaluator warn when their
    `value_range` contradicts it), but a SavedModel's graph shows no layers: pass the
    `value_range` the model was exported for (for a keras.applications EfficientNet or
    ConvNeXt, (0, 255)).
    Loaded from a SavedModel, the model has no Keras weights: the randomisation sanity
    check refuses it (run it on the Keras model it was exported from).

    A SavedModel's output that is probabilities (a softmax inside the graph, detected by
    the output's name or by outputs that are non-negative and sum to 1 on probe images)
    cannot have its softmax stripped, and is refused with `outputs="logits"`. With
    `outputs="log_probabilities"`, the model returns the log of the probabilities, with a
    warning: the log-softmax shifts every class's gradient by the same term, so the
    active and inactive maps are those of the logits, while the standard, positive and
    negative maps are of log-probabilities. A probability that underflows to 0 has no
    finite log: export the model's logits instead where you can.

    Args:
        path: a `.keras` file, a `.h5`/`.hdf5` file, or a SavedModel directory.
        signature: the SavedModel signature to explain (SavedModel only), e.g.
            "serving_default" (`model.export`, `tf.saved_model.save`, `tf-signsal export`)
            or "serve".
        output: the signature's output to explain; None takes its only output (SavedModel
            only), e.g. "logits" for the `explain` signature of `tf-signsal export`.
        custom_objects: names of custom layers, functions, etc. for a `.keras`/`.h5` file,
            as in `keras.saving.load_model`.
        safe_mode: refuse the Python code (`Lambda` layers) a `.keras`/`.h5` file may hold.
        outputs: "logits" (the model's output is logits, or a Keras softmax that the
            package strips) or "log_probabilities" (the output is probabilities: explain
            their log, see above).

    Returns:
        A Keras model of one float image input (batch, height, width, channels) and one
        (batch, classes) output.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is not one of the formats above (by its name, or by its
            content: a `.keras` file that is no zip archive, an `.h5` file without the
            HDF5 signature); the signature or output is unknown (the available ones are
            listed), takes several inputs or non-image inputs, or returns something else
            than (batch, classes), and so does a Keras file's model; the output is
            probabilities and `outputs="logits"`, or is not and `outputs="log_probabilities"`.

    Example:
        >>> model = tf_signsal.load_model("models/classifier/1")     # a SavedModel
        >>> explanation = tf_signsal.SignedSaliency(model).explain(images)
        >>> model = tf_signsal.load_model("classifier.keras")
    """
    outputs = _checks.one_of("outputs", outputs, OUTPUTS)
    safe_mode = _checks.boolean("safe_mode", safe_mode)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a path ({EXPECTED}), received {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"`path` {path} does not exist: expected {EXPECTED}")
    if os.path.isdir(path):
        if custom_objects is not None:
            raise ValueError(
                f"`custom_objects` applies to .keras and .h5 files; `path` {path} is a "
                "SavedModel directory, whose graph needs no Python objects: do not pass "
                "`custom_objects`"
            )
        model, probabilities = _saved_model(path, signature, output)
    else:
        _check_keras_file(path, signature, output)
        model = keras.saving.load_model(
            path, custom_objects=custom_objects, compile=False, safe_mode=safe_mode
        )
        _check_classifier(model, path)
        # The package strips a softmax it can find in a Keras model: only an explicit
        # request for log-probabilities needs the probe.
        probabilities = outputs == "log_probabilities" and _looks_like_probabilities(model)
    if outputs == "logits":
        if probabilities:
            raise ValueError(
                f"the output of `path` {path} is probabilities, not logits: {_LOG_SOFTMAX}. "
                "Export the model without its softmax (e.g. keras.applications models with "
                "classifier_activation=None), or pass outputs='log_probabilities'"
            )
        return model
    if not probabilities:
        raise ValueError(
            f"`outputs` is 'log_probabilities', but the output of `path` {path} is not "
            "probabilities (it has negative values or rows that do not sum to 1): pass "
            "outputs='logits'"
        )
    warnings.warn(f"tf_signsal: explaining the log of the probabilities of {path}: "
                  f"{_LOG_SOFTMAX}.", stacklevel=2)
    return keras.Model(model.inputs[0], _Log(name="log_probabilities")(model.outputs[0]))


def _check_keras_file(path: str, signature: str, output: str | None) -> None:
    if os.path.basename(path) in ("saved_model.pb", "saved_model.pbtxt"):
        raise ValueError(
            f"`path` {path} is the graph file of a SavedModel: pass its directory, "
            f"{os.path.dirname(path) or '.'}"
        )
    if not path.lower().endswith(_KERAS_SUFFIXES):
        raise ValueError(f"`path` {path} is not {EXPECTED}")
    for name, value, default in (("signature", signature, "serving_default"),
                                 ("output", output, None)):
        if value != default:
            raise ValueError(
                f"`{name}` applies to SavedModel directories; `path` {path} is a Keras file: "
                f"do not pass `{name}` (received {value!r})"
            )
    # What the suffix promises, checked before Keras reads the file (whose errors on a
    # foreign file are of many kinds and say little); a FIFO would block the reading.
    if not os.path.isfile(path):
        raise ValueError(f"`path` {path} is not a regular file: expected {EXPECTED}")
    if path.lower().endswith(".keras") and not zipfile.is_zipfile(path):
        raise ValueError(f"`path` {path} is not a .keras file (a .keras file is a zip archive; "
                         "this one is not)")
    if path.lower().endswith((".h5", ".hdf5")):
        with open(path, "rb") as file:
            if file.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
                raise ValueError(f"`path` {path} is not an HDF5 file (no HDF5 signature)")


def _check_classifier(model: keras.Model, path: str) -> None:
    """Refuse a Keras model that declares an input other than one image batch, or an
    output other than one (batch, classes)."""
    try:
        _checks.model_image_shape(model)
    except ValueError as error:
        raise ValueError(f"`path` {path} is not an image classifier: {error}") from None
    outputs = getattr(model, "outputs", None)
    if outputs and (len(outputs) != 1 or len(outputs[0].shape) != 2):
        shapes = ", ".join(str(tuple(o.shape)) for o in outputs)
        raise ValueError(
            f"`path` {path} is not a classifier: its output must be (batch, classes), it is "
            f"{shapes}"
        )


# ----------------------------------------------------------------------------- SavedModel


class _Signature(_model.SavedModelLayer):
    """One SavedModel signature as a Keras layer: a batch of images in, one output out.

    The SavedModel's variables stay inside its graph: the layer has no Keras weights, so
    what changes Keras weights in place (training, the randomisation sanity check) cannot
    reach them.
    """

    def __init__(self, loaded: Any, signature: str, input_dtype: tf.DType, output: str,
                 num_classes: int, **kwargs: Any):
        super().__init__(trainable=False, **kwargs)
        self._loaded = loaded  # keeps the restored variables alive as long as the layer
        self._function = loaded.signatures[signature]
        self._input_dtype = input_dtype
        self._output = output
        self._num_classes = num_classes

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        # A signature of one input takes it positionally, whatever its name.
        outputs = self._function(tf.cast(inputs, self._input_dtype))
        return tf.cast(outputs[self._output], tf.float32)

    def compute_output_spec(self, inputs: Any) -> keras.KerasTensor:
        return keras.KerasTensor((inputs.shape[0], self._num_classes), "float32")


class _Log(keras.layers.Layer):
    """The natural log of its input: log-probabilities from probabilities."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return keras.ops.log(inputs)


def _names(names: Any) -> str:
    return ", ".join(repr(name) for name in sorted(names)) or "none"


def _saved_model(path: str, signature: str, output: str | None) -> tuple[keras.Model, bool]:
    """(the Keras model of one signature's output, whether that output is probabilities)."""
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"`path` {path} is a directory without saved_model.pb: expected "
                         f"{EXPECTED}")
    if not isinstance(signature, str):
        raise TypeError(f"`signature` must be a signature name, received {signature!r}")
    loaded = tf.saved_model.load(path)
    if signature not in loaded.signatures:
        raise ValueError(
            f"`signature` {signature!r} is not a signature of the SavedModel {path}; its "
            f"signatures: {_names(loaded.signatures)}"
        )
    function = loaded.signatures[signature]
    args, kwargs = function.structured_input_signature
    specs = {**{f"#{i}": spec for i, spec in enumerate(args)}, **kwargs}
    if len(specs) != 1:
        raise ValueError(
            f"signature {signature!r} of {path} takes {len(specs)} inputs ({_names(specs)}): "
            "the package explains a model of one image input; pick another `signature` or "
            "export one that takes only the images"
        )
    (input_name, spec), = specs.items()
    if spec.shape.rank != 4 or not spec.dtype.is_floating:
        raise ValueError(
            f"signature {signature!r} of {path} takes input {input_name!r} of shape "
            f"{_shape(spec.shape)} and type {spec.dtype.name}: the package explains float "
            "images of shape (batch, height, width, channels); export a signature that takes "
            "float images (any decoding or integer casting before it)"
        )
    specs = function.structured_outputs
    if output is None:
        if len(specs) != 1:
            raise ValueError(
                f"signature {signature!r} of {path} has {len(specs)} outputs: pass `output`, "
                f"one of {_names(specs)}"
            )
        output = next(iter(specs))
    elif output not in specs:
        raise ValueError(
            f"`output` {output!r} is not an output of signature {signature!r} of {path}; "
            f"its outputs: {_names(specs)}"
        )
    out = specs[output]
    if out.shape.rank != 2 or out.shape[-1] is None or not out.dtype.is_floating:
        raise ValueError(
            f"output {output!r} of signature {signature!r} of {path} has shape "
            f"{_shape(out.shape)} and type {out.dtype.name}: the package explains float "
            "scores of shape (batch, classes)"
        )
    inputs = keras.Input(tuple(spec.shape[1:]), dtype="float32", name="images")
    layer = _Signature(loaded, signature, spec.dtype, output, int(out.shape[-1]),
                       name=f"saved_model_{signature}")
    model = keras.Model(inputs, layer(inputs), name=os.path.basename(os.path.normpath(path)))
    named = any(word in output.lower() for word in ("prob", "softmax"))
    return model, named or _looks_like_probabilities(model)


def _shape(shape: tf.TensorShape) -> str:
    return str(tuple(shape.as_list())) if shape.rank is not None else "unknown"


def _looks_like_probabilities(model: keras.Model) -> bool:
    """Whether the model's outputs on a black and a random probe image are all
    non-negative and sum to 1, as a softmax's are."""
    shape = _checks.model_image_shape(model)
    if shape is None:
        return False
    size = tuple(_PROBE_SIDE if d is None else d for d in shape)
    probes = np.stack([np.zeros(size, np.float32),
                       np.random.default_rng(0).random(size, dtype=np.float32)])
    if _checks.channels_first(model):  # model_image_shape is channels last, as explained
        probes = np.transpose(probes, (0, 3, 1, 2))
    scores = keras.ops.convert_to_numpy(model(probes, training=False)).astype(np.float64)
    return (scores.ndim == 2 and scores.shape[-1] > 1 and bool((scores >= 0).all())
            and np.allclose(scores.sum(-1), 1, atol=1e-4))
