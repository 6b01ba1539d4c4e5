"""An empirical explainer's mean token MSE against a folder of targets (from ``generate_targets.py``).

    python benchmarks/target_mse.py --targets runs/targets/ig-val [--explainer empexp/default/empirical-ig] \
        [--model ID_OR_DIR]

The same measure as ``train_empirical.py``'s validation (``empexp.imitator.target_mse``): per text the
mean squared error over real tokens, then the mean over texts; scores made complete when the explainer
does. Use it on targets no run trained on, to compare explainers (or a run's start) on equal terms.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from empexp import load_classifier
from empexp.explainers.empirical import DEFAULT_EXPLAINERS
from empexp.imitator import ScoreTotals, load_empirical, target_mse
from empexp.targets import collate_targets, load_targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=Path, required=True, help="a finished target folder")
    parser.add_argument("--explainer", type=Path, default=DEFAULT_EXPLAINERS / "empirical-ig")
    parser.add_argument("--model", help="the classifier (default: the embedded one)")
    args = parser.parse_args()
    classifier = load_classifier(args.model)
    explainer = load_empirical(args.explainer, classifier)
    targets, metadata = load_targets(args.targets)
    tokenizer = classifier.tokenizer
    collate = partial(collate_targets, pad_token_id=tokenizer.pad_token_id, padding_side=tokenizer.padding_side)
    totals = ScoreTotals(classifier) if explainer.complete else None
    with torch.no_grad():
        errors = torch.cat([
            target_mse(explainer, classifier, batch, reads_hidden_states=explainer.reads_hidden_states, totals=totals)
            for batch in DataLoader(targets, batch_size=64, collate_fn=collate)
        ])  # fmt: skip
    imitated = metadata["explainer"]
    print(
        f"{args.explainer} against {imitated['method'].upper()} s={imitated['samples']} on {len(targets)} targets "
        f"of {args.targets}: MSE {errors.mean().item():.4f}"
    )


if __name__ == "__main__":
    main()
