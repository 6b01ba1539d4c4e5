"""DiffMask probes on unlabelled texts: per hook point, KL(original || masked), agreement, fraction kept, leakage.

    python benchmarks/diffmask_probes.py --data ../shared/data/sst2/dev.tsv              # embedded input probes
    python benchmarks/diffmask_probes.py --data ../shared/data/sst2/dev.tsv --variant hidden
    python benchmarks/diffmask_probes.py --model ID_OR_DIR --probes ID_OR_DIR --data texts.txt
    python benchmarks/diffmask_probes.py --data ../shared/data/sst2/dev.tsv --record   # into the probes' folder
    python benchmarks/diffmask_probes.py --data ../shared/data/sst2/dev.tsv --variant hidden \
        --seeds DIR_SEED_1 DIR_SEED_2                   # and the keep rates' spread across seeds
    python benchmarks/diffmask_probes.py --model embedded:mrpc --probes DIR --variant hidden \
        --data ../shared/data/mrpc/dev.tsv                                                # text pairs

The training script's validation (the same function), so on the same texts the table repeats the
probes' ``diffmask_metrics.json``. A second table is the leakage check per text: how well a text's keep
rate and its fraction of tokens kept at each point tell the predicted class (AUC; 0.5 for a mask that does
not encode it), and the fraction kept per predicted class. On text pairs
a third splits each hook point's keep rate by text (first, second) and by word: words that occur in both
texts of the pair, and words of one text only.
With ``--seeds``, probes of the same variant trained with other seeds: per hook point, the standard
deviation of a token's keep probability across all the runs (``empexp.probes.keep_spread``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from empexp import Explanation, get_explainer, load_classifier
from empexp.cards import write_card
from empexp.data import read_instances
from empexp.explainers.empirical import DEFAULT_EXPLAINERS
from empexp.probes import (
    METRICS,
    RUN_RECORD,
    VARIANTS,
    keep_spread,
    load_diffmask,
    point_names,
    validation,
    validation_markdown,
)
from empexp.words import words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a TSV with a header, or one text per line")
    parser.add_argument("--model", help="the classifier (default: the embedded one)")
    parser.add_argument("--probes", help="DiffMask probes trained for it (default: the embedded ones of --variant)")
    parser.add_argument("--variant", choices=VARIANTS, default="input", help="which embedded probes")
    parser.add_argument("--seeds", nargs="+", default=[], help="the same probes trained with other seeds")
    parser.add_argument("--max-texts", type=int)
    parser.add_argument(
        "--record", action="store_true", help=f"write the measured validation into the probes' {METRICS} and card"
    )
    args = parser.parse_args()
    classifier = load_classifier(args.model)
    source = Path(args.probes or DEFAULT_EXPLAINERS / f"diffmask-{args.variant}")
    probes = load_diffmask(source, classifier)
    texts, text_pairs = read_instances(args.data)
    texts, text_pairs = texts[: args.max_texts], text_pairs and text_pairs[: args.max_texts]
    loader = DataLoader(classifier.encode(texts, text_pairs), batch_size=64, collate_fn=classifier.collate)
    metrics = validation(probes, classifier, loader)
    print(f"{probes.variant} probes on {len(texts)} {'pairs' if text_pairs else 'texts'} of {args.data}")
    print()
    print(validation_markdown(metrics))
    print()
    print(class_separation(metrics, classifier.labels))
    if text_pairs:
        explainer = get_explainer(f"diffmask-{probes.variant}", classifier, source=source)
        print()
        print(pair_keep_rates(explainer.explain(texts, text_pairs)))
    if args.seeds:
        runs = [probes, *(load_diffmask(path, classifier) for path in args.seeds)]
        spread = keep_spread(runs, classifier, loader)
        print()
        print(f"Keep probability's standard deviation across {len(runs)} runs (mean over gated tokens)")
        print()
        print("| hook point | std |\n|---|---:|")
        print("\n".join(f"| {name} | {value:.4f} |" for name, value in zip(point_names(len(spread)), spread)))
        print(f"| mean over points | {sum(spread) / len(spread):.4f} |")
    if args.record:
        # The training run's step and command stay; the measurements are replaced by these.
        recorded = json.loads((source / METRICS).read_text()) if (source / METRICS).is_file() else {}
        keep = {key: recorded[key] for key in RUN_RECORD if key in recorded}
        (source / METRICS).write_text(json.dumps({**metrics, **keep}, indent=2) + "\n")
        print(f"recorded in {source / METRICS} and {write_card(source)}")


def class_separation(metrics: dict, labels: list[str]) -> str:
    """A Markdown table of the validation's per-text leakage check: per hook point, how well a text's keep rate
    (``l0_class_auc``) and the fraction of its tokens kept (``kept_class_auc``) tell which class was predicted,
    and the fraction kept per predicted class (``kept_by_class``)."""
    if metrics["l0_class_auc"] is None:
        return "Leakage: every text was predicted the same class, so there is no class to tell apart"
    lines = [f"Leakage: per text, against the predicted class: AUC ({labels[0]} above the rest), and the fraction "
             "kept per predicted class", "", "| hook point | AUC of the keep rate | AUC of the fraction kept | "
             "fraction kept per predicted class |", "|---|---:|---:|---:|"]  # fmt: skip
    names = point_names(len(metrics["l0_class_auc"]))
    by_class = zip(*(row or [float("nan")] * len(names) for row in metrics["kept_by_class"]))
    rows = zip(names, metrics["l0_class_auc"], metrics["kept_class_auc"], by_class)
    lines += [f"| {name} | {rate:.3f} | {kept:.3f} | {' / '.join(f'{v:.3f}' for v in means)} |"
              for name, rate, kept, means in rows]  # fmt: skip
    return "\n".join(lines)


def pair_keep_rates(explanations: list[Explanation]) -> str:
    """A Markdown table: per hook point, the mean keep probability of each text's words, and of the words
    found in both texts of their pair (case-insensitive) against those of one text only."""
    groups = {"first text": [], "second text": [], "shared words": [], "words of one text": []}
    for explanation in (words(e) for e in explanations):
        real = [i for i, offset in enumerate(explanation.offsets) if offset is not None]
        vocabulary = [{explanation.tokens[i].lower() for i in real if explanation.segment[i] == s} for s in (0, 1)]
        keep = torch.tensor(explanation.layer_scores)  # (points, words)
        for i in real:
            side = explanation.segment[i]
            shared = explanation.tokens[i].lower() in vocabulary[1 - side]
            groups[("first text", "second text")[side]].append(keep[:, i])
            groups["shared words" if shared else "words of one text"].append(keep[:, i])
    names = explanations[0].details["layer_names"]
    means = {group: torch.stack(rows).mean(0).tolist() for group, rows in groups.items() if rows}
    counts = " · ".join(f"{group}: {len(rows)}" for group, rows in groups.items())
    lines = [f"Keep rate by text and by word ({counts} words)", "", "| hook point | " + " | ".join(means) + " |",
             "|---|" + "---:|" * len(means)]  # fmt: skip
    lines += [f"| {name} | " + " | ".join(f"{means[g][p]:.3f}" for g in means) + " |" for p, name in enumerate(names)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
