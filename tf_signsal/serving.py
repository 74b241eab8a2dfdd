"""A SavedModel that serves a classifier and its sign-aware maps, for TF Serving.

`export(model, path)` writes the artifact `keras.Model.export` would write
(its `serving_default` signature is unchanged, so existing clients see no
difference) plus an `explain` signature: images in, the logits, the predicted
classes and the five normalised maps out. The maps are traced from
`SignedSaliency.explain_batch`, so they are the in-process maps; the artifact
needs only TensorFlow to load and run, not tf_signsal.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tf_signsal import _checks
from tf_signsal.maps import SignedSaliency

EXPLAIN_SIGNATURE = "explain"


def _image_shape(model: Any, image_shape: Sequence[int | None] | None) -> tuple:
    if image_shape is not None:
        return _checks.image_shape(image_shape)
    shape = _checks.model_image_shape(model)
    if shape is None:
        raise ValueError(
            "`model` declares no input shape (a subclassed model?): pass `image_shape`, "
            "e.g. image_shape=(32, 32, 3)"
        )
    return shape


def _explain_function(saliency: SignedSaliency):
    def explain(images: tf.Tensor) -> dict[str, tf.Tensor]:
        maps, logits, predictions = saliency.explain_batch(images)  # the predicted classes
        return {**maps, "logits": logits, "predictions": predictions}

    return explain


def export(
    model: Any,
    path: str | os.PathLike,
    image_shape: Sequence[int | None] | None = None,
    jacobian: str = "auto",
    classes_per_chunk: int = 16,
    overwrite: bool = False,
) -> str:
    """Write a SavedModel with a `serving_default` and an `explain` signature.

    Signatures:
        serving_default (and `serve`): exactly `keras.Model.export`'s, the
            model's output for a batch of images.
        explain: input `images`, float32 (batch, H, W, channels); outputs
            `logits` (batch, classes) float32, `predictions` (batch,) int32,
            the explained (predicted) class, and `standard`, `positive`,
            `negative`, `active`, `inactive`: float32 (batch, H, W) maps in
            [0, 1], as `SignedSaliency(model).explain(images)` returns them.

    The directory is written next to `path` under a temporary name and renamed
    into place, so `path` never holds a half-written model. For TF Serving,
    `path` is a version folder, e.g. `models/signsal/1`.

    Args:
        model: a Keras classifier returning logits (batch, classes); a
            softmax last layer is stripped for the maps (see `SignedSaliency`).
        path: the SavedModel directory to create.
        image_shape: (H, W, channels) of the inputs; taken from the model when
            it declares its input (required for a subclassed model).
        jacobian: "auto", "batch_jacobian" or "loop", as in `GradientEngine`;
            "auto" picks for the machine exporting, so pass "batch_jacobian"
            when exporting on a CPU for a server with a GPU.
        classes_per_chunk: classes whose gradients are held at once.
        overwrite: replace an existing `path`; otherwise it is an error.

    Returns:
        The path written, as a string.

    Example:
        >>> tf_signsal.serving.export(model, "models/signsal/1")
        >>> explainer = tf.saved_model.load("models/signsal/1")   # plain TensorFlow
        >>> out = explainer.signatures["explain"](images=tf.constant(images))
        >>> out["positive"].shape                                 # (batch, H, W)
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"`path` {path} already exists; pass overwrite=True to replace it")
    shape = _image_shape(model, image_shape)
    saliency = SignedSaliency(model, classes_per_chunk=classes_per_chunk, jacobian=jacobian)
    if None not in shape:
        # Eagerly checks that `model` is a (batch, classes) classifier whose
        # output depends on its input, with a clear error before any tracing.
        saliency.num_classes(tf.zeros((1, *shape), tf.float32))
    spec = tf.TensorSpec((None, *shape), tf.float32, name="images")

    # The input named as `keras.Model.export` names it, so that serving_default
    # is the signature a plain Keras export would have.
    inputs = getattr(model, "inputs", None)
    serve_spec = keras.InputSpec(
        shape=(None, *shape),
        dtype=inputs[0].dtype if inputs else "float32",
        name=inputs[0].name if inputs else "images",
    )
    archive = keras.export.ExportArchive()
    archive.track_and_add_endpoint("serve", model, input_signature=[serve_spec])
    archive.add_endpoint(EXPLAIN_SIGNATURE, _explain_function(saliency), input_signature=[spec])

    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        archive.write_out(staging, verbose=False)
        if os.path.exists(path):
            retired = staging + "-old"
            os.replace(path, retired)
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path
