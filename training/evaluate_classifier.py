"""Accuracy of a classifier (Hub id, folder, or the embedded default) on a labelled TSV.

python training/evaluate_classifier.py --data ../shared/data/sst2/dev.tsv [--model ID_OR_DIR]
"""

from __future__ import annotations

import argparse
import json

from empexp.classifier import load_classifier
from empexp.data import read_tsv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="TSV with a label column and a text column")
    parser.add_argument("--model", help="Hub id or folder; the embedded default when omitted")
    args = parser.parse_args()

    classifier = load_classifier(args.model)
    texts, labels = read_tsv(args.data)
    predictions = classifier.predict(texts)
    correct = sum(p.target == label for p, label in zip(predictions, labels))
    print(
        json.dumps(
            {
                "model": classifier.name_or_path,
                "data": args.data,
                "n": len(labels),
                "accuracy": round(correct / len(labels), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
