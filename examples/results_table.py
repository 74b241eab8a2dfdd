"""Tables of our reproduction beside the paper's, and the checks of its section 4.3 claims.

    python examples/results_table.py                 # reads results/, prints markdown
    python examples/results_table.py --out results/summary.md

Reads every `results.json` written by `examples/reproduce_paper.py` under --results: the main
run of each name (`results/<run>/results.json`), the seed runs (`results/<run>_seeds/*/`,
shown as mean +- std), the runs trained with examples/train_torch.py (`results/<run>_torch/`)
and the train-split evaluations (`results_train.json`).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from paper_reference import ACCURACY, AUC, CURVES, FRACTIONS, RUNS  # noqa: E402

PAIRS = ("standard/black", "positive/black", "active/black",
         "standard/white", "negative/white", "inactive/white")
SIGNED = (("positive/black", "standard/black"), ("active/black", "standard/black"),
          ("negative/white", "standard/white"), ("inactive/white", "standard/white"))
# The paper's exception to "signed <= rival-based" (spec section 4.3, claim 3).
PAPER_EXCEPTIONS = {("imagenette_resnet18", "negative/white")}
FLAT = 0.005  # a curve is flat from the first fraction after which it moves less than this


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def flat_from(fractions: list[float], curve: list[float]) -> float | None:
    """The first fraction from which the curve stays within FLAT of its last value."""
    values = np.asarray(curve)
    for index in range(1, len(values)):
        if np.all(np.abs(values[index:] - values[-1]) < FLAT):
            return fractions[index]
    return None


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def _accuracy_row(name: str, run: str, record: dict) -> str:
    return (f"| {name} | {record['epochs']} | {record['n_images']} | "
            f"{record['accuracy']:.4f} ({ACCURACY[run]:.4f}) |")


def _with_paper(auc: dict, pairs: list[str], paper: list[str]) -> list[str]:
    """AUC cells, each followed by the paper's value in brackets where it has one."""
    return [f"{auc[p]:.3f} {ref}".strip() for p, ref in zip(pairs, paper)]


def _row(name: str, cells: list[str]) -> str:
    return f"| {name} | " + " | ".join(cells) + " |"


def row_name(run: str, record: dict) -> str:
    """The run's name, with its seed where it is not the paper's 42."""
    return run if record["seed"] == 42 else f"{run}, seed {record['seed']}"


def torch_name(run: str, record: dict) -> str:
    """The row name of a run trained with examples/train_torch.py."""
    return f"{run}, trained in PyTorch on {record.get('device', 'a GPU')}"


def paper_tables(records: dict[str, dict], seeds: dict[str, list[dict]],
                 torch_records: dict[str, dict], missing: dict[str, str]) -> list[str]:
    """Tables 1-3 of the paper: accuracy, black deletion AUC, white deletion AUC.

    `torch_records` are the runs trained with examples/train_torch.py; `missing` says, for each
    run without results, why (e.g. "not run here")."""
    lines = ["Table 1: test accuracy (the paper's in brackets).", "",
             "| run | epochs | images | accuracy |", "| --- | --- | --- | --- |"]
    for run in RUNS:
        if run in records:
            lines.append(_accuracy_row(row_name(run, records[run]), run, records[run]))
        else:
            lines.append(f"| {run} | {missing[run]} | | ({ACCURACY[run]:.4f}) |")
        if run in seeds:
            group = seeds[run]
            lines.append(f"| {run}, seeds {', '.join(str(r['seed']) for r in group)} | "
                         f"{group[0]['epochs']} | {group[0]['n_images']} | "
                         f"{_mean_std([r['accuracy'] for r in group])} |")
        if run in torch_records:
            lines.append(_accuracy_row(torch_name(run, torch_records[run]), run,
                                       torch_records[run]))
    for number, fill in ((2, "black"), (3, "white")):
        pairs = [p for p in PAIRS if p.endswith(fill)] + [f"random/{fill}"]
        lines += ["", f"Table {number}: AUC of {fill} deletion, lower is better (the paper's in "
                  "brackets; random is our control, not in the paper).", "",
                  "| run | " + " | ".join(p.split("/")[0] for p in pairs) + " |",
                  "|" + " --- |" * (len(pairs) + 1)]
        for run in RUNS:
            paper = [f"({AUC[run][p]:.2f})" if p in AUC[run] else "" for p in pairs]
            if run in records:
                cells = _with_paper(records[run]["auc"], pairs, paper)
                lines.append(_row(row_name(run, records[run]), cells))
            else:
                lines.append(_row(f"{run} ({missing[run]})", [f"– {ref}".strip() for ref in paper]))
            if run in seeds:
                cells = [_mean_std([r["auc"][p] for r in seeds[run]]) for p in pairs]
                lines.append(_row(f"{run}, {len(seeds[run])} seeds", cells))
            if run in torch_records:
                cells = _with_paper(torch_records[run]["auc"], pairs, paper)
                lines.append(_row(torch_name(run, torch_records[run]), cells))
    return lines


def curve_differences(records: dict[str, dict]) -> list[str]:
    """Mean and largest |ours - paper| over the 13 fractions, per pair (Figs. 3 and 4)."""
    lines = ["| run | " + " | ".join(PAIRS) + " |", "|" + " --- |" * (len(PAIRS) + 1)]
    for run, record in records.items():
        paper = CURVES.get(record["run"])  # keys may be row names; record["run"] is the run
        if paper is None or tuple(record["fractions"]) != FRACTIONS:
            continue
        cells = []
        for pair in PAIRS:
            gap = np.abs(np.asarray(record["curves"][pair]) - np.asarray(paper[pair]))
            cells.append(f"{gap.mean():.3f} / {gap.max():.3f}")
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def train_split_table(train_records: dict[str, dict]) -> list[str]:
    lines = ["| run (train split) | images | accuracy | " + " | ".join(PAIRS) + " |",
             "|" + " --- |" * (3 + len(PAIRS))]
    for run, record in train_records.items():
        cells = [str(record["n_images"]), f"{record['accuracy']:.4f}"]
        cells += [f"{record['auc'][p]:.3f}" for p in PAIRS]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return lines


def claims(records: dict[str, dict]) -> list[str]:
    """Section 4.3 of the spec, checked on each of our runs."""
    lines = ["Claim 1: every signed map has a lower AUC than the standard map with the same fill."]
    for run, record in records.items():
        auc = record["auc"]
        failures = [f"{s} {auc[s]:.3f} vs {b} {auc[b]:.3f}" for s, b in SIGNED
                    if not auc[s] < auc[b]]
        margins = ", ".join(f"{s} {auc[s]:.3f} < {b.split('/')[0]} {auc[b]:.3f}"
                            for s, b in SIGNED if auc[s] < auc[b])
        verdict = "holds" if not failures else "does not hold here: " + "; ".join(failures)
        lines.append(f"- {run}: {verdict} ({margins})" if not failures else f"- {run}: {verdict}")
    lines.append("")
    lines.append("Claim 3: positive <= active and negative <= inactive (the paper: except "
                 "Imagenette ResNet-18 white deletion, where inactive wins).")
    for run, record in records.items():
        auc = record["auc"]
        parts = []
        for signed, rival in (("positive/black", "active/black"),
                              ("negative/white", "inactive/white")):
            holds = auc[signed] <= auc[rival]
            expected = (record["run"], signed) not in PAPER_EXCEPTIONS
            word = "holds" if holds else "does not hold here"
            if expected:
                note = "" if holds else " (in the paper it holds)"
            else:
                note = (" (in the paper it does not)" if holds
                        else " (as in the paper: its exception)")
            parts.append(f"{signed} {auc[signed]:.3f} vs {rival} {auc[rival]:.3f}: {word}{note}")
        lines.append(f"- {run}: " + "; ".join(parts))
    lines.append("")
    lines.append(f"Claim 2: active/inactive curves go flat (change < {FLAT} until 90%) around "
                 "50% (paper's curves: 30-60%), positive/negative around 80%. First flat "
                 "fraction, and the share of pixels really deleted at 90%:")
    for run, record in records.items():
        fractions = record["fractions"]
        parts = []
        for pair in ("active/black", "inactive/white", "positive/black", "negative/white"):
            start = flat_from(fractions, record["curves"][pair])
            where = "not flat" if start is None else f"{start * 100:.0f}%"
            parts.append(f"{pair.split('/')[0]} {where} ({record['deleted'][pair][-1] * 100:.0f}%"
                         " deleted)")
        lines.append(f"- {run}: " + ", ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--out", default=None, help="also write the markdown here")
    args = parser.parse_args(argv)
    records, seeds, torch_records, train_records = {}, {}, {}, {}
    for run in RUNS:
        path = os.path.join(args.results, run, "results.json")
        if os.path.isfile(path):
            records[run] = load(path)
        runs = sorted(glob.glob(os.path.join(args.results, f"{run}_seeds", "*", "results.json")))
        if runs:
            seeds[run] = [load(p) for p in runs]
        path = os.path.join(args.results, f"{run}_torch", "results.json")
        if os.path.isfile(path):
            torch_records[run] = load(path)
        path = os.path.join(args.results, run, "results_train.json")
        if os.path.isfile(path):
            train_records[run] = load(path)
    # A run trained here but not evaluated leaves its history.json only.
    missing = {run: "trained here, not evaluated: see the differences"
               if os.path.isfile(os.path.join(args.results, run, "history.json"))
               else "not run here" for run in RUNS if run not in records}
    lines = paper_tables(records, seeds, torch_records, missing)
    torch_named = {torch_name(run, r): r for run, r in torch_records.items()}
    differences = curve_differences({**records, **torch_named})
    if differences:
        lines += ["", "Allegiance curves against the paper's digitized Figs. 3/4: mean / largest "
                  "absolute difference over the 13 fractions.", ""] + differences
    if train_records:
        lines += ["", "Train split (the paper's Appendix B reports no numbers):", ""]
        lines += train_split_table(train_records)
    checked = dict(records)
    checked.update(torch_named)
    for run, group in seeds.items():
        checked.update({f"{run}, seed {r['seed']} ({r['epochs']} epochs)": r for r in group})
    checked.update({f"{run}, train split": r for run, r in train_records.items()})
    lines += [""] + claims(checked)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
