"""AOPC comprehensiveness and sufficiency of every explainer on the embedded default, over SST-2 dev.

    python benchmarks/faithfulness.py [--data ../shared/data/sst2/dev.tsv] [--n N] [--samples 20] [--seed 0]
    python benchmarks/faithfulness.py --only diffmask-input diffmask-hidden     # some rows (and random's)

Prints a Markdown table: per explainer, the mean AOPC comprehensiveness (higher is better) and
sufficiency (lower is better) over the texts with a 95% interval (mean +- 1.96 standard errors), for
k = 10%, ..., 100% of the tokens replaced by the pad token (see ``empexp.faithfulness``). A row of
random scores (seeded) is the floor every explainer should clear. One run, seeded: SV's permutations
and the random scores use ``--seed``; the random row depends only on the texts and the seed, so a run
with ``--only`` repeats it.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace

import torch
from tqdm.auto import tqdm

from empexp import get_explainer, load_classifier
from empexp.data import read_tsv
from empexp.errors import EmpexpError
from empexp.explainers import explainer_class, list_explainers
from empexp.explainers.attention import AGGREGATIONS
from empexp.explanation import Explanation
from empexp.faithfulness import METRICS, aopc


def random_scores(explanations: list[Explanation], seed: int) -> list[Explanation]:
    """The same explanations with uniform random scores on their non-special tokens."""
    generator = torch.Generator().manual_seed(seed)
    randomised = []
    for e in explanations:
        scores = torch.rand(len(e.scores), generator=generator)
        scores = [float(s) if offset is not None else 0.0 for s, offset in zip(scores, e.offsets)]
        randomised.append(replace(e, scores=scores, method="random"))
    return randomised


def interval(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))
    half = 1.96 * sd / math.sqrt(len(values))
    return f"{mean:.3f} [{mean - half:.3f}, {mean + half:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/sst2/dev.tsv")
    parser.add_argument("--n", type=int, help="the first N texts of --data (default: all)")
    parser.add_argument("--samples", type=int, default=20, help="IG steps and SV permutations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", metavar="ROW", help="score only these rows (names as printed)")
    args = parser.parse_args()

    classifier = load_classifier()
    texts = read_tsv(args.data).texts[: args.n]
    s = args.samples
    # Rows as (method, options), built only once chosen: --only loads no other explainer's weights.
    trained = [n for kind in ("empirical", "diffmask") for n in list_explainers() if explainer_class(n).kind == kind]
    rows = {
        f"ig (s={s})": ("ig", {"samples": s}),
        f"sv (s={s})": ("sv", {"samples": s, "seed": args.seed}),
        **{name: (name, {}) for name in trained},
        **{f"attention ({how})": ("attention", {"aggregation": how}) for how in AGGREGATIONS},
    }
    if args.only:
        unknown = set(args.only) - set(rows)
        if unknown:
            parser.error(f"no rows named {sorted(unknown)}; rows: {list(rows)}")
        rows = {name: rows[name] for name in args.only}
    explainers = {}
    for name, (method, options) in rows.items():
        try:
            explainers[name] = get_explainer(method, classifier, **options)
        except EmpexpError as error:
            print(f"({name} skipped: {error})")

    explanations: dict[str, list[Explanation]] = {}
    for name, explainer in explainers.items():
        explanations[name] = [
            e
            for start in tqdm(range(0, len(texts), 32), desc=name, unit="batch")
            for e in explainer.explain(texts[start : start + 32])
        ]
    explanations["random"] = random_scores(next(iter(explanations.values())), args.seed)

    scores: dict[str, list[dict[str, float]]] = {name: [] for name in explanations}
    for i in tqdm(range(len(texts)), desc="AOPC", unit="text"):
        # One call per text: its perturbations are shared by every explainer that ranks tokens alike.
        per_text = aopc(classifier, [explanations[name][i] for name in explanations])
        for name, result in zip(explanations, per_text):
            scores[name].append(result)

    print(
        f"\n{len(texts)} texts from {args.data}, AOPC over k = 10%, ..., 100% (pad-token baseline), seed {args.seed}\n"
    )
    print("| explainer | " + " | ".join(f"AOPC {m.name} ({m.direction}), mean [95% CI]" for m in METRICS) + " |")
    print("|---|" + "---:|" * len(METRICS))
    for name, results in scores.items():
        print(f"| {name} | " + " | ".join(interval([r[m.name] for r in results]) for m in METRICS) + " |")


if __name__ == "__main__":
    main()
