"""`tf-signsal demo`: the paper's CNN trained on synthetic signs, explained and evaluated."""

from __future__ import annotations

import argparse
import os

from tf_signsal.cli._common import PROG, positive_int, prepare_out, seed_int

HELP = (
    "Train the paper's CNN on built-in synthetic signs, explain it, run the deletion "
    "benchmark and the pointing game, and write an HTML report."
)
EXAMPLE = f"example:\n  {PROG} demo\n  {PROG} demo --epochs 3 --seed 1 --out runs/demo-seed1"

DEMO_OUT = os.path.join("runs", "signsal-demo")
"""The demo's default --out (runs/ is git-ignored)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare demo's arguments on `parser`."""
    parser.add_argument(
        "--out", default=DEMO_OUT,
        help="output folder: a new one, an empty one or one tf-signsal wrote in; run again, "
        "the demo replaces the files it wrote there (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=positive_int, default=6, help="default: %(default)s")
    parser.add_argument("--seed", type=seed_int, default=0, help="default: %(default)s")
    parser.add_argument(
        "--train-size", type=positive_int, default=4000, help="training images (default: 4000)"
    )
    parser.add_argument(
        "--test-size", type=positive_int, default=256, help="test images (default: %(default)s)"
    )
    parser.add_argument(
        "--image-size", type=positive_int, default=32, help="pixels per side (default: 32)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=64, help="default: 64")


def run(args: argparse.Namespace) -> None:
    """Run the demo into `args.out` and print its summary."""
    prepare_out(args, "demo")  # the path, before the demo's dependencies are imported
    from tf_signsal import demo
    from tf_signsal.data import SYNTHETIC_CLASS_NAMES

    prepare_out(args, "demo", demo.OUTPUTS, demo.OWN_OUTPUTS)
    print(
        f"{PROG} demo: {len(SYNTHETIC_CLASS_NAMES)} classes of bright or dark shapes, "
        f"{args.train_size} training and {args.test_size} test images of "
        f"{args.image_size}x{args.image_size}"
    )
    record = demo.run_demo(
        args.out, epochs=args.epochs, seed=args.seed, train_size=args.train_size,
        test_size=args.test_size, image_size=args.image_size, batch_size=args.batch_size,
    )
    out = os.path.abspath(args.out)
    print("\n" + demo.summary(record))
    print(f"\nreport: {os.path.join(out, demo.REPORT_FILE)}")
    print(f"figures, {demo.RESULTS_FILE} and model.keras: {out}")
    print(f"done in {record['seconds']['total']:.0f} s")
