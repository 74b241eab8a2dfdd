"""`tf-signsal sanity`: model randomisation and the random-logit check of the maps."""

from __future__ import annotations

import argparse

from tf_signsal.cli._common import (
    PROG,
    CommandError,
    attribution_argument,
    load_model,
    out_help,
    outputs_pattern,
    positive_int,
    prepare_out,
    reading,
    run_record,
    seed_int,
    telling_skipped,
    to_value_range,
    write_record_and_figure,
)
from tf_signsal.cli.evaluate import (
    check_data,
    data_arguments,
    data_inputs,
    decoding,
    evaluation_data,
)
from tf_signsal.vocabulary import METHODS

HELP = (
    "Sanity checks of the maps: model randomisation (Adebayo et al. 2018) and the "
    "random-logit check, on a class-balanced subset of a dataset."
)
EXAMPLE = (
    f"example:\n  {PROG} sanity --model model.keras --data cifar10 --data-dir ../shared/data "
    "--out runs/sanity\n"
    f"  {PROG} sanity --model model.keras --data photos/ --limit 16 --independent "
    "--attribution integrated_gradients --out runs/sanity"
)
OUTPUTS = ("sanity.json", "randomization.png")
"""The record and the figure sanity writes in its --out."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare sanity's arguments on `parser`."""
    data_arguments(parser)
    parser.add_argument(
        "--limit", type=positive_int, default=32,
        help="images to check: a class-balanced subset drawn with --seed (default: 32)",
    )
    parser.add_argument(
        "--seed", type=seed_int, default=0,
        help="seed of the subset, the re-initialisation and the random class (default: 0)",
    )
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), metavar="METHOD",
        help=f"maps to check, of {', '.join(METHODS)} (default: all)",
    )
    parser.add_argument(
        "--independent", action="store_true",
        help="randomise one layer at a time instead of cascading from the top",
    )
    attribution_argument(parser)
    parser.add_argument("--out", required=True, help=out_help("sanity", OUTPUTS))


def run(args: argparse.Namespace) -> None:
    """Run the sanity checks of `args.model`'s maps and write their record in `args.out`."""
    prepare_out(args, "sanity", inputs=data_inputs(args))
    check_data(args)
    earlier = prepare_out(args, "sanity", OUTPUTS, outputs_pattern(OUTPUTS))
    from tf_signsal import _model, plotting
    from tf_signsal._data import batches
    from tf_signsal.evaluation import random_logit_check, randomization_check

    loaded = model, shape, num_classes, value_range = load_model(args)
    refusal = _model.copy_refusal(model)  # before the data is read
    if refusal is not None:
        raise CommandError(f"cannot run the randomisation check of {args.model}: {refusal}")
    with reading(RuntimeError), telling_skipped(), decoding(args.data):
        chosen = evaluation_data(
            args.data, shape, num_classes, split=args.split, data_dir=args.data_dir,
            limit=args.limit, seed=args.seed, batch_size=args.limit,
        )
        images = batches(chosen.dataset, name="data", what="sanity-check").stack().images
        images = to_value_range(images, value_range)
    print(chosen.description)
    with reading():
        check = randomization_check(
            model, images, methods=args.methods, cascade=not args.independent, seed=args.seed,
            attribution=args.attribution, value_range=value_range,
        )
        logit = random_logit_check(
            model, images, methods=args.methods, seed=args.seed, attribution=args.attribution,
            value_range=value_range,
        )
    run = run_record("sanity", args, loaded)
    run["attribution"] = args.attribution
    record = {
        "randomization": check.to_dict(),
        "random_logit": logit,
        "data": chosen.record,
        "run": run,
    }
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    kind = "one layer at a time" if args.independent else "cascading from the top"
    plotting.plot_randomization(check, figure.subplots(), title=f"randomisation, {kind}")
    figure.tight_layout()
    written = write_record_and_figure(args.out, "sanity", OUTPUTS, earlier, record, figure)
    print(check.summary())
    print("random-logit check (rank correlation with a random other class's map): "
          + ", ".join(f"{method} {value:.3f}" for method, value in logit.items()))
    print("\nwrote " + "\n      ".join(written))
