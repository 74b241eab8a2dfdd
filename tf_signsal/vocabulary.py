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
"""Named deletion fills (evaluation/fills.py, evaluation/road.py): the ends of the value
range, a blurred copy of the image, the image's mean, ROAD's noisy linear imputation; a
number or one number per channel also works."""

ORDERS: tuple[str, ...] = ("morf", "lerf", "insertion")
"""Which pixels the deletion takes first (evaluation/rules.py)."""

DATASETS: tuple[str, ...] = ("cifar10", "imagenette")
"""The paper's datasets (data.py)."""
