"""`tf-signsal export`: a SavedModel for TF Serving with serving_default and explain."""

from __future__ import annotations

import argparse
import os

from tf_signsal.cli._common import (
    PROG,
    CommandError,
    attribution_argument,
    load_model,
    model_argument,
    precision_argument,
    prepare_out,
    reading,
)
from tf_signsal.vocabulary import JACOBIAN_MODES

HELP = "A SavedModel for TF Serving with serving_default and explain signatures."
EXAMPLE = (
    f"example:\n  {PROG} export --model model.keras --out models/signsal/1\n"
    "  docker run -p 8501:8501 --mount type=bind,source=$PWD/models/signsal,"
    "target=/models/signsal -e MODEL_NAME=signsal -t tensorflow/serving"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare export's arguments on `parser`."""
    model_argument(parser)
    parser.add_argument("--out", required=True, help="the SavedModel folder, e.g. models/name/1")
    parser.add_argument(
        "--jacobian", choices=JACOBIAN_MODES, default="auto",
        help="all-class gradients in the graph: batch_jacobian for a GPU server, loop for a "
        "CPU one (default: auto, for this machine)",
    )
    attribution_argument(parser)
    precision_argument(parser)
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing --out that export wrote (a SavedModel) or an empty folder "
        "(never a folder of other files, the current folder or one above it)",
    )


def run(args: argparse.Namespace) -> None:
    """Export `args.model` as a SavedModel in `args.out`."""
    prepare_out(args, "export")
    if not args.overwrite and os.path.lexists(args.out):  # before the model is loaded
        raise CommandError(f"--out {args.out} already exists: give --overwrite to replace it")
    from tf_signsal import serving

    model, _, _, value_range = load_model(args)
    with reading():
        path = serving.export(
            model, args.out, jacobian=args.jacobian, overwrite=args.overwrite,
            protect=(args.model,), attribution=args.attribution, value_range=value_range,
            precision=args.precision,
        )
    print(f"SavedModel with signatures serving_default and explain: {path}")
    print(f"inspect it with: saved_model_cli show --all --dir {path}")
