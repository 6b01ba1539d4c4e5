"""Convergence curves: IG (or SV) with s = 1..19 samples against s = 20, next to empirical explainers.

    python benchmarks/convergence.py --method ig [--data ../shared/data/sst2/dev.tsv] [--limit 150] \\
        [--explainer empirical-ig=FOLDER ...] [--plot runs/convergence-ig.png] [--record]
    python benchmarks/convergence.py --method ig --pseudo-documents 20   # long texts: dev sentences joined

Prints a Markdown table (mean per-instance MSE over real tokens, seconds per text), each empirical
explainer's MSE and crossover s* (the smallest s whose MSE is below it; s* = 20 means below every
s = 1..19), and saves the paper's figure. ``--record`` writes the curve as ``convergence.json`` into
each explainer folder, where the app reads it. Same seed, same texts and same SV permutations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm.auto import tqdm

from empexp import get_explainer, load_classifier
from empexp.cards import DEFAULT_DATASET, write_card
from empexp.convergence import CURVE_FILE, empirical_point, expensive_curve, load_cache, plot, save_cache
from empexp.data import pseudo_documents, read_instances, read_texts, select_texts
from empexp.explainers.empirical import DEFAULT_EXPLAINERS, add_explainer_option


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=["ig", "sv"], required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sst2/dev.tsv"), help="TSV or text lines")
    parser.add_argument("--limit", type=int, default=150, help="texts drawn (seeded) from --data")
    parser.add_argument("--seed", type=int, default=0, help="draws the texts and seeds SV")
    parser.add_argument(
        "--pseudo-documents",
        type=int,
        help="instead: N long texts, texts of --data joined to 75-300 words (~100-400 word pieces)",
    )
    parser.add_argument("--max-samples", type=int, default=20)
    parser.add_argument("--model", help="classifier: Hub id or folder (default: the embedded default)")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda (default: cpu)")
    add_explainer_option(parser, default="the embedded empirical-METHOD and empirical-METHOD-head")
    parser.add_argument("--plot", type=Path, help="PNG path (default: runs/convergence-METHOD.png)")
    parser.add_argument("--record", action="store_true", help=f"write {CURVE_FILE} into each explainer folder")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id of --data, for the recorded cards")
    parser.add_argument(
        "--cache",
        type=Path,
        help="JSON file keeping the expensive curve and its targets: reused when the settings match, so "
        "other explainers can be compared without recomputing IG or SV",
    )
    args = parser.parse_args()

    classifier = load_classifier(args.model, device=args.device)
    if args.pseudo_documents:
        texts = pseudo_documents(read_texts(args.data), args.pseudo_documents, words=(75, 300), seed=args.seed)
        text_pairs = None
    else:
        texts, text_pairs = select_texts(*read_instances(args.data), limit=args.limit, seed=args.seed)
    pairs = args.explainer or [
        (name, str(DEFAULT_EXPLAINERS / name)) for name in (f"empirical-{args.method}", f"empirical-{args.method}-head")
    ]
    explainers = {}
    for name, source in pairs:
        if not Path(source).exists() and source.startswith(str(DEFAULT_EXPLAINERS)):
            print(f"({name}: no embedded explainer yet, skipped)")
            continue
        explainers[name] = (get_explainer(name, classifier, source=source), source)

    key = {"classifier": classifier.identity(), "texts": texts, "text_pairs": text_pairs, "method": args.method,
           "seed": args.seed, "max_samples": args.max_samples}  # fmt: skip
    cached = load_cache(args.cache) if args.cache and args.cache.is_file() else None
    if cached and cached[0] == key:
        _, curve, targets = cached
    else:
        curve, targets = expensive_curve(
            classifier, texts, args.method, text_pairs=text_pairs, max_samples=args.max_samples, seed=args.seed,
            progress=tqdm,
        )  # fmt: skip
        if args.cache:
            save_cache(args.cache, key, curve, targets)
    for name, (explainer, _) in explainers.items():
        curve.add_empirical(name, *empirical_point(explainer, targets))

    m, top = args.method.upper(), args.max_samples
    print(
        f"\n{m} convergence on {len(texts)} texts of {args.data.name} (seed {args.seed}); "
        f"targets' mean square {curve.target_mean_square:.4f}\n"
    )
    print(f"| explainer | MSE against {m} s={top} | ms per text |")
    print("|---|---:|---:|")
    for s in sorted(curve.mse):
        print(f"| {m} s={s} | {curve.mse[s]:.5f} | {1000 * curve.seconds[s]:.1f} |")
    for name, point in curve.empirical.items():
        print(f"| {name} | {point['mse']:.5f} | {1000 * point['seconds']:.1f} |")
    print()
    for name, point in curve.empirical.items():
        beaten = "below every s" if point["crossover"] == top else f"{m} needs s = {point['crossover']} to beat it"
        print(f"{name}: crossover s* = {point['crossover']} ({beaten})")

    path = args.plot or Path("runs") / f"convergence-{args.method}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    plot(curve, title=f"{m} convergence, {len(texts)} texts of {args.data.name}").savefig(path, dpi=120)
    print(f"plot: {path}")
    if args.record:
        for _, source in explainers.values():
            if Path(source).is_dir():
                (Path(source) / CURVE_FILE).write_text(curve.to_json())
                print(f"recorded in {Path(source) / CURVE_FILE} and {write_card(source, dataset=args.dataset)}")


if __name__ == "__main__":
    main()
