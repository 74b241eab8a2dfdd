"""Make the Keras weights file of torchvision's pre-trained ResNet-18 (IMAGENET1K_V1).

    python examples/convert_resnet18_weights.py --out resnet18_imagenet.weights.h5
    python examples/reproduce_paper.py --run imagenette_resnet18_pretrained \\
        --weights resnet18_imagenet.weights.h5

Keras hosts no ImageNet ResNet-18. This downloads (once, into the Keras cache) timm's
safetensors copy of torchvision's `ResNet18_Weights.IMAGENET1K_V1`, copies it into the
backbone of `tf_signsal.models.resnet18` (layer names are torchvision's) and saves it with
`save_weights`, the file `models.resnet18(weights=...)` takes. --source also takes a local
.safetensors file holding a torchvision resnet18 state dict.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from tf_signsal import models  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="weights file to write (.weights.h5)")
    parser.add_argument("--source", default=models.TORCHVISION_RESNET18_URL,
                        help="URL or local path of the .safetensors state dict")
    args = parser.parse_args(argv)
    if not args.out.endswith(".weights.h5"):
        parser.error(f"--out must end in .weights.h5 (Keras's save_weights), received {args.out}")
    path = args.source
    if not os.path.isfile(path):
        path = keras.utils.get_file("resnet18_tv_in1k.safetensors", origin=args.source)
    backbone = models.resnet18((224, 224, 3)).get_layer("resnet18")
    models.load_torch_state(backbone, models.read_safetensors(path))
    backbone.save_weights(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
