"""Plain, obviously-right reference implementations: Python loops over classes and
images in eager mode and numpy, with no chunking, no tf.function and no vectorisation."""

import keras
import numpy as np
import tensorflow as tf


def reference_class_gradients(model, images):
    """(B, C, H, W, ch): one tape.gradient call per image and per class."""
    images = np.asarray(images, np.float32)
    per_image = []
    for image in images:
        x = tf.constant(image[None])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            logits = model(x, training=False)[0]
            scores = [logits[c] for c in range(logits.shape[0])]
        per_image.append(np.stack([tape.gradient(s, x)[0].numpy() for s in scores]))
        del tape
    return np.stack(per_image)


def reference_attributions(model, images, attribution):
    """(B, C, H, W, ch) per-class attributions, one image, class and point at a time:
    the mean gradient over the attribution's points, times its scale."""
    images = np.asarray(images, np.float32)
    count = attribution.num_points
    points = np.asarray(attribution.points(tf.constant(images)))  # (S * B, H, W, ch)
    points = points.reshape(count, len(images), *images.shape[1:])
    gradients = np.mean([reference_class_gradients(model, p) for p in points], axis=0)
    scale = attribution.scale(tf.constant(images))
    return gradients if scale is None else gradients * np.asarray(scale)[:, None]


def reference_maps(model, images, targets=None, normalize=True, attributions=None):
    """The five maps of the spec, element by element, from the per-class gradients (or
    from the given per-class `attributions`, (B, C, H, W, ch))."""
    gradients = attributions
    if gradients is None:
        gradients = reference_class_gradients(model, images)
    logits = np.asarray(model(np.asarray(images, np.float32), training=False))
    if targets is None:
        targets = logits.argmax(axis=1)
    maps = {m: [] for m in ("standard", "positive", "negative", "active", "inactive")}
    for b, target in enumerate(targets):
        g = gradients[b, target]
        others = [gradients[b, c] for c in range(gradients.shape[1]) if c != target]
        active = np.ones_like(g, bool)
        inactive = np.ones_like(g, bool)
        for other in others:
            active &= g > other
            inactive &= g < other
        raw = {
            "standard": np.abs(g).max(axis=-1),
            "positive": np.maximum(g, 0).max(axis=-1),
            "negative": np.maximum(-g, 0).max(axis=-1),
            "active": np.abs(np.where(active, g, 0)).max(axis=-1),
            "inactive": np.abs(np.where(inactive, g, 0)).max(axis=-1),
        }
        for method, m in raw.items():
            if normalize:
                span = m.max() - m.min()
                m = (m - m.min()) / span if span > 0 else np.zeros_like(m)
            maps[method].append(m)
    return {method: np.stack(ms) for method, ms in maps.items()}


def torch_state_of(model, prefix=""):
    """`model`'s weights as a PyTorch state dict (names, layouts): what load_torch_state reads."""
    state = {}
    for layer in model.layers:
        name = prefix + layer.name
        weights = [w.numpy() for w in layer.weights]
        if isinstance(layer, keras.Model):
            state.update(torch_state_of(layer, f"{name}."))
        elif isinstance(layer, keras.layers.Conv2D):  # (kh, kw, in, out) -> (out, in, kh, kw)
            state[f"{name}.weight"] = weights[0].transpose(3, 2, 0, 1)
            if layer.use_bias:
                state[f"{name}.bias"] = weights[1]
        elif isinstance(layer, keras.layers.Dense):
            state[f"{name}.weight"], state[f"{name}.bias"] = weights[0].T, weights[1]
        elif isinstance(layer, keras.layers.BatchNormalization):
            for key, value in zip(("weight", "bias", "running_mean", "running_var"), weights):
                state[f"{name}.{key}"] = value
    return state
