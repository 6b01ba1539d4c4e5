"""DiffMask on the paper's toy task, against the known answer: do the probes keep exactly the digits n and m?

    python benchmarks/diffmask_toy.py --seed 0 [--variant hidden] [--restarts 3]

Trains the toy model (seed S), then DiffMask probes from ``--restarts`` seeds, kept by the checkpoint
rule of ``empexp.probes.better``; measures them on 5,000 held-out examples. Prints per hook point
the paper's Table 1 measure (KL and JS between the normalised keep probabilities and the uniform
distribution over the n/m positions; paper: 0.01 and 0.00), precision and recall of the tokens kept
with probability > 0.5, KL(original || masked) with sampled gates, agreement of the masked and
original predictions, and the fraction kept per predicted class (label leakage if they differ). The
last line is one JSON object with those lists and the margin. One torch thread, so a seed gives the
same numbers on any machine.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from empexp import toy
from empexp.probes import VARIANTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="seeds the toy model; probe seeds follow from it")
    parser.add_argument("--variant", choices=VARIANTS, default="hidden")
    parser.add_argument("--restarts", type=int, default=3, help="probe trainings, the best kept")
    parser.add_argument("--steps", type=int, default=7000)
    parser.add_argument("--texts", type=int, default=5000, help="held-out test examples")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    model = toy.train_model(seed=args.seed)
    test = toy.make_data(args.texts, seed=2)  # training data uses seed 0, validation seed 1
    seeds = [args.seed * 100 + i for i in range(args.restarts)]
    probes, info = toy.restarts(model, seeds, variant=args.variant, steps=args.steps)
    quality = toy.mask_quality(probes, model, test)
    print(
        f"toy model seed {args.seed}: accuracy {toy.accuracy(model, test):.4f} on {args.texts} held-out examples; "
        f"{args.variant} probes, seed {info['seed']} of {seeds}; margin {probes.margin}; "
        f"n/m share of digits {quality['chance']:.3f}; {time.perf_counter() - start:.0f} s"
    )
    print()
    print("| hook point | Table 1 KL | Table 1 JS | precision | recall | sampled KL | agreement | kept, class 0 / 1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for i, name in enumerate(toy.POINT_NAMES):
        q = {key: values[i] for key, values in quality.items() if isinstance(values, list) and key != "kept_by_class"}
        by_class = " / ".join(f"{kept[i]:.3f}" for kept in quality["kept_by_class"])
        print(
            f"| {name} | {q['table1_kl']:.4f} | {q['table1_js']:.4f} | {q['precision']:.3f} | {q['recall']:.3f} | "
            f"{q['sampled_kl']:.4f} | {q['agreement']:.4f} | {by_class} |"
        )
    keys = ("table1_kl", "table1_js", "precision", "recall", "sampled_kl", "agreement")
    print(json.dumps({**{key: [round(v, 6) for v in quality[key]] for key in keys}, "margin": probes.margin}))


if __name__ == "__main__":
    main()
