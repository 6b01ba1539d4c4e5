"""Accuracy and F1 (of class 1) of a classifier (Hub id, folder, or the embedded default) on a labelled TSV.

python training/evaluate_classifier.py --data ../shared/data/sst2/dev.tsv [--model ID_OR_DIR]
python training/evaluate_classifier.py --data ../shared/data/mrpc/dev.tsv --model embedded:mrpc   # pairs
"""

from __future__ import annotations

import argparse
import json

from empexp.classifier import load_classifier
from empexp.data import classification_scores, read_tsv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="TSV with a label column and a text column")
    parser.add_argument("--model", help="Hub id or folder; the embedded default when omitted")
    args = parser.parse_args()

    classifier = load_classifier(args.model)
    data = read_tsv(args.data)
    predictions = classifier.predict(data.texts, data.text_pairs)
    scores = classification_scores([p.target for p in predictions], data.labels)
    print(json.dumps({"model": classifier.name_or_path, "data": args.data, "n": len(data.labels), **scores}))


if __name__ == "__main__":
    main()
