"""What training labels cost and how noisy they are: IG with 1/2/4 drawn nodes or 20 steps, SV with 1/2/20 permutations.

    python benchmarks/label_cost.py [--data ../shared/data/sst2/dev.tsv] [--n 50] [--reference 200]

Per label kind, on the same texts, one text at a time on one thread: model passes and CPU ms per text,
and the label's noise, its mean token MSE against what it estimates (IG: IG with 20 Gauss-Legendre
steps; SV: a ``--reference``-permutation estimate, independent draws). Stochastic amortization (Covert et
al., 2024) trains on noisy unbiased labels: at a fixed labelling budget the noise an explainer has to
average out scales with noise x cost per label, the last column (lower is better; exact IG has none).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from empexp import get_explainer, load_classifier
from empexp.classifier import Batch, PredictionPass
from empexp.data import read_instances, select_texts
from empexp.estimators import draw_nodes, draw_permutations, ig_node_estimates, sv_permutation_estimates
from empexp.imitator import token_mse

Label = Callable[[Batch, PredictionPass], torch.Tensor]
"""A label for one text: from its batch and its prediction pass, scores ``(1, tokens)``."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/sst2/dev.tsv")
    parser.add_argument("--n", type=int, default=50, help="texts drawn (seeded) from --data")
    parser.add_argument("--reference", type=int, default=200, help="SV permutations of the reference")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    classifier = load_classifier()
    texts, _ = select_texts(read_instances(args.data)[0], limit=args.n, seed=args.seed)
    batches = [classifier.collate(classifier.encode([text])) for text in texts]
    # Every label starts from the same prediction pass, run once here (not timed).
    instances = [(batch, classifier.prediction_pass(batch)) for batch in batches]
    ig = get_explainer("ig", classifier, samples=20)

    def exact_ig(batch: Batch, prediction: PredictionPass) -> torch.Tensor:  # what generate_targets.py writes
        return ig.attribute(batch, prediction).scores

    def nodes(k: int) -> Label:
        return lambda batch, prediction: ig_node_estimates(classifier, batch, prediction.targets, draw_nodes(1, k))

    def permutations(k: int) -> Label:
        def estimate(batch: Batch, prediction: PredictionPass) -> torch.Tensor:
            n = int((~batch.special_tokens_mask).sum())
            return sv_permutation_estimates(classifier, batch, prediction.targets, draw_permutations(1, n, k))

        return estimate

    tokens = sum(int((~b.special_tokens_mask).sum()) for b in batches) / len(texts)
    ig_labels = [(f"{k} drawn node{'s' * (k > 1)}", f"{k} fwd+bwd", nodes(k)) for k in (1, 2, 4)]
    sv_labels = [
        (f"{k} permutation{'s' * (k > 1)}", f"{k * (tokens + 1):.0f} fwd", permutations(k)) for k in (1, 2, 20)
    ]
    kinds = {
        "IG": (exact_ig, [*ig_labels, ("20 steps (exact)", "20 fwd+bwd", None)]),
        "SV": (permutations(args.reference), sv_labels),
    }
    rows = []
    for method, (reference_label, labels) in kinds.items():
        reference = [reference_label(*instance) for instance in instances]
        for name, passes, label in labels:
            start = time.perf_counter()
            drawn = [(label or exact_ig)(*instance) for instance in instances]
            ms = 1000 * (time.perf_counter() - start) / len(texts)
            noise = 0.0 if label is None else sum(
                token_mse(d, r, batch.special_tokens_mask).item() for d, r, batch in zip(drawn, reference, batches)
            ) / len(texts)  # fmt: skip
            rows.append((f"{method} {name}", passes, ms, noise))

    reference = f"SV against {args.reference} permutations"
    print(f"\nLabels on {len(texts)} texts of {args.data} (one thread; IG against IG with 20 steps, {reference})\n")
    print("| label | passes per text | CPU ms per text | noise (token MSE) | noise x ms |")
    print("|---|---|---:|---:|---:|")
    for name, passes, ms, noise in rows:
        print(f"| {name} | {passes} | {ms:.1f} | {noise:.4f} | {noise * ms:.2f} |")


if __name__ == "__main__":
    main()
