"""Write DiffMask's toy task (is digit n more frequent than m?) and an untrained classifier for it.

    python training/toy_task.py --output-dir runs/toy
    accelerate launch training/train_classifier.py --full --data-dir runs/toy/data \
        --base-path runs/toy/untrained --base runs/toy/untrained --labels "n not more frequent" "n more frequent" \
        --output-dir runs/toy/classifier --run-dir runs/toy/classifier-run --lr 1e-3 --warmup 0 \
        --weight-decay 0 --epochs 6 --batch-size 64
    accelerate launch training/train_diffmask.py --model runs/toy/classifier --data runs/toy/data/train.tsv \
        --dev runs/toy/data/dev.tsv --output-dir runs/toy/diffmask-input --steps 3000 --batch-size 64 --lr 1e-3
    python benchmarks/diffmask_toy.py --model runs/toy/classifier --probes runs/toy/diffmask-input

``train.tsv``, ``dev.tsv`` and ``test.tsv`` (held out, for the benchmark) come from disjoint seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from empexp import toy

SPLITS = {"train": (20000, 0), "dev": (1000, 1), "test": (1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = args.output_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    for split, (count, seed) in SPLITS.items():
        texts, labels = toy.make_examples(count, seed=1000 * args.seed + seed)
        rows = ["label\tsentence"] + [f"{label}\t{text}" for text, label in zip(texts, labels)]
        (data / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    model = toy.untrained_classifier(hidden_size=args.hidden_size, layers=args.layers, seed=args.seed)
    model.save_pretrained(args.output_dir / "untrained")
    toy.tokenizer().save_pretrained(args.output_dir / "untrained")
    print(f"wrote {data} and {args.output_dir / 'untrained'}")


if __name__ == "__main__":
    main()
