"""ROAD's noisy linear imputation (Rong et al. 2022, arXiv 2202.00449): the "road" fill.

ROAD's fill depends on the mask (each deleted pixel is imputed from its neighbours), so
`road_impute` returns the occluded image itself, not a full image of fill values.

Randomness (ROAD's noise) comes from a hash of each image's own bits, its mask's bits
and the seed, as in `random_control.py`: the same image and mask give the same result
in any batch, on any device, in any order.
"""

from __future__ import annotations

import functools
from typing import Any

import tensorflow as tf

from tf_signsal import _checks
from tf_signsal._random import combine, hashed_normal, image_hashes, row_hashes
from tf_signsal.evaluation.fills import check_noise_std

# ROAD's neighbour weights (Rong et al. 2022, section 4.2 and their `imputations.py`):
# 1/6 for the 4 edge neighbours, 1/12 for the 4 diagonal ones (they sum to 1).
ROAD_NEIGHBOURS: tuple[tuple[int, int, float], ...] = (
    (-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12),
    (0, -1, 1 / 6), (0, 1, 1 / 6),
    (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12),
)
ROAD_TOLERANCE = 1e-6
"""Default `tolerance` of `road_impute`: relative residual of the conjugate gradients."""


def _stencil(x: tf.Tensor) -> tf.Tensor:
    """sum over the 8 neighbours j of pixel i of w_ij x_j, per image and channel, for x
    (B, H, W, ch); pixels outside the image count as absent (zero padding).

    Separable: the 3x3 kernel [[1, 2, 1], [2, 4, 2], [1, 2, 1]] / 12 less the centre's
    4/12. Two 3-tap passes of shifted slices; under XLA they fuse with the rest of a
    conjugate-gradient step (a depthwise convolution is 5x slower there).
    """
    padded = tf.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0)))
    column = padded[:, :-2] + 2 * padded[:, 1:-1] + padded[:, 2:]
    padded = tf.pad(column, ((0, 0), (0, 0), (1, 1), (0, 0)))
    total = padded[:, :, :-2] + 2 * padded[:, :, 1:-1] + padded[:, :, 2:]
    return total * (1 / 12) - x * (1 / 3)


def _road_noise(images: tf.Tensor, masks: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Standard normal noise (B, H, W, ch) float32 from each image's and mask's own bits
    and `seed` (`tf_signsal._random`): the same image and mask get the same noise in any
    batch."""
    shape = tf.shape(images)
    keys = combine(image_hashes(images), row_hashes(masks))
    return tf.reshape(hashed_normal(keys, seed, tf.reduce_prod(shape[1:])), shape)


def _dot(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per image and channel: (B, 1, 1, ch)."""
    return tf.reduce_sum(a * b, axis=(1, 2), keepdims=True)


# Mixed precision, measured while writing this module (256 32x32 images, XLA, 2 CPU
# cores): float64 conjugate gradients cost ~3.5x float32 ones, but float32 alone stalls:
# on a 64x64 image with two kept pixels its error was 2.5e-4 (float64: 3e-7), because
# float32 residuals of an ill-conditioned system are only good to ~1e-7 x its condition
# number. So the corrections are solved in float32, to `_INNER_TOLERANCE` relative to
# their own right-hand side, and the residual b - K x is recomputed in float64 between
# rounds (iterative refinement): each round cuts the error ~1000x, and the default
# tolerance 1e-6 takes two rounds. Inner tolerances 1e-2, 1e-4 and 1e-5 needed 10-60%
# more iterations in all than 1e-3. The 3x3 stencil as shifted slices under XLA was
# ~2x faster than a depthwise convolution without XLA (and XLA's convolution is slow).
_INNER_TOLERANCE = 1e-3
_ROUNDS = 4


def _prepare(images, masks):
    """What both solvers start from, float64: the deleted pixels that are unknowns
    (none in an image with no kept pixel), the kept values scaled, their scale, which
    images are solvable, the in-image weight sums D_w and the right-hand side A_uk x_k."""
    deleted = tf.cast(masks, tf.float64)[..., None]  # (B, H, W, 1)
    kept_count = tf.reduce_sum(1.0 - deleted, axis=(1, 2), keepdims=True)
    solvable = kept_count > 0  # (B, 1, 1, 1): an image with no kept pixel has no solution
    unknown = tf.where(solvable, deleted, tf.zeros_like(deleted))
    known = (1.0 - deleted) * tf.cast(images, tf.float64)
    # The solution is linear in the kept values: solve for them scaled to max |kept| = 1
    # per image and channel, so the float32 inner solves neither underflow (pixels of
    # 1e-16) nor overflow (1e20) whatever the images' scale; scaled back at the end.
    scale = tf.reduce_max(tf.abs(known), axis=(1, 2), keepdims=True)
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    known /= scale
    degree = _stencil(tf.ones_like(deleted[:1]))  # (1, H, W, 1) in-image weight sums D_w
    b = unknown * _stencil(known)  # A_uk x_k
    return unknown, known, kept_count, scale, solvable, degree, b


def _apply(x, unknown, degree):
    """(D_w - A) restricted to the unknowns, for x zero off them."""
    return unknown * (degree * x - _stencil(x))


def _finish(images, masks, x, scale, solvable, noise_std, seed):
    """The occluded images: the solution scaled back (an unsolvable image's own mean),
    plus the noise, on the deleted pixels only."""
    means = tf.reduce_mean(tf.cast(images, tf.float64), axis=(1, 2), keepdims=True)
    imputed = tf.cast(tf.where(solvable, x * scale, means), tf.float32)
    imputed += noise_std * _road_noise(images, masks, seed)
    return tf.where(masks[..., None], imputed, images)


@tf.function(jit_compile=True, reduce_retracing=True)
def _road(images, masks, noise_std, seed, tolerance, max_iterations):
    """The conjugate-gradient solver (see `road_impute`)."""
    unknown, known, kept_count, scale, solvable, degree, b = _prepare(images, masks)
    inverse_degree = tf.math.divide_no_nan(tf.ones_like(degree), degree)  # Jacobi
    unknown32 = tf.cast(unknown, tf.float32)
    degree32 = tf.cast(degree, tf.float32)
    inverse_degree32 = tf.cast(inverse_degree, tf.float32)

    # Start from the mean of the kept pixels: it removes the smoothest error component.
    x = unknown * tf.math.divide_no_nan(tf.reduce_sum(known, axis=(1, 2), keepdims=True),
                                        kept_count)
    r = b - _apply(x, unknown, degree)
    # Converged when the Jacobi-weighted residual norm is `tolerance` times that of b
    # (or, when b is 0, of the start), per image and channel.
    threshold = tolerance**2 * tf.maximum(_dot(b, b * inverse_degree), _dot(r, r * inverse_degree))

    def solve32(rhs, iterations):
        """Jacobi-preconditioned CG for K d = rhs in float32 from d = 0, every system at
        once; a system stops (alpha = beta = 0) at `_INNER_TOLERANCE` relative residual."""
        r = rhs
        z = r * inverse_degree32
        rz = _dot(r, z)
        inner_threshold = _INNER_TOLERANCE**2 * rz

        def body(i, d, r, p, rz):
            active = rz > inner_threshold
            q = _apply(p, unknown32, degree32)
            alpha = tf.where(active, tf.math.divide_no_nan(rz, _dot(p, q)), 0.0)
            d += alpha * p
            r -= alpha * q
            z = r * inverse_degree32
            rz_next = _dot(r, z)
            beta = tf.where(active, tf.math.divide_no_nan(rz_next, rz), 0.0)
            return i + 1, d, r, z + beta * p, tf.where(active, rz_next, rz)

        def condition(i, d, r, p, rz):
            return tf.logical_and(i < max_iterations, tf.reduce_any(rz > inner_threshold))

        iterations, d, _, _, _ = tf.while_loop(
            condition, body, (iterations, tf.zeros_like(r), r, z, rz)
        )
        return d, iterations

    def active(r):
        return _dot(r, r * inverse_degree) > threshold

    def refine(round_, iterations, x, r):  # iterative refinement; converged systems rest
        rhs = tf.cast(tf.where(active(r), r, tf.zeros_like(r)), tf.float32)
        d, iterations = solve32(rhs, iterations)
        x += tf.cast(d, tf.float64)
        return round_ + 1, iterations, x, b - _apply(x, unknown, degree)

    def unfinished(round_, iterations, x, r):
        more = tf.logical_and(round_ < _ROUNDS, iterations < max_iterations)
        return tf.logical_and(more, tf.reduce_any(active(r)))

    _, iterations, x, _ = tf.while_loop(unfinished, refine, (0, 0, x, r))
    return _finish(images, masks, x, scale, solvable, noise_std, seed), iterations


def _blocks(unknown, degree):
    """The system K = U (D_w - A) U + (I - U) over all pixels (U the unknowns: identity
    rows on the kept pixels, so every image has one shape), by image rows: its diagonal
    blocks (B, H, W, W) and the transposed blocks coupling row i to row i + 1
    (B, H - 1, W, W); float32."""
    u = unknown[..., 0]  # (B, H, W)
    width = u.shape[2]
    eye = tf.eye(width)
    beside = tf.linalg.diag(tf.ones(width - 1), k=1) + tf.linalg.diag(tf.ones(width - 1), k=-1)
    diagonal = tf.linalg.diag(u * degree[..., 0] + (1 - u))
    within = diagonal - u[..., :, None] * u[..., None, :] * (beside / 6)
    across = -(u[:, :-1, :, None] * u[:, 1:, None, :]) * (eye / 6 + beside / 12)
    return within, across


def _factor(within, across):
    """Block Cholesky of the block-tridiagonal K, rows of the image as blocks: the
    diagonal block i is L_i L_i^T + X_{i-1}^T X_{i-1}, with X_i = L_i^-1 `across[:, i]`
    (lists of (B, W, W) factors L_i and couplings X_i)."""
    factors, couplings = [], []
    coupling = None
    for i in range(within.shape[1]):
        schur = within[:, i]
        if coupling is not None:
            schur -= tf.matmul(coupling, coupling, transpose_a=True)
        factors.append(tf.linalg.cholesky(schur))
        if i + 1 < within.shape[1]:
            coupling = tf.linalg.triangular_solve(factors[-1], across[:, i])
            couplings.append(coupling)
    return factors, couplings


def _substitute(factors, couplings, rhs):
    """K^-1 rhs for rhs (B, H, W, ch) float32, from `_factor`'s blocks."""
    forward = []
    for i, factor in enumerate(factors):
        b = rhs[:, i]
        if i:
            b -= tf.matmul(couplings[i - 1], forward[-1], transpose_a=True)
        forward.append(tf.linalg.triangular_solve(factor, b))
    x = [None] * len(factors)
    for i in reversed(range(len(factors))):
        y = forward[i]
        if i + 1 < len(factors):
            y -= tf.matmul(couplings[i], x[i + 1])
        x[i] = tf.linalg.triangular_solve(factors[i], y, adjoint=True)
    return tf.stack(x, axis=1)


@tf.function(jit_compile=True)
def _cholesky_start(images, masks):
    """`_prepare` and `_blocks`, fused by XLA (as plain graph ops, building the blocks
    took 166 of 854 ms of a call on 256 CIFAR-10-sized images)."""
    unknown, _, _, scale, solvable, degree, b = _prepare(images, masks)
    within, across = _blocks(tf.cast(unknown, tf.float32), tf.cast(degree[0], tf.float32))
    return within, across, unknown, scale, solvable, degree, b


@tf.function(jit_compile=True)
def _cholesky_residual(x, unknown, degree, b):
    """The float64 solution so far, and its residual in float32 (refinement's right-hand
    side)."""
    x = tf.cast(x, tf.float64) * unknown
    return x, tf.cast(b - _apply(x, unknown, degree), tf.float32)


@tf.function(jit_compile=True)
def _cholesky_finish(images, masks, x, correction, unknown, scale, solvable, noise_std, seed):
    """The refined solution, then `_finish`."""
    x += tf.cast(correction, tf.float64) * unknown
    return _finish(images, masks, x, scale, solvable, noise_std, seed)


# The factorisation and substitutions run as plain graph ops, not under XLA: XLA's CPU
# Cholesky and triangular solves were 6x and 2.5x slower than TensorFlow's kernels on
# 256 32x32 blocks, and a batch-last elimination written out for XLA took 5 s a call.
# Their loops over the image rows are unrolled, so they are traced once per image size.
@functools.cache
def _road_cholesky(height: int, width: int) -> Any:
    """The block-Cholesky solver for height x width images (see `road_impute`): a
    float32 factorisation, one substitution, then one round of iterative refinement on
    the float64 residual."""

    @tf.function(input_signature=(
        tf.TensorSpec((None, height, width, None), tf.float32),
        tf.TensorSpec((None, height, width), tf.bool),
        tf.TensorSpec((), tf.float32),
        tf.TensorSpec((), tf.uint32),
    ))
    def solve(images, masks, noise_std, seed):
        within, across, unknown, scale, solvable, degree, b = _cholesky_start(images, masks)
        factors, couplings = _factor(within, across)
        x = _substitute(factors, couplings, tf.cast(b, tf.float32))
        x, residual = _cholesky_residual(x, unknown, degree, b)
        correction = _substitute(factors, couplings, residual)
        return _cholesky_finish(images, masks, x, correction, unknown, scale, solvable,
                                noise_std, seed)

    return solve


def _max_iterations(height: int, width: int) -> int:
    # Above the worst cases measured (see `road_impute`'s max_iterations).
    return 4 * (height + width) + 50


SOLVERS = ("auto", "cg", "cholesky")
"""`road_impute`'s solvers: "auto" chooses between the other two by `_cholesky_pays`."""
# "auto"'s rule, from benchmarks/bench_road.py (benchmarks/README.md, ROAD section).
_CHOLESKY_MAX_WIDTH = 32


def _solve(images, masks, noise_std, seed, tolerance, max_iterations, solver):
    """(imputed images, conjugate-gradient iterations) by `solver`, its scalars as the
    tensors the solvers are traced for."""
    noise_std = tf.constant(noise_std, tf.float32)
    seed = tf.constant(seed, tf.uint32)
    height, width = images.shape[1], images.shape[2]

    def cg():
        return _road(images, masks, noise_std, seed, tf.constant(tolerance, tf.float64),
                     tf.constant(max_iterations, tf.int32))

    def cholesky():
        solve = _road_cholesky(height, width)
        return solve(images, masks, noise_std, seed), tf.constant(0, tf.int32)

    if solver == "cholesky":
        return cholesky()
    if solver == "auto" and height is not None and width is not None:
        solver = auto_solver(height, width)
    return cholesky() if solver == "cholesky" else cg()


def auto_solver(height: int, width: int) -> str:
    """The solver `road_impute(..., solver="auto")` uses for height x width images: by
    their size only, so that an image and its mask get the same result in any batch."""
    return "cholesky" if width <= _CHOLESKY_MAX_WIDTH else "cg"


def road_occlude(
    images: tf.Tensor, masks: tf.Tensor, noise_std: float = 0.01, seed: int = 0
) -> tf.Tensor:
    """`road_impute` of an already checked float32 batch and bool masks, with the default
    tolerance, iteration cap and solver; traceable (the evaluator calls it inside its
    compiled forward passes)."""
    cap = _max_iterations(images.shape[1], images.shape[2])
    imputed, _ = _solve(images, masks, noise_std, seed, ROAD_TOLERANCE, cap, "auto")
    return imputed


def road_impute(
    images: Any,
    masks: Any,
    noise_std: float = 0.01,
    seed: int = 0,
    *,
    tolerance: float = ROAD_TOLERANCE,
    max_iterations: int | None = None,
    return_iterations: bool = False,
    solver: str = "auto",
) -> tf.Tensor | tuple[tf.Tensor, int]:
    """ROAD's noisy linear imputation (Rong et al. 2022, arXiv 2202.00449).

    Each deleted pixel (per channel) becomes the weighted mean of its 8 neighbours:
    weight 1/6 for the 4 edge neighbours, 1/12 for the 4 diagonal ones, renormalised at
    the border (only neighbours inside the image count, and the weights are divided by
    their sum). Deleted neighbours are unknowns too, so this is one sparse linear system
    per image and channel; kept pixels keep their values exactly. Then
    `N(0, noise_std**2)` noise is added to the deleted pixels only.

    How it is solved: multiplying each row by the sum of its in-image weights `D_w`
    gives `(D_w - A)_uu x_u = A_uk x_k` (A the symmetric neighbour-weight matrix, u the
    deleted and k the kept pixels), the same solution. `D_w - A` is a weighted graph
    Laplacian, so its restriction to the unknowns is symmetric positive definite as
    soon as every connected part of the deleted pixels touches a kept pixel. Two
    solvers, both over all images at once; `solver="auto"` (`auto_solver`) takes the
    block-Cholesky one for images at most 32 pixels wide, conjugate gradients for wider
    ones, by the image size only, so that the result of an image does not depend on its
    batch (benchmarks/bench_road.py on this project's 2-core CPUs: at 32x32 the direct
    solver was faster on every row but the sparsest scattered masks, and over all rows;
    at 64x64 and 224x224 slower over all rows, its cost growing as H * W**3 per image
    and that of the conjugate gradients as H * W * iterations).

    `"cg"`: Jacobi-preconditioned conjugate gradients over all images and channels at
    once (the 3x3 stencil applied as shifted slices of a zero-padded tensor), started
    from the mean of the kept pixels, with iterative refinement: float32 CG solves each
    correction to 1e-3 of its right-hand side, the residual is recomputed in float64,
    and at most 4 rounds run, until every system's residual (Jacobi-weighted norm) is
    `tolerance` times that of its right-hand side or `max_iterations` is reached.

    `"cholesky"`: the system padded with identity rows for the kept pixels (one shape
    for every image) is block tridiagonal, one block per image row; its block Cholesky
    factorisation (H batched W x W `cholesky` and `triangular_solve` steps, memory
    ~4 H W**2 floats per image) is computed in float32 once for all channels, then one
    round of iterative refinement on the float64 residual brings it to ~1e-8.
    `tolerance` and `max_iterations` do not apply to it.

    Either way the kept values are scaled to max |value| = 1 per image and channel
    first (the solution is linear in them), so images of any scale are solved equally
    well.

    No kept pixel: the image's 8-neighbour grid is connected, so a connected part of
    the deleted pixels with no kept neighbour is the whole image. An image with every
    pixel deleted has no solution; its deleted pixels get the image's own per-channel
    mean (the "mean" fill) plus the noise.

    The noise is a hash of the image's bits, the mask's bits and `seed` (the normal
    quantile of a 24-bit uniform per pixel and channel, so |noise| <= 5.3 noise_std): the
    same image and mask give the same result alone or in any batch, on any device.

    The conjugate gradients are compiled with XLA (`jit_compile=True`), the Cholesky
    solver traced once per image size: the first call for each input shape compiles
    (a few seconds on a CPU).

    Args:
        images: float (B, H, W, ch) images.
        masks: bool (B, H, W), True where a pixel is deleted (all its channels).
        noise_std: the standard deviation of the noise, in [0, `MAX_NOISE_STD`]
            (ROAD's 0.01 by default; 0 gives the plain linear imputation).
        seed: integer in [0, 2**32), the noise's seed.
        tolerance: relative residual at which the conjugate gradients stop, > 0.
        max_iterations: cap on the conjugate-gradient iterations, all refinement
            rounds together, in [1, 2**31 - 1]; None is `4 * (H + W) + 50`, above
            the worst cases measured (two kept pixels, a corner and the centre: 145
            iterations on 32x32, 296 on 64x64, 1053 on 224x224; masks of the paper's
            fractions on 32x32 CIFAR-10 images: <= 57 for random maps, <= 131 for
            smooth ones). When the cap is reached, the current iterate is returned.
        return_iterations: also return the number of conjugate-gradient iterations
            run (the maximum over the batch; 0 when the Cholesky solver ran).
        solver: "auto" (the default), "cg" or "cholesky" (see above).

    Returns:
        float32 tensor (B, H, W, ch): the images with their deleted pixels imputed;
        with `return_iterations`, a pair (images, iterations).

    Example:

    >>> images = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> masks = np.random.default_rng(1).random((2, 32, 32)) < 0.5
    >>> imputed = road_impute(images, masks)
    >>> bool(np.all(imputed.numpy()[~masks] == images[~masks]))
    True
    """
    images = _checks.as_image_batch(images)
    masks = _checks.bool_masks(masks, images)
    noise_std = check_noise_std("noise_std", noise_std)
    seed = _checks.seed("seed", seed)
    tolerance = _checks.real("tolerance", tolerance, 0.0, strict=True)
    if max_iterations is None:
        max_iterations = _max_iterations(images.shape[1], images.shape[2])
    # An int32 on the device: a larger cap would wrap around.
    max_iterations = _checks.integer("max_iterations", max_iterations, 1, 2**31 - 1)
    solver = _checks.one_of("solver", solver, SOLVERS)
    imputed, iterations = _solve(
        images, masks, noise_std, seed, tolerance, max_iterations, solver
    )
    if return_iterations:
        return imputed, int(iterations)
    return imputed
