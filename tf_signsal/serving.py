"""A SavedModel that serves a classifier and its sign-aware maps, for TF Serving.

`export(model, path)` writes the artifact `keras.Model.export` would write
(its `serving_default` signature is unchanged, so existing clients see no
difference) plus an `explain` signature: images in, the logits, the predicted
classes and the five normalised maps out. The maps are traced from
`SignedSaliency.explain_step`, so they are the in-process maps; the artifact
needs only TensorFlow to load and run, not tf_signsal.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import tensorflow as tf

from tf_signsal import _checks, _io
from tf_signsal.attributions import Attribution
from tf_signsal.maps import METHODS, SignedSaliency

EXPLAIN_SIGNATURE = "explain"

# The package's output-folder policy (`tf_signsal._io`) for a folder that is replaced
# whole: `export` replaces a folder holding only what it writes (a SavedModel, and its
# manifest, which marks the folder as the package's), so that it never deletes a file of
# the user's. A SavedModel without the manifest (an older export, `keras.Model.export`) is
# replaced too.
_MANIFEST = _io.manifest_name("export")
_SAVED_MODEL_FILES = frozenset({"saved_model.pb", "fingerprint.pb", _MANIFEST})
_SAVED_MODEL_FOLDERS = frozenset({"variables", "assets"})
_EXPECTED = (
    "a SavedModel folder (saved_model.pb and optionally variables/, assets/, "
    "fingerprint.pb, nothing else), an empty folder, or a path that does not exist"
)
# Height and width of the probe batch that counts the classes of a model whose input
# height and width are dynamic (None).
_PROBE_SIZE = 64


# ----------------------------------------------------------------------------- the path


def _saved_model_problem(path: str) -> str | None:
    """None when `path` is an empty folder or a SavedModel folder that `export` wrote
    or could have written; otherwise what stands in the way, in words."""
    entries = sorted(os.listdir(path))
    unexpected = [
        name
        for name in entries
        if not (
            (name in _SAVED_MODEL_FILES and os.path.isfile(os.path.join(path, name)))
            or (name in _SAVED_MODEL_FOLDERS and os.path.isdir(os.path.join(path, name)))
        )
        or os.path.islink(os.path.join(path, name))
    ]
    if unexpected:
        more = len(unexpected) - 5
        shown = ", ".join(unexpected[:5]) + (f" and {more} more" if more > 0 else "")
        return f"a folder holding {shown}, which is not part of a SavedModel"
    if entries and "saved_model.pb" not in entries:
        return f"a folder holding {', '.join(entries)} but no saved_model.pb"
    variables = os.path.join(path, "variables")
    if os.path.isdir(variables):
        foreign = sorted(
            name
            for name in os.listdir(variables)
            if not (name == "variables.index" or name.startswith("variables.data-"))
            or not os.path.isfile(os.path.join(variables, name))
        )
        if foreign:
            return f"a SavedModel folder whose variables/ also holds {', '.join(foreign[:5])}"
    return None


def _check_path(path: str, overwrite: bool, protect: Iterable[str | os.PathLike]) -> None:
    """Refuse a `path` whose replacement could lose a file of the user's."""
    real = os.path.realpath(path)
    current = os.path.realpath(os.getcwd())
    if _io.is_within(current, real):
        where = "the current directory" if real == current else "a parent of the current directory"
        raise ValueError(
            f"`path` {path} is {where}: `export` writes a SavedModel folder in its place; "
            "pass a new folder, e.g. models/signsal/1"
        )
    for kept in protect:
        kept = os.path.realpath(os.fspath(kept))
        if _io.is_within(kept, real):
            raise ValueError(
                f"`path` {path} holds {kept}, the model being exported: pass a new folder for "
                "the SavedModel, e.g. models/signsal/1"
            )
    if not os.path.lexists(path):
        _io.check_output_path(path, "`path`")  # its parents: a file, a link, not writable
        return
    if os.path.islink(path):
        raise FileExistsError(
            f"`path` {path} is a symbolic link (to {os.readlink(path)}): `export` replaces "
            f"only {_EXPECTED}"
        )
    if not os.path.isdir(path):
        kind = "a file" if os.path.isfile(path) else "not a folder"
        raise FileExistsError(
            f"`path` {path} is {kind}: `export` replaces only {_EXPECTED}; remove it or pass "
            "another path"
        )
    problem = _saved_model_problem(path)
    if problem is not None:
        raise FileExistsError(
            f"`path` {path} is {problem}: `export` replaces only {_EXPECTED}. For TF Serving, "
            "`path` is a version folder, e.g. models/signsal/1, not models/signsal"
        )
    if not overwrite:
        what = "a SavedModel" if os.listdir(path) else "an empty folder"
        raise FileExistsError(
            f"`path` {path} already exists ({what}); pass overwrite=True to replace it"
        )


def _replace(staging: str, path: str, overwrite: bool, protect: Iterable[str]) -> None:
    """Rename the written `staging` folder onto `path`, replacing what the checks allow."""
    _check_path(path, overwrite, protect)  # again: the folder may have changed meanwhile
    if not os.path.lexists(path):
        os.replace(staging, path)
        return
    retired = staging + "-old"
    os.replace(path, retired)
    try:
        os.replace(staging, path)
    except BaseException:
        os.replace(retired, path)
        raise
    shutil.rmtree(retired, ignore_errors=True)


# ----------------------------------------------------------------------------- the model


def _image_shape(model: Any, image_shape: Sequence[int | None] | None) -> tuple:
    declared = _checks.model_image_shape(model)
    if image_shape is not None:
        shape = _checks.image_shape(image_shape)
        if declared is not None and any(
            d is not None and d != s for d, s in zip(declared, shape)
        ):
            raise ValueError(
                f"`image_shape` {shape} does not match the model's input {declared}: pass "
                "image_shape=None to take the model's, or a shape it accepts"
            )
        return shape
    shape = declared
    if shape is None:
        raise ValueError(
            "`model` declares no input shape (a subclassed model?): pass `image_shape`, "
            "e.g. image_shape=(32, 32, 3)"
        )
    return shape


def _num_classes(saliency: SignedSaliency, shape: tuple) -> int:
    """The class count of the model, refusing a model with a single output."""
    probe = tuple(_PROBE_SIZE if d is None else d for d in shape)
    # Eagerly checks that `model` is a (batch, classes) classifier whose output depends
    # on its input, with a clear error before any tracing.
    num_classes = saliency.num_classes(tf.zeros((1, *probe), tf.float32))
    _checks.several_classes(
        num_classes,
        "the active and inactive maps of the `explain` signature compare the explained "
        "class with every other class and would be meaningless",
    )
    return num_classes


def _explain_function(saliency: SignedSaliency, shape: tuple, num_classes: int):
    expected = tf.TensorShape((None, *shape))

    def explain(images: tf.Tensor) -> dict[str, tf.Tensor]:
        # A served signature does not check the shape of what it is fed (a tensor of the
        # wrong rank aborts the whole server in a convolution), so check it here: the
        # caller gets "Shape of tensor images [...] is not compatible with expected
        # shape [?,H,W,ch]", and the signature still lists (-1, H, W, ch).
        images = tf.ensure_shape(images, expected)
        images = tf.debugging.assert_all_finite(
            images, "explain: images contain NaN or Inf pixels; every pixel must be finite"
        )

        def explained() -> dict[str, tf.Tensor]:
            explanation = saliency.explain_step(images)  # predicted classes
            return {**explanation, "logits": explanation.logits,
                    "predictions": explanation.targets}

        def empty() -> dict[str, tf.Tensor]:  # as `SignedSaliency.explain` of no images
            size = tf.shape(images)[1:3]
            maps = tf.zeros(tf.concat([[0], size], axis=0), tf.float32)
            return {
                **{method: maps for method in METHODS},
                "logits": tf.zeros((0, num_classes), tf.float32),
                "predictions": tf.zeros((0,), tf.int32),
            }

        return tf.cond(tf.shape(images)[0] > 0, explained, empty)

    return explain


def export(
    model: Any,
    path: str | os.PathLike,
    image_shape: Sequence[int | None] | None = None,
    jacobian: str = "auto",
    classes_per_chunk: int = 16,
    overwrite: bool = False,
    protect: Iterable[str | os.PathLike] = (),
    attribution: str | Attribution = "gradient",
    value_range: tuple[float, float] = (0.0, 1.0),
    precision: str = "float32",
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
            As `SignedSaliency.explain` does, it refuses images with NaN or
            Inf pixels and images of another shape than (batch, H, W,
            channels) (an `InvalidArgumentError` naming the problem); an
            empty batch gives empty outputs.

    The directory is written next to `path` under a temporary name and renamed
    into place, so `path` never holds a half-written model, and nothing is
    left behind when the export fails. Its folders and files get the
    permissions the umask gives (e.g. 0755 and 0644), so a server running as
    another user can read them. For TF Serving, `path` is a version folder,
    e.g. `models/signsal/1`.

    `export` never replaces anything but a SavedModel: before any work it
    refuses (`FileExistsError`) a `path` that is a file, a symbolic link, or a
    folder holding anything else than `saved_model.pb`, `variables/`,
    `assets/`, `fingerprint.pb` and the `.tf-signsal-export.json` manifest it writes
    there, the package's mark on its output folders (e.g. `models/signsal` instead of
    `models/signsal/1`), even with `overwrite=True`; and (`ValueError`) the
    current directory or one of its parents, or a folder holding a path of
    `protect`. It also refuses (`ValueError`) a model with a single output:
    the active and inactive maps need other classes to compare with.

    Args:
        model: a Keras classifier returning logits (batch, classes), with at
            least two classes; a softmax last layer is stripped for the maps
            (see `SignedSaliency`).
        path: the SavedModel directory to create.
        image_shape: (H, W, channels) of the inputs; taken from the model when
            it declares its input (required for a subclassed model). H and W
            may be None (any size).
        jacobian: "auto", "batch_jacobian" or "loop", as in `SignedSaliency`;
            "auto" picks for the machine exporting, so pass "batch_jacobian"
            when exporting on a CPU for a server with a GPU.
        classes_per_chunk: classes whose gradients are held at once.
        overwrite: replace an existing `path` that is a SavedModel or an empty
            folder; otherwise an existing `path` is an error.
        protect: paths that `path` must not hold, e.g. the file the model was
            loaded from (a loaded Keras model does not know it).
        attribution: what the served maps are of (see `SignedSaliency`):
            "gradient" (the paper), "gradient_x_input", "integrated_gradients",
            "smoothgrad" or a configured `tf_signsal.attributions` object.
        value_range: (low, high) of the model's input, for the attribution.
        precision: what the explain signature's passes compute in: "float32"
            (default), or "bfloat16" on a bfloat16 copy of the model (see
            `SignedSaliency`; for a server with bfloat16 hardware). serving_default
            stays the model's own; the manifest records the precision.

    Returns:
        The path written, as a string.

    Example:
        >>> tf_signsal.serving.export(model, "models/signsal/1")
        >>> explainer = tf.saved_model.load("models/signsal/1")   # plain TensorFlow
        >>> out = explainer.signatures["explain"](images=tf.constant(images))
        >>> out["positive"].shape                                 # (batch, H, W)
    """
    path = os.path.abspath(os.fspath(path))
    protect = tuple(os.fspath(p) for p in protect)
    _check_path(path, overwrite, protect)
    shape = _image_shape(model, image_shape)
    saliency = SignedSaliency(
        model, classes_per_chunk=classes_per_chunk, jacobian=jacobian,
        attribution=attribution, value_range=value_range, precision=precision,
    )
    num_classes = _num_classes(saliency, shape)
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
    archive.add_endpoint(
        EXPLAIN_SIGNATURE, _explain_function(saliency, shape, num_classes), input_signature=[spec]
    )

    # Not `tempfile.mkdtemp`: its folder is private (0700), which a server running as
    # another user cannot read; `os.mkdir` gives the umask's permissions.
    # Named as `tf_signsal._io` names a run being written, which the next run removes.
    staging = os.path.join(
        os.path.dirname(path),
        f".{os.path.basename(path)}.tf-signsal-export.incomplete-{uuid.uuid4().hex}",
    )
    created: list[str] = []
    try:
        _io.make_folders(os.path.dirname(path), created)
        os.mkdir(staging)
        archive.write_out(staging, verbose=False)
        _io.write_json(os.path.join(staging, _MANIFEST), {
            "command": "export", "files": sorted(os.listdir(staging)),
            "precision": saliency.precision,
        })
        _replace(staging, path, overwrite, protect)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _io.remove_empty(created)
        raise
    return path
