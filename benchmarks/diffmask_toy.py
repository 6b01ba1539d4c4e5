"""DiffMask on the toy task, against the known answer: do the probes keep exactly the digits n and m?

    python benchmarks/diffmask_toy.py --model runs/toy/classifier --probes runs/toy/diffmask-input

Prints, per hook point, on held-out toy texts (seed 2, never trained on): the precision of the kept
tokens (fraction that are n or m), the recall (fraction of n/m occurrences kept), KL(original ||
masked) and agreement, with the precision of keeping tokens at random. See training/toy_task.py for
how the classifier and probes are made.
"""

from __future__ import annotations

import argparse

from empexp import load_classifier, toy
from empexp.diffmask import load_diffmask, point_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the toy classifier")
    parser.add_argument("--probes", required=True, help="DiffMask probes trained for it")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2, help="toy data seed (training used 0, validation 1)")
    args = parser.parse_args()
    classifier = load_classifier(args.model)
    probes = load_diffmask(args.probes, classifier)
    texts, labels = toy.make_examples(args.texts, seed=args.seed)
    accuracy = sum(p.target == y for p, y in zip(classifier.predict(texts), labels)) / len(labels)
    quality = toy.mask_quality(probes, classifier, texts)
    print(f"toy classifier accuracy {accuracy:.4f} on {len(texts)} held-out texts; variant {probes.variant}")
    print(f"random keeping: precision {quality['chance']:.3f}")
    print()
    print("| hook point | kept that are n/m | n/m kept | KL | agreement |")
    print("|---|---:|---:|---:|---:|")
    names = point_names(probes.points)
    for i, name in enumerate(names):
        print(
            f"| {name} | {quality['precision'][i]:.3f} | {quality['recall'][i]:.3f} | "
            f"{quality['kl'][i]:.4f} | {quality['agreement'][i]:.3f} |"
        )


if __name__ == "__main__":
    main()
