"""The fills beyond constants (blur, mean, ROAD's noisy linear imputation) against plain
numpy / scipy references."""

import math

import numpy as np
import pytest
import scipy.ndimage
import scipy.sparse
import scipy.sparse.linalg
import tensorflow as tf

from tf_signsal.evaluation.fills import (
    Blur,
    Constant,
    Mean,
    Road,
    as_fill,
    blur_images,
    fill_values,
    gaussian_kernel,
    mean_images,
    parse_fill,
)
from tf_signsal.evaluation.road import (
    ROAD_NEIGHBOURS,
    SOLVERS,
    auto_solver,
    road_impute,
    road_occlude,
)

# ----------------------------------------------------------------------------- reference


def reference_road(image, mask):
    """ROAD's linear imputation, noise-free, written plainly: for each channel one sparse
    system, a row per deleted pixel i: sum_j w_ij x_i - sum_j w_ij x_j = 0 over the
    neighbours j inside the image, kept neighbours moved to the right-hand side; solved
    by scipy's spsolve. Every pixel deleted: the image's per-channel mean."""
    height, width, channels = image.shape
    out = image.astype(np.float64).copy()
    unknowns = [(i, j) for i in range(height) for j in range(width) if mask[i, j]]
    if not unknowns:
        return out
    if len(unknowns) == height * width:
        out[:] = image.astype(np.float64).mean(axis=(0, 1))
        return out
    index = {pixel: n for n, pixel in enumerate(unknowns)}
    for c in range(channels):
        system = scipy.sparse.lil_matrix((len(unknowns), len(unknowns)))
        rhs = np.zeros(len(unknowns))
        for n, (i, j) in enumerate(unknowns):
            for di, dj, weight in ROAD_NEIGHBOURS:
                y, x = i + di, j + dj
                if 0 <= y < height and 0 <= x < width:
                    system[n, n] += weight
                    if mask[y, x]:
                        system[n, index[(y, x)]] -= weight
                    else:
                        rhs[n] += weight * image[y, x, c]
        solution = scipy.sparse.linalg.spsolve(system.tocsc(), rhs)
        for n, (i, j) in enumerate(unknowns):
            out[i, j, c] = solution[n]
    return out


def example_masks(rng, height, width):
    """Random masks of several densities, a border frame, a blob, one deleted pixel,
    none, all but one pixel (in a corner, so the rest are far from it), and all pixels."""
    masks = [rng.random((height, width)) < p for p in (0.1, 0.3, 0.5, 0.7, 0.9, 0.97)]
    frame = np.zeros((height, width), bool)
    frame[[0, -1], :] = frame[:, [0, -1]] = True
    block = np.zeros((height, width), bool)
    block[1:, : width // 2 + 1] = True  # touches three borders
    blob = scipy.ndimage.gaussian_filter(rng.random((height, width)), 1.5)
    blob = blob > np.quantile(blob, 0.6)  # a smooth map's top 40%, as a saliency map's
    one = np.zeros((height, width), bool)
    one[height // 2, width // 2] = True
    almost = np.ones((height, width), bool)
    almost[-1, 0] = False
    return np.stack(
        masks + [frame, block, blob, one, np.zeros_like(frame), almost, np.ones_like(frame)]
    )


# ----------------------------------------------------------------------------- ROAD


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("shape", [(6, 7, 1), (8, 8, 3), (1, 9, 2), (9, 1, 3)])
def test_road_matches_scipy(rng, shape, solver):
    masks = example_masks(rng, *shape[:2])
    images = rng.random((len(masks), *shape), dtype=np.float32)
    imputed = road_impute(images, masks, noise_std=0.0, solver=solver).numpy()
    assert imputed.dtype == np.float32 and imputed.shape == images.shape
    for image, mask, result in zip(images, masks, imputed):
        np.testing.assert_allclose(result, reference_road(image, mask), rtol=0, atol=1e-4)
        np.testing.assert_array_equal(result[~mask], image[~mask])  # exactly
    # One kept pixel: its value everywhere; none: the image's per-channel mean.
    np.testing.assert_allclose(imputed[-2], np.broadcast_to(images[-2, -1, 0], shape), atol=1e-6)
    np.testing.assert_allclose(
        imputed[-1], np.broadcast_to(images[-1].mean(axis=(0, 1)), shape), atol=1e-6
    )


@pytest.mark.parametrize("solver", SOLVERS)
def test_road_ill_conditioned(rng, solver):
    """Large holes fed by a few far pixels: float32 CG alone was off by 2.5e-4 at 64x64."""
    size = 32
    masks = np.ones((3, size, size), bool)
    masks[0, 0, 0] = masks[0, -1, -1] = False  # two opposite corners
    masks[1, size // 2, size // 2] = masks[1, 0, 0] = False
    masks[2, :, 0] = False  # one kept column
    images = rng.random((3, size, size, 3), dtype=np.float32)
    imputed = road_impute(images, masks, noise_std=0.0, solver=solver).numpy()
    for image, mask, result in zip(images, masks, imputed):
        np.testing.assert_allclose(result, reference_road(image, mask), rtol=0, atol=1e-5)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
@pytest.mark.parametrize("scale", [1e-30, 1e-16, 1e20, 1e30])
def test_road_any_pixel_scale(rng, scale, solver):
    """float32 inner sums of squares underflow at 1e-16 and overflow at 1e20 unscaled."""
    masks = example_masks(rng, 8, 8)
    images = rng.random((len(masks), 8, 8, 3), dtype=np.float32)
    scaled = (images.astype(np.float64) * scale).astype(np.float32)
    imputed = road_impute(scaled, masks, noise_std=0.0, solver=solver).numpy().astype(np.float64)
    for image, mask, result in zip(scaled, masks, imputed):
        np.testing.assert_allclose(result / scale, reference_road(image, mask) / scale,
                                   rtol=0, atol=1e-4)


def test_road_noise(rng):
    images = rng.random((3, 32, 32, 3), dtype=np.float32)  # the shape above: no new compile
    masks = rng.random((3, 32, 32)) < 0.9
    clean = road_impute(images, masks, noise_std=0.0).numpy()
    noisy = road_impute(images, masks, noise_std=0.05, seed=3).numpy()
    np.testing.assert_array_equal(noisy[~masks], images[~masks])  # only deleted pixels
    noise = (noisy - clean)[masks]
    assert noise.size > 8000
    assert abs(noise.mean()) < 4 * 0.05 / math.sqrt(noise.size)
    assert noise.std() == pytest.approx(0.05, rel=0.04)
    assert np.abs(noise).max() < 5.5 * 0.05
    # Seeded: the same call gives the same noise, another seed another noise.
    np.testing.assert_array_equal(road_impute(images, masks, 0.05, seed=3).numpy(), noisy)
    other = road_impute(images, masks, 0.05, seed=4).numpy()
    correlation = np.corrcoef((noisy - clean)[masks].ravel(), (other - clean)[masks].ravel())
    assert abs(correlation[0, 1]) < 0.1
    # Another mask of the same image gives other noise on the pixels both delete.
    shifted_masks = np.roll(masks, 1, axis=2)
    shifted = road_impute(images, shifted_masks, 0.05, seed=3).numpy()
    shifted_clean = road_impute(images, shifted_masks, 0.0).numpy()
    both = masks & shifted_masks
    difference, shifted_difference = (noisy - clean)[both], (shifted - shifted_clean)[both]
    assert abs(np.corrcoef(difference.ravel(), shifted_difference.ravel())[0, 1]) < 0.1


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_road_noise_independent_of_batching(rng, solver):
    masks = example_masks(rng, 8, 8)  # the shapes of test_road_matches_scipy
    images = rng.random((len(masks), 8, 8, 3), dtype=np.float32)
    batch = road_impute(images, masks, noise_std=0.1, seed=7, solver=solver).numpy()
    alone = road_impute(images[3:4], masks[3:4], noise_std=0.1, seed=7, solver=solver).numpy()
    np.testing.assert_array_equal(batch[3], alone[0])
    reordered = road_impute(images[::-1], masks[::-1], 0.1, seed=7, solver=solver).numpy()
    np.testing.assert_array_equal(reordered[::-1], batch)
    # An image that differs in one pixel draws other noise; the others keep theirs.
    changed = images.copy()
    changed[3, 0, 0, 0] += 0.25
    other = road_impute(changed, masks, noise_std=0.1, seed=7, solver=solver).numpy()
    assert np.abs(other[3] - batch[3])[masks[3]].min() > 0
    np.testing.assert_array_equal(np.delete(other, 3, 0), np.delete(batch, 3, 0))


def test_road_iterations(rng):
    masks = example_masks(rng, 8, 8)
    images = rng.random((len(masks), 8, 8, 3), dtype=np.float32)
    _, iterations = road_impute(images, masks, 0.0, return_iterations=True, solver="cg")
    assert 0 < iterations < 4 * 16 + 50
    capped, iterations = road_impute(
        images, masks, 0.0, max_iterations=1, return_iterations=True, solver="cg"
    )
    assert iterations == 1
    _, iterations = road_impute(images, masks, 0.0, return_iterations=True, solver="cholesky")
    assert iterations == 0  # no conjugate gradients ran
    np.testing.assert_array_equal(capped.numpy()[~masks], images[~masks])


def test_road_solvers_share_the_noise(rng):
    """The noise is added after the solve: the same for either solver."""
    masks = example_masks(rng, 8, 8)
    images = rng.random((len(masks), 8, 8, 3), dtype=np.float32)
    noisy, clean = {}, {}
    for solver in ("cg", "cholesky"):
        noisy[solver] = road_impute(images, masks, 0.1, seed=7, solver=solver).numpy()
        clean[solver] = road_impute(images, masks, 0.0, solver=solver).numpy()
    np.testing.assert_allclose(noisy["cg"] - clean["cg"], noisy["cholesky"] - clean["cholesky"],
                               rtol=0, atol=1e-5)
    assert np.abs(noisy["cg"] - clean["cg"])[masks].min() > 0


def test_road_auto_solver(rng):
    """"auto" gives exactly what the solver `auto_solver` names gives, eagerly and traced
    (the evaluator calls `road_occlude` inside its compiled functions), chosen by the
    image size only."""
    masks = example_masks(rng, 8, 8)  # the shapes above: no new compile
    images = rng.random((len(masks), 8, 8, 3), dtype=np.float32)
    expected = road_impute(images, masks, 0.02, seed=3, solver=auto_solver(8, 8)).numpy()
    np.testing.assert_array_equal(road_impute(images, masks, 0.02, seed=3).numpy(), expected)
    traced = tf.function(lambda x, m: road_occlude(x, m, 0.02, 3))
    np.testing.assert_array_equal(traced(images, masks).numpy(), expected)
    # Up to 32 pixels wide (CIFAR-10) the direct solver, wider the conjugate gradients.
    assert [auto_solver(h, w) for h, w in ((8, 8), (32, 32), (32, 33), (224, 224))] == [
        "cholesky", "cholesky", "cg", "cg"]

@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"images": np.zeros((4, 4, 3), np.float32)}, ValueError, "rank 4"),
        ({"images": np.zeros((1, 4, 4, 3), np.uint8)}, TypeError, "floats"),
        ({"masks": np.zeros((1, 4, 4), np.float32)}, TypeError, "boolean"),
        ({"masks": np.zeros((1, 4, 5), bool)}, ValueError, r"\(1, 4, 4\)"),
        ({"masks": np.zeros((2, 4, 4), bool)}, ValueError, "shape"),
        ({"noise_std": -0.1}, ValueError, "noise_std"),
        ({"noise_std": float("nan")}, ValueError, "noise_std"),
        ({"noise_std": "0.1"}, TypeError, "noise_std"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 2**32}, ValueError, "seed"),
        ({"tolerance": 0.0}, ValueError, "tolerance"),
        ({"max_iterations": 0}, ValueError, "max_iterations"),
        ({"max_iterations": 2**31}, ValueError, "max_iterations"),  # would wrap in int32
        ({"noise_std": 1e39}, ValueError, "noise_std"),  # would be Inf in float32
        ({"solver": "lu"}, ValueError, "solver"),
        ({"solver": None}, TypeError, "solver"),
    ],
)
def test_road_checks(kwargs, error, match):
    arguments = {"images": np.zeros((1, 4, 4, 3), np.float32), "masks": np.zeros((1, 4, 4), bool)}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        road_impute(**arguments)


# ----------------------------------------------------------------------------- blur, mean


@pytest.mark.parametrize("sigma", [0.4, 1.0, 1.7, 3.0])
def test_blur_matches_scipy(rng, sigma):
    images = rng.random((2, 6, 7, 3), dtype=np.float32)  # sigma 3: radius 9 > 7
    radius = math.ceil(3 * sigma)
    expected = scipy.ndimage.gaussian_filter(
        images.astype(np.float64), sigma, mode="reflect", radius=radius, axes=(1, 2)
    )
    np.testing.assert_allclose(blur_images(images, sigma).numpy(), expected, atol=1e-6)


def test_blur_numpy_loop(images):
    """A plain loop with the documented kernel and border rule."""
    sigma = 1.3
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    assert radius == math.ceil(3 * sigma)
    offsets = np.arange(-radius, radius + 1)
    np.testing.assert_allclose(kernel, np.exp(-(offsets**2) / (2 * sigma**2)) / np.exp(
        -(offsets**2) / (2 * sigma**2)).sum())

    def mirror(k, size):  # d c b a | a b c d | d c b a
        k = k % (2 * size)
        return k if k < size else 2 * size - 1 - k

    batch, height, width, channels = images.shape
    columns = np.zeros(images.shape)
    for i in range(height):
        for o, w in zip(offsets, kernel):
            columns[:, i] += w * images[:, mirror(i + o, height)]
    expected = np.zeros(images.shape)
    for j in range(width):
        for o, w in zip(offsets, kernel):
            expected[:, :, j] += w * columns[:, :, mirror(j + o, width)]
    np.testing.assert_allclose(blur_images(images, sigma).numpy(), expected, atol=1e-6)
    constant = np.full((1, 5, 4, 2), 0.3, np.float32)
    np.testing.assert_allclose(blur_images(constant, 2.0).numpy(), constant, atol=1e-6)


def test_mean_images(images):
    means = mean_images(images).numpy()
    expected = np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape)
    np.testing.assert_allclose(means, expected, atol=1e-6)


@pytest.mark.parametrize("sigma, error", [(0.0, ValueError), (-1.0, ValueError),
                                          (float("inf"), ValueError), ("2", TypeError),
                                          (1e9, ValueError)])  # 6e9 taps: refused, not OOM
def test_blur_checks(images, sigma, error):
    with pytest.raises(error, match="sigma"):
        blur_images(images, sigma)
    with pytest.raises(ValueError, match="rank 4"):
        mean_images(images[0])


# ----------------------------------------------------------------------------- Fill objects


@pytest.mark.parametrize(
    "text, expected, name, key",
    [
        ("black", Constant("black"), "black", "black"),
        ("white", Constant("white"), "white", "white"),
        ("0.5", Constant(0.5), "0.5", 0.5),
        ("0.1,0.2,0.3", Constant((0.1, 0.2, 0.3)), "0.1,0.2,0.3", (0.1, 0.2, 0.3)),
        ("0.5,", Constant((0.5,)), "0.5,", (0.5,)),
        ("blur", Blur(), "blur", "blur"),
        ("blur:2", Blur(2.0), "blur(2.0)", "blur(2.0)"),
        (" blur(2.0) ", Blur(2.0), "blur(2.0)", "blur(2.0)"),
        ("mean", Mean(), "mean", "mean"),
        ("road", Road(), "road", "road"),
        ("road:0.02", Road(0.02), "road(0.02)", "road(0.02)"),
        ("road:0", Road(0.0), "road(0.0)", "road(0.0)"),
    ],
)
def test_parse_fill_names_and_keys(text, expected, name, key):
    fill = parse_fill(text)
    assert fill == expected and fill.name == name and fill.key == key
    assert parse_fill(fill.name) == fill == as_fill(text)  # a name reads back as its fill


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("grey", ValueError, "unknown fill 'grey'.*black"),
        ("", ValueError, "unknown fill"),
        ("mean:2", ValueError, "takes no parameter"),
        ("blur:x", ValueError, "must be a number"),
        ("blur:-1", ValueError, "`sigma`"),
        ("road:1e39", ValueError, "`noise_std`"),
        ("0.1,nan", ValueError, "finite"),
        (3, TypeError, "string"),
    ],
)
def test_parse_fill_refuses_with_a_message(text, error, message):
    with pytest.raises(error, match=message):
        parse_fill(text)


def test_constants_and_fill_values(rng):
    assert as_fill(0.25) == Constant(0.25) and as_fill([0.1, 0.2]) == Constant((0.1, 0.2))
    np.testing.assert_array_equal(
        fill_values(["black", "white", 0.5, (0.1, 0.2, 0.3), "blur"], (-1.0, 2.0), 3),
        np.array([[-1] * 3, [2] * 3, [0.5] * 3, [0.1, 0.2, 0.3], [0] * 3], np.float32),
    )
    with pytest.raises(ValueError, match="3 channels"):
        fill_values([(0.1, 0.2)], (0.0, 1.0), 3)
    with pytest.raises(ValueError, match="bind"):
        Constant("black").color(3)
    images = rng.random((2, 4, 4, 3), dtype=np.float32)
    white = Constant("white").bind((0.0, 255.0), 0).values(images).numpy()
    np.testing.assert_array_equal(white, np.full_like(images, 255.0))
    np.testing.assert_array_equal(Mean().values(images).numpy(), mean_images(images).numpy())
    np.testing.assert_array_equal(Blur(1.5).values(images).numpy(),
                                  blur_images(images, 1.5).numpy())
    masks = rng.random((2, 4, 4)) < 0.5
    np.testing.assert_array_equal(
        Road(0.02).bind((0.0, 1.0), 7).occlude(images, masks).numpy(),
        road_impute(images, masks, noise_std=0.02, seed=7).numpy(),
    )
    for bad, error in [(True, TypeError), ("gray", ValueError), (float("inf"), ValueError),
                       (["a"], TypeError), ((), TypeError), (None, TypeError)]:
        with pytest.raises(error):
            Constant(bad)
    with pytest.raises(TypeError, match="one number per channel"):
        as_fill(())


def test_fills_import_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, tf_signsal.evaluation.fills as f, tf_signsal.evaluation.result; "
            "f.parse_fill('blur:2'); assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
