"""The paper's training recipe (spec section 3.3) for any Keras classifier that outputs logits.

AdamW (lr 1e-3, weight decay 0.01, betas 0.9/0.999, eps 1e-8: PyTorch's defaults), cross-entropy
on logits, constant learning rate, no augmentation, seed 42, test accuracy after every epoch,
and the model of the final epoch is kept (no model selection). The batch size is the dataset's
(`data.load` batches by 128, the paper's).

One known difference from PyTorch's AdamW: Keras adds epsilon to sqrt(v) before the bias
correction, PyTorch after, so Keras's epsilon acts like PyTorch's times sqrt(1 - beta_2**t).
It only changes the step of weights whose gradients are below about 1e-6.

Example:

```python
import keras
from tf_signsal import data, models, training

train = data.load("cifar10", "train", data_dir="../shared/data", shuffle=True)
test = data.load("cifar10", "test", data_dir="../shared/data")
keras.utils.set_random_seed(42)  # before building: the initial weights depend on it
model = models.paper_cnn((32, 32, 3), 10)
history = training.fit_paper_recipe(model, train, epochs=50, test_ds=test, out_dir="runs/cnn")
```
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

import keras
import tensorflow as tf

from tf_signsal._checks import positive_int
from tf_signsal._io import save_atomic, write_atomic

RECIPE = {
    "optimizer": "AdamW",
    "learning_rate": 1e-3,
    "weight_decay": 0.01,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "epsilon": 1e-8,
    "loss": "sparse categorical cross-entropy on logits",
    "augmentation": None,
    "checkpoint": "final epoch",
}


def fit_paper_recipe(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    epochs: int,
    test_ds: tf.data.Dataset | None = None,
    seed: int = 42,
    out_dir: str | os.PathLike | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = 1,
) -> keras.callbacks.History:
    """Compile `model` with the paper's optimiser and loss, and train it for `epochs` epochs.

    Args:
        model: a Keras classifier that outputs logits (e.g. from `tf_signsal.models`). It is
            (re)compiled here.
        train_ds: batched (images, int labels) `tf.data.Dataset`, shuffled if wanted
            (`data.load(..., shuffle=True)`, as the paper's loader).
        epochs: number of epochs; the paper trains 50.
        test_ds: batched (images, labels) evaluated after every epoch (`val_loss`,
            `val_accuracy` in the history). Used for reporting only: the final epoch is kept.
        seed: passed to `keras.utils.set_random_seed` before training. Set it also before
            building the model when the initial weights must be reproducible.
        out_dir: if given, `history.json` (the per-epoch logs, epochs done and wall-clock
            `train_seconds` so far, test evaluation included) is written there after every epoch
            and `model.keras` (the trained model, without optimizer state) at the end, both
            atomically: a reader never sees a half-written file.
        callbacks: extra Keras callbacks (e.g. the saliency callbacks of `tf_signsal`).
        verbose: passed to `model.fit`.

    Returns:
        The `keras.callbacks.History` of the run.

    Example:
        >>> history = fit_paper_recipe(model, train, epochs=2, test_ds=test, out_dir="run")
        >>> history.history["val_accuracy"][-1]
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model, received {type(model).__name__}")
    epochs = positive_int("epochs", epochs)
    for name, ds in (("train_ds", train_ds), ("test_ds", test_ds)):
        if ds is None and name == "test_ds":
            continue
        if not isinstance(ds, tf.data.Dataset):
            raise TypeError(
                f"`{name}` must be a batched tf.data.Dataset of (images, labels), "
                f"received {type(ds).__name__}"
            )
    keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=RECIPE["learning_rate"],
            weight_decay=RECIPE["weight_decay"],
            beta_1=RECIPE["beta_1"],
            beta_2=RECIPE["beta_2"],
            epsilon=RECIPE["epsilon"],
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = list(callbacks)
    if out_dir is not None:
        out_dir = os.fspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        record = {
            "model": model.name,
            "recipe": {**RECIPE, "seed": seed, "epochs": epochs},
            "epochs_done": 0,
            "train_seconds": 0.0,
            "history": {},
        }
        started = time.perf_counter()

        def write_history(epoch, logs):
            # From `logs`: Keras's own History callback may run after this one.
            for key, value in (logs or {}).items():
                record["history"].setdefault(key, []).append(float(value))
            record["epochs_done"] = epoch + 1
            record["train_seconds"] = time.perf_counter() - started
            write_atomic(os.path.join(out_dir, "history.json"),
                         json.dumps(record, indent=2).encode())

        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=write_history))
    history = model.fit(
        train_ds,
        epochs=epochs,
        validation_data=test_ds,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # a tf.data.Dataset brings its own order (data.load(shuffle=True))
    )
    if out_dir is not None:
        save_atomic(os.path.join(out_dir, "model.keras"), _without_optimizer(model).save)
    return history


def _without_optimizer(model: keras.Model) -> keras.Model:
    """An uncompiled copy with the same weights, so that the saved file holds no optimizer
    state (a third of the size). A model that cannot be rebuilt from its config (a subclassed
    model without `get_config`) is returned as it is."""
    try:
        copy = model.__class__.from_config(model.get_config())
    except (NotImplementedError, TypeError, ValueError):
        return model
    copy.set_weights(model.get_weights())
    return copy
