"""How much closer to IG an empirical explainer gets by also reading backward passes of the classifier.

    python benchmarks/gradient_features.py --train-targets runs/targets/ig-bulk --limit 12000 \
        --cache runs/convergence-ig.json [--explainer empexp/default/empirical-ig]

Features per token: the explainer's score and one-node IG estimates ``g_i`` (the gradient at Gauss-Legendre
node ``i`` of the 20-point rule times input minus baseline, summed over the hidden dimension; one forward
and backward pass each; node 20, alpha = 0.997, is the gradient of the prediction itself). For each set
of features, a linear correction of the explainer's score is fitted by least squares on ``--limit`` texts
of a target folder (IG s = 20), each feature centred per text so that the corrected scores keep the
explainer's sum (completeness). Scored on the dev texts and IG s = 20 targets of a convergence cache
(``benchmarks/convergence.py --cache``), with the same measure and crossover s* as that benchmark.
The explainer has seen the training texts, so its residuals there are smaller than on new texts.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from empexp import load_classifier
from empexp.convergence import load_cache
from empexp.estimators import gauss_legendre, ig_node_estimates
from empexp.explainers.empirical import DEFAULT_EXPLAINERS
from empexp.imitator import ScoreTotals, load_empirical
from empexp.targets import Target, collate_targets, load_targets

FEATURE_SETS = {
    "explainer alone": [],
    "+ node 20 (the prediction's gradient)": [19],
    "+ node 10": [9],
    "+ nodes 10, 20": [9, 19],
    "+ nodes 4, 10, 17": [3, 9, 16],
}
"""Rows: the Gauss-Legendre nodes (0-based indices of the 20-point rule) whose estimates are features."""


def per_text_mean(values: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` ``(tokens, ...)`` over each text's tokens, one row per text."""
    count = torch.zeros(int(text.max()) + 1, dtype=values.dtype).index_add_(
        0, text, torch.ones_like(text, dtype=values.dtype)
    )
    sums = torch.zeros(len(count), *values.shape[1:], dtype=values.dtype).index_add_(0, text, values)
    return sums / count.view(-1, *[1] * (values.dim() - 1))


def centred(values: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``values`` ``(tokens, k)`` minus their mean over each text's tokens."""
    return values - per_text_mean(values, text)[text]


def per_text_mse(scores: torch.Tensor, targets: torch.Tensor, text: torch.Tensor) -> float:
    """The convergence benchmark's measure: per text the mean squared error over real tokens, then the mean."""
    return per_text_mean((scores - targets) ** 2, text).mean().item()


def token_features(classifier, explainer, totals, batches) -> dict[str, torch.Tensor]:
    """Real tokens of every batch: ``features`` (explainer score, then the estimate at every node used),
    ``targets`` (IG s = 20) and ``text`` (which text each token belongs to)."""
    nodes = sorted({n for chosen in FEATURE_SETS.values() for n in chosen})
    rows: dict[str, list[torch.Tensor]] = {"features": [], "targets": [], "text": []}
    first = 0
    for batch in batches:
        real = ~batch.special_tokens_mask
        with torch.no_grad():
            hidden = classifier.prediction_pass(batch, hidden_states=True).hidden_states
            total = totals(batch, batch.logits, batch.predicted)[0]
            columns = [explainer(batch, batch.predicted, hidden, total)]
        for node in nodes:
            chosen = torch.full((len(batch), 1), node)
            columns.append(ig_node_estimates(classifier, batch, batch.predicted, chosen))
        rows["features"].append(torch.stack(columns, -1)[real])
        rows["targets"].append(batch.attributions[real])
        rows["text"].append((first + torch.arange(len(batch))).view(-1, 1).expand_as(real)[real])
        first += len(batch)
    return {name: torch.cat(values) for name, values in rows.items()} | {"nodes": torch.tensor(nodes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-targets", type=Path, required=True, help="a finished IG s = 20 target folder")
    parser.add_argument("--limit", type=int, default=12000, help="fit on the first N texts of it")
    parser.add_argument("--cache", type=Path, required=True, help="a convergence cache (benchmarks/convergence.py)")
    parser.add_argument("--explainer", type=Path, default=DEFAULT_EXPLAINERS / "empirical-ig")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    classifier = load_classifier()
    explainer = load_empirical(args.explainer, classifier).ready()
    totals = ScoreTotals.of(classifier)
    tokenizer = classifier.tokenizer
    collate = partial(collate_targets, pad_token_id=tokenizer.pad_token_id, padding_side=tokenizer.padding_side)

    train, _ = load_targets(args.train_targets)
    train = sorted(train[: args.limit], key=lambda t: len(t.input_ids))  # little padding
    _, curve, dev_targets = load_cache(args.cache)
    dev = []
    for target in dev_targets:
        batch = classifier.collate(classifier.encode([target.text]))
        logits = classifier.logits(batch)[0].float()
        dev.append(
            Target(
                index=len(dev),
                input_ids=batch.input_ids[0],
                special_tokens_mask=batch.special_tokens_mask[0],
                predicted=target.target,
                logits=logits,
                attributions=torch.tensor(target.scores),
                token_type_ids=None if batch.token_type_ids is None else batch.token_type_ids[0],
            )
        )

    def batches(targets, desc):
        chunks = range(0, len(targets), args.batch_size)
        return tqdm((collate(targets[i : i + args.batch_size]) for i in chunks), total=len(chunks), desc=desc)

    fit = token_features(classifier, explainer, totals, batches(train, "training texts"))
    test = token_features(classifier, explainer, totals, batches(dev, "dev texts"))
    alphas, _ = gauss_legendre(20)
    print(f"\nfitted on {len(train)} texts of {args.train_targets}; scored on {len(dev)} texts of {args.cache}")
    print("| features | alphas | extra forward+backward passes | dev MSE vs IG s=20 | s* |")
    print("|---|---|---:|---:|---:|")
    for name, nodes in FEATURE_SETS.items():
        columns = [0] + [1 + fit["nodes"].tolist().index(n) for n in nodes]
        scores = test["features"][:, 0]
        if nodes:
            inputs = centred(fit["features"][:, columns].double(), fit["text"])
            residual = (fit["targets"] - fit["features"][:, 0]).double().unsqueeze(1)
            weights = torch.linalg.lstsq(inputs, residual).solution
            scores = scores + (centred(test["features"][:, columns].double(), test["text"]) @ weights).squeeze(1)
        mse = per_text_mse(scores.float(), test["targets"], test["text"])
        shown = ", ".join(f"{alphas[n]:.3f}" for n in nodes) or "-"
        print(f"| {name} | {shown} | {len(nodes)} | {mse:.4f} | {curve.crossover(mse)} |")
    print("IG s = 6 / 7 / 8 / 12 on these texts: " + " / ".join(f"{curve.mse[s]:.4f}" for s in (6, 7, 8, 12)))


if __name__ == "__main__":
    main()
