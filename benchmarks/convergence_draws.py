"""The convergence benchmark over several draws of texts: each draw's MSE and s*, and all of them pooled.

    python benchmarks/convergence.py --method sv --seed N --cache runs/convergence-sv-seedN.json   # N = 0..3
    python benchmarks/convergence_draws.py runs/convergence-sv-seed{0,1,2,3}.json [--explainer ...]

Reads the caches ``convergence.py --cache`` writes (one per seed, each its own texts and, for SV, its own
permutations), scores the explainers against each one's targets, and prints each explainer's MSE and
crossover s* per draw and pooled: the mean of its MSEs against the mean of the curves (for caches of equally
many texts, the curve of all their texts). A curve's points are one draw of SV at each s, so for SV the table
also gives s* read off its expected error, sigma^2 (1/s + 1/S) per token for S samples in the target (the
permutations are independent), with sigma^2 fitted to each curve's points (least squares of the logarithms).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path
from statistics import fmean as mean

from empexp import get_explainer, load_classifier
from empexp.convergence import Curve, empirical_point, load_cache
from empexp.explainers.empirical import DEFAULT_EXPLAINERS, add_explainer_option


def pooled(curves: list[Curve]) -> Curve:
    """The mean of ``curves`` (one method and sample budget), with their explainers' mean MSEs."""
    curve = replace(
        curves[0],
        texts=sum(c.texts for c in curves),
        mse={s: mean([c.mse[s] for c in curves]) for s in curves[0].mse},
        seconds={s: mean([c.seconds[s] for c in curves]) for s in curves[0].seconds},
        target_mean_square=mean([c.target_mean_square for c in curves]),
        empirical={},
    )
    for name in curves[0].empirical:
        points = [c.empirical[name] for c in curves]
        curve.add_empirical(name, mean([p["mse"] for p in points]), mean([p["seconds"] for p in points]))
    return curve


def expected_sv(curve: Curve) -> Curve:
    """``curve`` with SV's expected error sigma^2 (1/s + 1/S) in place of its drawn points, sigma^2 fitted."""
    shape = {s: 1 / s + 1 / curve.max_samples for s in curve.mse}
    noise = math.exp(sum(math.log(curve.mse[s] / shape[s]) for s in shape) / len(shape))
    fitted = replace(curve, mse={s: noise * shape[s] for s in shape}, empirical={})
    for name, point in curve.empirical.items():
        fitted.add_empirical(name, point["mse"], point["seconds"])
    return fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("caches", type=Path, nargs="+", help="convergence.py --cache files, one per draw")
    parser.add_argument("--model", help="classifier: Hub id or folder (default: the embedded default)")
    add_explainer_option(parser, default="the embedded empirical-METHOD and empirical-METHOD-head")
    args = parser.parse_args()

    classifier = load_classifier(args.model)
    draws = [load_cache(path) for path in args.caches]
    method = draws[0][1].method
    for path, (key, curve, _) in zip(args.caches, draws):
        if key["classifier"] != classifier.identity() or curve.method != method:
            raise SystemExit(f"{path}: another classifier's or method's curve than {args.caches[0]}'s")
    names = (f"empirical-{method}", f"empirical-{method}-head")
    pairs = args.explainer or [(name, str(DEFAULT_EXPLAINERS / name)) for name in names]
    for name, source in pairs:
        explainer = get_explainer(name, classifier, source=source)
        for _, curve, targets in draws:
            curve.add_empirical(name, *empirical_point(explainer, targets))

    curves = [curve for _, curve, _ in draws]
    columns = {f"seed {c.seed}": c for c in curves} | {f"pooled ({sum(c.texts for c in curves)} texts)": pooled(curves)}
    rows = [(name, name, columns) for name, _ in pairs]
    if method == "sv":
        expected = {label: expected_sv(c) for label, c in columns.items()}
        rows += [(f"{name}, s* on SV's expected error", name, expected) for name, _ in pairs]
    m = method.upper()
    print(f"\n{m}: MSE against {m} s={curves[0].max_samples}, s*\n")
    print("| explainer | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for row, name, by_column in rows:
        cells = [f"{c.empirical[name]['mse']:.4f}, {c.empirical[name]['crossover']}" for c in by_column.values()]
        print(f"| {row} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
