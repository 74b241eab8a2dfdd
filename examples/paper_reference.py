"""The paper's reported numbers (spec `paper.md` sections 3.4, 4.1, 4.2, 4.4), for comparison.

Tables 1-3 as printed (two decimals for the AUCs) and the Fig. 3/4 curves digitized from the
vector paths of the authors' compiled draft (about +-0.003). Panel (d), Imagenette ResNet-18
from scratch, has no curves: the paper's figure shows the CIFAR-10 ResNet-18 panel twice.
"""

from __future__ import annotations

# run name -> (dataset, model, training) as in the paper's table columns.
RUNS: dict[str, tuple[str, str, str]] = {
    "cifar10_cnn": ("cifar10", "paper_cnn", "scratch"),
    "cifar10_resnet18": ("cifar10", "resnet18", "scratch"),
    "imagenette_cnn": ("imagenette", "paper_cnn", "scratch"),
    "imagenette_resnet18": ("imagenette", "resnet18", "scratch"),
    "imagenette_resnet18_pretrained": ("imagenette", "resnet18", "pre-trained, frozen"),
    "imagenette_convnext_pretrained": ("imagenette", "convnext_tiny", "pre-trained, frozen"),
}

# Table 1: test accuracy.
ACCURACY: dict[str, float] = {
    "cifar10_cnn": 0.6307,
    "cifar10_resnet18": 0.7569,
    "imagenette_cnn": 0.6205,
    "imagenette_resnet18": 0.8357,
    "imagenette_resnet18_pretrained": 0.9733,
    "imagenette_convnext_pretrained": 0.9932,
}

# Tables 2 and 3: AUC per "method/fill" pair ("standard" is the paper's "Original").
_ORDER = tuple(RUNS)
_TABLES = {
    "standard/black": (0.23, 0.23, 0.24, 0.26, 0.28, 0.49),
    "positive/black": (0.14, 0.11, 0.12, 0.14, 0.21, 0.37),
    "active/black": (0.15, 0.11, 0.16, 0.14, 0.24, 0.39),
    "standard/white": (0.21, 0.22, 0.21, 0.23, 0.26, 0.46),
    "negative/white": (0.14, 0.12, 0.11, 0.18, 0.20, 0.37),
    "inactive/white": (0.15, 0.12, 0.14, 0.16, 0.23, 0.42),
}
AUC: dict[str, dict[str, float]] = {
    run: {pair: values[i] for pair, values in _TABLES.items()} for i, run in enumerate(_ORDER)
}

# Figs. 3 and 4: allegiance at these fractions (the paper's protocol).
FRACTIONS = (0.0, 0.03, 0.05, 0.07, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_CURVES = {
    "cifar10_cnn": {
        "standard/black": "1.000 .632 .558 .508 .452 .324 .259 .225 .197 .167 .146 .116 .103",
        "positive/black": "1.000 .296 .235 .208 .186 .150 .137 .133 .131 .128 .127 .125 .125",
        "active/black": "1.000 .299 .245 .213 .185 .153 .146 .141 .140 .138 .138 .138 .138",
        "standard/white": "1.000 .541 .471 .425 .377 .275 .231 .200 .188 .171 .155 .136 .111",
        "negative/white": "1.000 .335 .277 .249 .218 .166 .139 .127 .120 .115 .116 .114 .114",
        "inactive/white": "1.000 .335 .281 .248 .218 .169 .142 .135 .133 .132 .132 .132 .132",
    },
    "cifar10_resnet18": {
        "standard/black": "1.000 .665 .591 .537 .473 .330 .252 .198 .158 .141 .127 .119 .104",
        "positive/black": "1.000 .250 .186 .150 .126 .098 .092 .093 .093 .097 .098 .099 .099",
        "active/black": "1.000 .249 .186 .149 .126 .097 .092 .092 .094 .095 .095 .095 .095",
        "standard/white": "1.000 .600 .527 .471 .417 .298 .238 .201 .176 .161 .145 .130 .116",
        "negative/white": "1.000 .273 .213 .179 .158 .118 .111 .104 .100 .098 .099 .099 .099",
        "inactive/white": "1.000 .272 .213 .178 .158 .120 .109 .104 .102 .102 .102 .102 .102",
    },
    "imagenette_cnn": {
        "standard/black": "1.000 .683 .608 .555 .483 .344 .269 .222 .192 .158 .143 .129 .111",
        "positive/black": "1.000 .371 .287 .236 .193 .137 .114 .101 .088 .085 .083 .081 .080",
        "active/black": "1.000 .384 .303 .259 .214 .165 .149 .146 .147 .147 .147 .147 .147",
        "standard/white": "1.000 .532 .457 .400 .346 .267 .240 .213 .199 .184 .155 .127 .092",
        "negative/white": "1.000 .323 .247 .208 .173 .121 .096 .081 .074 .080 .092 .083 .088",
        "inactive/white": "1.000 .352 .271 .231 .194 .141 .124 .120 .119 .119 .119 .119 .119",
    },
    "imagenette_resnet18_pretrained": {
        "standard/black": "1.000 .742 .661 .604 .547 .443 .355 .274 .226 .189 .146 .113 .105",
        "positive/black": "1.000 .617 .524 .467 .420 .304 .231 .189 .155 .134 .123 .120 .120",
        "active/black": "1.000 .613 .515 .473 .417 .293 .226 .206 .205 .205 .205 .205 .205",
        "standard/white": "1.000 .654 .566 .511 .458 .379 .324 .273 .228 .197 .167 .141 .109",
        "negative/white": "1.000 .558 .455 .412 .362 .274 .221 .181 .154 .135 .118 .116 .116",
        "inactive/white": "1.000 .550 .455 .406 .361 .264 .217 .198 .196 .197 .197 .197 .197",
    },
    "imagenette_convnext_pretrained": {
        "standard/black": "1.000 .964 .947 .934 .914 .822 .718 .599 .472 .371 .262 .174 .118",
        "positive/black": "1.000 .932 .912 .890 .855 .694 .521 .369 .259 .181 .145 .138 .138",
        "active/black": "1.000 .928 .904 .873 .821 .628 .423 .309 .276 .270 .270 .270 .270",
        "standard/white": "1.000 .958 .937 .917 .892 .781 .664 .545 .428 .328 .228 .157 .122",
        "negative/white": "1.000 .938 .911 .889 .843 .674 .507 .376 .279 .202 .151 .139 .137",
        "inactive/white": "1.000 .935 .902 .867 .819 .634 .458 .363 .330 .323 .323 .323 .323",
    },
}
CURVES: dict[str, dict[str, tuple[float, ...]]] = {
    run: {pair: tuple(float(v) for v in text.split()) for pair, text in curves.items()}
    for run, curves in _CURVES.items()
}
