"""Do the paper's signed maps win only because of the black fill? Orders, fills,
attributions and sanity checks on a trained model.

    python examples/beyond_the_paper.py --model results/cifar10_cnn/model.keras \\
        --data-dir ../shared/data --images 1000 --out results/cifar10_cnn_beyond

For each attribution (gradient, gradient x input, integrated gradients, SmoothGrad), the
five maps and the seeded random control are evaluated with every fill (--fills) in every
order (--orders: MoRF, the paper's deletion; LeRF; insertion), on a class-balanced subset of
the test split (every k-th image of the class-sorted folder). Then the model-randomisation
check (cascading, top layer first) and the random-logit check run on --sanity-images images.

Writes into --out:
- `allegiance_<attribution>.json`: `AllegianceResult.to_dict()` (all orders, SRG);
- `summary.md`: AUC tables per attribution, order and fill, the SRG, and the paper's claim
  (positive/active beat standard with black, negative/inactive with white) checked
  comparison by comparison; the sanity checks;
- `curves_<attribution>.png` (MoRF), `maps_<attribution>.png` (the five maps of a few
  images, the paper's Figs. 1/2 layout), `randomization.png`, `randomization.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tf_signsal import (  # noqa: E402
    ATTRIBUTIONS,
    FILLS,
    METHODS,
    ORDERS,
    AllegianceEvaluator,
    AllegianceResult,
    SignedSaliency,
    data,
    plotting,
    random_logit_check,
    randomization_check,
)
from tf_signsal.evaluation import RANDOM_METHOD  # noqa: E402

# The paper's claim, as (signed map, fill) beating (standard, fill).
CLAIMS = (("positive", "black"), ("active", "black"), ("negative", "white"),
          ("inactive", "white"))


def balanced_subset(data_dir: str, split: str, count: int, image_size: tuple[int, int]):
    """Every k-th image of the class-sorted split: `count` images, balanced over classes."""
    dataset = data.load("cifar10", split, data_dir=data_dir, batch_size=500,
                        image_size=image_size)
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in dataset))
    images, labels = np.concatenate(images), np.concatenate(labels)
    step = max(1, len(images) // count)
    return images[::step][:count], labels[::step][:count]


def evaluate(model, images, labels, attribution, fills, orders, batch_size):
    pairs = [(method, fill) for fill in fills for method in (*METHODS, RANDOM_METHOD)]
    evaluator = AllegianceEvaluator(model, pairs=pairs, orders=orders, attribution=attribution,
                                    batch_size=batch_size)
    return evaluator.evaluate((images, labels), verbose=1)


def claim_rows(name: str, result: AllegianceResult) -> list[str]:
    """One row per comparison of a signed map with the standard map: with its own fill for
    black and white, and with every other fill (does the claim survive it?)."""
    fills = list(dict.fromkeys(f for _, f in result.pairs))
    scores = {order: (auc, order == "morf") for order, auc in result.order_auc.items()}
    if result.srg:
        scores["SRG"] = (result.srg, False)  # higher is better, as for LeRF and insertion
    rows = []
    for order, (auc, lower_wins) in scores.items():
        for fill in fills:
            for method, own_fill in CLAIMS:
                if fill in ("black", "white") and fill != own_fill:
                    continue
                signed, standard = auc[(method, fill)], auc[("standard", fill)]
                holds = signed < standard if lower_wins else signed > standard
                rows.append(f"| {name} | {order} | {fill} | {method} | {signed:.3f} | "
                            f"{standard:.3f} | {'yes' if holds else 'no'} |")
    return rows


def auc_table(name: str, result: AllegianceResult) -> list[str]:
    fills = list(dict.fromkeys(f for _, f in result.pairs))
    methods = [*METHODS, RANDOM_METHOD]
    lines = [f"\n#### {name}\n", "| order | fill | " + " | ".join(methods) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in methods) + " |"]
    tables = {**result.order_auc, **({"SRG": result.srg} if result.srg else {})}
    for order, auc in tables.items():
        for fill in fills:
            values = " | ".join(f"{auc[(m, fill)]:.3f}" for m in methods)
            lines.append(f"| {order} | {fill} | {values} |")
    return lines


def save(figure: Figure, path: str) -> None:
    figure.tight_layout()
    plotting.save_figure(figure, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="results/cifar10_cnn/model.keras")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--attributions", nargs="+", choices=ATTRIBUTIONS,
                        default=list(ATTRIBUTIONS))
    parser.add_argument("--orders", nargs="+", choices=ORDERS, default=list(ORDERS))
    parser.add_argument("--fills", nargs="+", choices=FILLS, default=list(FILLS))
    parser.add_argument("--sanity-images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    model = keras.saving.load_model(args.model, compile=False)
    size = tuple(model.inputs[0].shape[1:3])
    images, labels = balanced_subset(args.data_dir, args.split, args.images, size)
    accuracy = float(np.mean(np.argmax(model.predict(images, verbose=0), 1) == labels))
    print(f"{len(images)} images, {np.bincount(labels).tolist()} per class, accuracy "
          f"{accuracy:.3f}")

    summary = [f"# Beyond black and white: {args.model}\n",
               f"{len(images)} {args.split} images (every k-th of the class-sorted folder, "
               f"{np.bincount(labels).min()}-{np.bincount(labels).max()} per class), accuracy "
               f"{accuracy:.3f}. AUC: lower is better for MoRF, higher for LeRF and insertion; "
               "SRG = AUC(LeRF) - AUC(MoRF), higher is better.\n",
               "Command: `python examples/beyond_the_paper.py " + " ".join(sys.argv[1:]) + "`\n"]
    claims = ["\n### The paper's claim, comparison by comparison\n",
              "| attribution | order | fill | signed map | its AUC | standard's AUC | "
              "signed better |", "| --- | --- | --- | --- | ---: | ---: | --- |"]
    tables = ["\n### AUC tables\n"]
    probe = np.array([np.flatnonzero(labels == c)[0] for c in np.unique(labels)[:4]])
    for attribution in args.attributions:
        started = time.perf_counter()
        result = evaluate(model, images, labels, attribution, args.fills, args.orders,
                          args.batch_size)
        seconds = time.perf_counter() - started
        print(f"\n{attribution}: {seconds:.0f} s\n{result.summary()}")
        result.save_json(os.path.join(args.out, f"allegiance_{attribution}.json"))
        tables += auc_table(f"{attribution} ({seconds:.0f} s)", result)
        claims += claim_rows(attribution, result)
        figure = Figure(figsize=(6.5, 4.5))
        result.plot(figure.subplots(), title=f"{attribution}, MoRF",
                    pairs=[p for p in result.pairs if p[1] in ("black", "white")])
        save(figure, os.path.join(args.out, f"curves_{attribution}.png"))
        maps = SignedSaliency(model, attribution=attribution).explain(images[probe])
        grid = plotting.plot_maps_grid(images[probe], {m: v.numpy() for m, v in maps.items()},
                                       METHODS, titles=[attribution] * len(probe))
        plotting.save_figure(grid, os.path.join(args.out, f"maps_{attribution}.png"))

    sanity = images[: args.sanity_images]
    check = randomization_check(model, sanity, seed=0)
    check.save_json(os.path.join(args.out, "randomization.json"))
    figure = Figure(figsize=(7, 4.5))
    check.plot(figure.subplots(), title="cascading randomisation, top layer first")
    save(figure, os.path.join(args.out, "randomization.png"))
    logit = random_logit_check(model, sanity, seed=0)
    with open(os.path.join(args.out, "random_logit.json"), "w", encoding="utf-8") as handle:
        json.dump(logit, handle, indent=1)
    sanity_lines = ["\n### Sanity checks\n",
                    f"Model randomisation on {len(sanity)} images (mean Spearman correlation "
                    "with the intact model's map; the last column: every weighted layer "
                    "randomised):\n",
                    "| map | " + " | ".join(check.steps) + " |",
                    "| --- | " + " | ".join("---:" for _ in check.steps) + " |"]
    for method in METHODS:
        sanity_lines.append(f"| {method} | "
                            + " | ".join(f"{v:.2f}" for v in check.spearman[method]) + " |")
    sanity_lines.append("\nRandom-logit check (rank correlation of the predicted class's map "
                        "with a random other class's; low means class-specific): "
                        + ", ".join(f"{m} {v:.2f}" for m, v in logit.items()))
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(summary + claims + tables + sanity_lines) + "\n")
    print(f"\nwrote {args.out}/summary.md")


if __name__ == "__main__":
    main()
