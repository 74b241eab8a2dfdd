"""The names the package accepts, in a module that imports nothing heavy.

The command line builds its choices from these without importing TensorFlow, so that
`tf-signsal --help` answers at once; the modules that use a name import it from here.
"""

METHODS: tuple[str, ...] = ("standard", "positive", "negative", "active", "inactive")
"""The five sign-aware maps (maps.py)."""

JACOBIAN_MODES: tuple[str, ...] = ("auto", "batch_jacobian", "loop")
"""How the engine takes every class's gradient (gradients.py)."""

ATTRIBUTIONS: tuple[str, ...] = (
    "gradient", "gradient_x_input", "integrated_gradients", "smoothgrad",
)
"""What the five maps are channel reductions of (attributions.py)."""

FILLS: tuple[str, ...] = ("black", "white", "blur", "mean", "road")
"""The names of the built-in deletion fills (`Fill` objects in evaluation/fills.py, which
checks that its table of names matches this one): the ends of the value range, a blurred
copy of the image, the image's mean, ROAD's noisy linear imputation; a number, one number
per channel, "blur:2.0" and "road:0.02" also work (`parse_fill`)."""

ORDERS: tuple[str, ...] = ("morf", "lerf", "insertion")
"""The names of the built-in deletion orders (`Order` objects in evaluation/orders.py,
which checks that its table matches this one): which pixels the deletion takes first."""

DATASETS: tuple[str, ...] = ("cifar10", "imagenette")
"""The paper's datasets (data.py)."""

MODEL_OUTPUTS: tuple[str, ...] = ("logits", "log_probabilities")
"""What a loaded model's output is explained as (`load_model(outputs=...)`, loading.py)."""

PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")
"""What the model's forward and backward passes compute in (precision.py): float32, or
bfloat16 on a copy of the model (Keras's "mixed_bfloat16" policy) with the maps in float32."""
