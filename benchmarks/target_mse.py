"""An empirical explainer's mean token MSE against a folder of targets (from ``generate_targets.py``).

    python benchmarks/target_mse.py --targets runs/targets/ig-val [--explainer empexp/default/empirical-ig] \
        [--model ID_OR_DIR]
    python benchmarks/target_mse.py --targets runs/targets/sv-val --estimates runs/targets/sv-val-redraw

The same measure as ``train_empirical.py``'s validation (``empexp.imitator.target_mse``): per text the
mean squared error over real tokens, then the mean over texts; scores made complete when the explainer
does. Use it on targets no run trained on, to compare explainers (or a run's start) on equal terms.
``--estimates`` scores another target folder of the same texts instead of an explainer: the expensive
method itself against another draw or a reference (SV s = 20 of the same texts with independent
permutations, from ``generate_targets.py --sv-seed``; or SV with many more permutations). ``--by-length``
adds the MSE per quarter of the texts by length (real tokens), the same quarters for every scored folder
or explainer, to see where an explainer falls behind the expensive method.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from empexp import load_classifier
from empexp.errors import InputError
from empexp.explainers.empirical import DEFAULT_EXPLAINERS
from empexp.imitator import ScoreTotals, load_empirical, target_mse, token_mse
from empexp.targets import Target, collate_targets, load_targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=Path, required=True, help="a finished target folder")
    scored = parser.add_mutually_exclusive_group()
    scored.add_argument("--explainer", type=Path, default=DEFAULT_EXPLAINERS / "empirical-ig")
    scored.add_argument("--estimates", type=Path, help="a target folder of the same texts, scored instead")
    parser.add_argument("--model", help="the classifier (default: the embedded one)")
    parser.add_argument("--by-length", action="store_true", help="also the MSE per length quarter of the texts")
    args = parser.parse_args()
    targets, metadata = load_targets(args.targets)
    imitated = metadata["explainer"]
    if args.estimates:
        errors, scored_name = estimates_mse(targets, args.estimates), args.estimates
    else:
        errors, scored_name = explainer_mse(targets, args.explainer, args.model), args.explainer
    print(
        f"{scored_name} against {imitated['method'].upper()} s={imitated['samples']} on {len(targets)} targets "
        f"of {args.targets}: MSE {errors.mean().item():.4f}"
    )
    if args.by_length:
        lengths = torch.tensor([int((~t.special_tokens_mask).sum()) for t in targets])
        print("\n| real tokens | texts | MSE |\n|---|---:|---:|")
        # A stable sort, so ties split the same way for every scored folder or explainer.
        for quarter in torch.argsort(lengths, stable=True).tensor_split(min(4, len(targets))):
            span = f"{lengths[quarter].min().item()}-{lengths[quarter].max().item()}"
            print(f"| {span} | {len(quarter)} | {errors[quarter].mean().item():.4f} |")


def estimates_mse(targets: list[Target], folder: Path) -> torch.Tensor:
    """Per text, the mean token MSE of another target folder's attributions of the same texts."""
    estimates, _ = load_targets(folder)
    if [t.input_ids.tolist() for t in estimates] != [t.input_ids.tolist() for t in targets]:
        raise InputError(f"{folder} does not hold the same texts, in the same order, as the targets")
    errors = [
        token_mse(e.attributions[None], t.attributions[None], t.special_tokens_mask[None])
        for e, t in zip(estimates, targets)
    ]
    return torch.cat(errors)


def explainer_mse(targets: list[Target], source: Path, model: str | None) -> torch.Tensor:
    """Per text, the mean token MSE of the empirical explainer in ``source``."""
    classifier = load_classifier(model)
    explainer = load_empirical(source, classifier)
    tokenizer = classifier.tokenizer
    collate = partial(collate_targets, pad_token_id=tokenizer.pad_token_id, padding_side=tokenizer.padding_side)
    totals = ScoreTotals(classifier) if explainer.complete else None
    with torch.no_grad():
        return torch.cat([
            target_mse(explainer, classifier, batch, reads_hidden_states=explainer.reads_hidden_states, totals=totals)
            for batch in DataLoader(targets, batch_size=64, collate_fn=collate)
        ])  # fmt: skip


if __name__ == "__main__":
    main()
