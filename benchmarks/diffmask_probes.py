"""DiffMask probes on labelled-or-not texts: per hook point, KL(original || masked), agreement, fraction kept.

    python benchmarks/diffmask_probes.py --data ../shared/data/sst2/dev.tsv              # embedded input probes
    python benchmarks/diffmask_probes.py --data ../shared/data/sst2/dev.tsv --variant hidden
    python benchmarks/diffmask_probes.py --model ID_OR_DIR --probes ID_OR_DIR --data texts.txt

Deterministic gates, as in the training script's validation (the same function), so on the same texts
the table repeats the probes' ``diffmask_metrics.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch.utils.data import DataLoader

from empexp import load_classifier
from empexp.data import read_texts
from empexp.diffmask import VARIANTS, load_diffmask, point_names, validation
from empexp.explainers.empirical import DEFAULT_EXPLAINERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a TSV with a header, or one text per line")
    parser.add_argument("--model", help="the classifier (default: the embedded one)")
    parser.add_argument("--probes", help="DiffMask probes trained for it (default: the embedded ones of --variant)")
    parser.add_argument("--variant", choices=VARIANTS, default="input", help="which embedded probes")
    parser.add_argument("--max-texts", type=int)
    args = parser.parse_args()
    classifier = load_classifier(args.model)
    probes = load_diffmask(args.probes or DEFAULT_EXPLAINERS / f"diffmask-{args.variant}", classifier)
    texts = read_texts(args.data)
    texts = texts[: args.max_texts]
    loader = DataLoader(classifier.encode(texts), batch_size=64, collate_fn=classifier.collate)
    metrics = validation(probes, classifier, loader)
    print(f"{probes.variant} probes on {len(texts)} texts of {args.data}, deterministic gates")
    print()
    print("| hook point | KL | agreement | fraction kept |")
    print("|---|---:|---:|---:|")
    for name, kl, agreement, kept in zip(
        point_names(probes.points), metrics["kl"], metrics["agreement"], metrics["kept"]
    ):
        print(f"| {name} | {kl:.4f} | {agreement:.3f} | {kept:.3f} |")


if __name__ == "__main__":
    main()
