"""Validation MSE against the CPU time spent on training labels: the label-cost trade-off, from training runs.

    python benchmarks/label_tradeoff.py runs/tradeoff/run-ig-1 runs/tradeoff/run-ig-20 [--budgets 5 10 15]

Each argument is a ``--run-dir`` of ``training/train_empirical.py``: its log records, at every validation,
the CPU time its labels had cost so far (drawn on the fly: growing with the steps; exact targets: what
generating all of them took, recorded by ``generate_targets.py``). Per run and budget, the table gives the
best validation MSE among the validations whose labels had cost at most that many CPU minutes ("-": none
had, e.g. exact targets cost more). Training's own compute is not counted. The runs should validate on
the same targets (``--val-targets``) to be comparable: the script says which they used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from empexp.imitator import TRAINING_METRICS
from empexp.targets import CPU_SECONDS, read_index


def label_kind(args: dict) -> str:
    """What a run's labels were, from its recorded arguments."""
    if args["data"]:
        method = read_index(args["val_targets"])["explainer"]["method"]
        draws, unit = (args["nodes"], "drawn node") if method == "ig" else (args["permutations"], "permutation")
        return f"{method.upper()}, {draws} {unit}{'s' * (draws > 1)} per text, on the fly"
    meta = [read_index(folder) for folder in args["targets"]]
    texts = sum(m["num_instances"] for m in meta)
    return f"{meta[0]['explainer']['method'].upper()} s={meta[0]['explainer']['samples']}, {texts} exact targets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders of train_empirical.py")
    parser.add_argument("--budgets", type=float, nargs="+", default=[2.5, 5, 10, 15], help="CPU minutes of labels")
    args = parser.parse_args()

    rows, validated_on = [], set()
    for run in args.runs:
        recorded = json.loads((run / "best" / TRAINING_METRICS).read_text())["args"]  # the exported one's
        validated_on.add(recorded["val_targets"] or f"{run}'s own split")
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        if any(record.get(CPU_SECONDS) is None for record in log):
            raise SystemExit(f"{run}: its log does not record what the labels cost (run before it was recorded)")
        cells = []
        for budget in args.budgets:
            within = [r["val_mse"] for r in log if r[CPU_SECONDS] <= 60 * budget]
            cells.append(f"{min(within):.4f}" if within else "-")
        best = min(log, key=lambda r: r["val_mse"])
        end = f"{best['val_mse']:.4f} at {best[CPU_SECONDS] / 60:.1f} min, step {best['step']}"
        rows.append((label_kind(recorded), cells, f"{log[-1][CPU_SECONDS] / 60:.1f}", log[-1]["step"], end))

    print(f"\nValidation MSE on {', '.join(sorted(validated_on))}; budgets in CPU minutes of labels\n")
    print(f"| labels | {' | '.join(f'<= {b:g} min' for b in args.budgets)} | labels' CPU min | steps | best |")
    print(f"|---|{'---:|' * len(args.budgets)}---:|---:|---|")
    for kind, cells, minutes, steps, end in rows:
        print(f"| {kind} | {' | '.join(cells)} | {minutes} | {steps} | {end} |")


if __name__ == "__main__":
    main()
