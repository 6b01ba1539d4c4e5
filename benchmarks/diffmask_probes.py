"""DiffMask probes on unlabelled texts: per hook point, KL(original || masked), agreement, fraction kept, leakage.

    python benchmarks/diffmask_probes.py --data ../shared/data/sst2/dev.tsv              # embedded input probes
    python benchmarks/diffmask_probes.py --data ../shared/data/sst2/dev.tsv --variant hidden
    python benchmarks/diffmask_probes.py --model ID_OR_DIR --probes ID_OR_DIR --data texts.txt
    python benchmarks/diffmask_probes.py --data ../shared/data/sst2/dev.tsv --record   # into the probes' folder

The training script's validation (the same function), so on the same texts the table repeats the
probes' ``diffmask_metrics.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from torch.utils.data import DataLoader

from empexp import load_classifier
from empexp.cards import write_card
from empexp.data import read_texts
from empexp.explainers.empirical import DEFAULT_EXPLAINERS
from empexp.probes import METRICS, VARIANTS, load_diffmask, validation, validation_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a TSV with a header, or one text per line")
    parser.add_argument("--model", help="the classifier (default: the embedded one)")
    parser.add_argument("--probes", help="DiffMask probes trained for it (default: the embedded ones of --variant)")
    parser.add_argument("--variant", choices=VARIANTS, default="input", help="which embedded probes")
    parser.add_argument("--max-texts", type=int)
    parser.add_argument(
        "--record", action="store_true", help=f"write the measured validation into the probes' {METRICS} and card"
    )
    args = parser.parse_args()
    classifier = load_classifier(args.model)
    source = Path(args.probes or DEFAULT_EXPLAINERS / f"diffmask-{args.variant}")
    probes = load_diffmask(source, classifier)
    texts = read_texts(args.data)
    texts = texts[: args.max_texts]
    loader = DataLoader(classifier.encode(texts), batch_size=64, collate_fn=classifier.collate)
    metrics = validation(probes, classifier, loader)
    print(f"{probes.variant} probes on {len(texts)} texts of {args.data}")
    print()
    print(validation_markdown(metrics))
    if args.record:
        # The training run's step and command stay; the measurements are replaced by these.
        recorded = json.loads((source / METRICS).read_text()) if (source / METRICS).is_file() else {}
        keep = {key: recorded[key] for key in ("step", "args") if key in recorded}
        (source / METRICS).write_text(json.dumps({**metrics, **keep}, indent=2) + "\n")
        print(f"recorded in {source / METRICS} and {write_card(source)}")


if __name__ == "__main__":
    main()
