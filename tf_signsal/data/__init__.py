"""Data: the paper's datasets, image files read with limits, image folders, synthetic signs.

- `tf_signsal.data.paper`: CIFAR-10 and Imagenette as `tf.data` pipelines (`load`,
  `class_names`), from a local image-folder tree or tensorflow-datasets.
- `tf_signsal.data.files`: image files read with size and pixel limits (`image_files`,
  `read_images`, `files_dataset`; `MAX_IMAGE_BYTES`, `MAX_IMAGE_PIXELS`).
- `tf_signsal.data.folders`: a folder of class folders listed (`folder_files`), its classes
  matched to a model's (`match_class_names`, `read_class_names`), a class-balanced subset
  (`balanced_subset`).
- `tf_signsal.data.synthetic`: the demo's synthetic signs, whose ground truth is known, and
  the pointing game that uses it.

Every public name of the four is importable from here. Images come out as float32 in [0, 1],
channels last; labels are int64 class indices.

Example:

```python
from tf_signsal import data

test = data.load("imagenette", "test", data_dir="../shared/data", drop_grayscale=True)
images, labels = next(iter(test))  # (128, 224, 224, 3) float32, (128,) int64
data.class_names("imagenette")[int(labels[0])]  # 'tench'
```
"""

from __future__ import annotations

import importlib
from typing import Any

# The public names, by the module that defines them, imported on first use (PEP 562): the
# synthetic signs and the pointing game need numpy alone, not TensorFlow.
_LAZY = {
    "tf_signsal.data.files": (
        "IMAGE_EXTENSIONS", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "SkippedImageWarning",
        "files_dataset", "image_file_problem", "image_files", "read_images",
    ),
    "tf_signsal.data.folders": (
        "SPLIT_NAMES", "FolderFiles", "balanced_subset", "dataset_splits", "folder_files",
        "match_class_names", "read_class_names",
    ),
    "tf_signsal.data.paper": ("NAMES", "class_names", "load", "split_labels", "split_subset"),
    "tf_signsal.data.synthetic": (
        "CHANCE", "POINTING_GROUPS", "RANDOM_MAP", "SYNTHETIC_CLASS_IS_BRIGHT",
        "SYNTHETIC_CLASS_NAMES", "pointing_game", "pointing_score", "synthetic_signs",
    ),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'tf_signsal.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
