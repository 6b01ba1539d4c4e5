"""Cost of prediction, IG and SV on the embedded default, one text at a time and batched.

    python benchmarks/explainer_cost.py [--data ../shared/data/sst2/dev.tsv] [--n 100] [--samples 20]

Prints a Markdown table: time per text, its ratio to one forward pass (measured in the same run),
and model passes per text. Absolute times on shared machines are noise; compare the ratios.
"""

from __future__ import annotations

import argparse
import time

import torch

from empexp import get_explainer, load_classifier
from empexp.data import read_tsv


def time_per_text(run, texts: list[str]) -> float:
    run(texts[:2])  # warm-up: allocator, kernels, lazy imports
    start = time.perf_counter()
    run(texts)
    return (time.perf_counter() - start) / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/sst2/dev.tsv")
    parser.add_argument("--n", type=int, default=100, help="number of texts (the first N of --data)")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--model", help="Hub id or folder (default: the embedded default)")
    args = parser.parse_args()

    classifier = load_classifier(args.model)
    texts = read_tsv(args.data)[0][: args.n]
    s = args.samples

    def predict(batch_size: int):
        return lambda chunk: classifier.predict(chunk, batch_size=batch_size)

    def explain(name: str, **options):
        explainer = get_explainer(name, classifier, **options)
        passes: list[float] = []

        def run(chunk):
            passes[:] = [e.forward_passes for e in explainer.explain(chunk)]

        return run, passes

    rows = [
        ("forward (predict), one at a time", predict(1), None),
        ("forward (predict), batches of 32", predict(32), None),
    ]
    strategies = [
        (f"IG s={s}, one at a time", "ig", {"samples": s, "batch_size": 1}),
        (f"IG s={s}, batches of 8 of equal length", "ig", {"samples": s, "batch_size": 8, "pad_batches": False}),
        (f"IG s={s}, batches of 8, padded", "ig", {"samples": s, "batch_size": 8, "pad_batches": True}),
        (f"SV s={s}, one at a time", "sv", {"samples": s, "batch_size": 1}),
        (f"SV s={s}, batches of 8 of equal length", "sv", {"samples": s, "batch_size": 8}),
    ]  # fmt: skip
    for label, name, options in strategies:
        run, passes = explain(name, **options)
        rows.append((label, run, passes))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {classifier.device}, "
          f"{len(texts)} texts from {args.data}\n")  # fmt: skip
    print("| what | ms per text | x forward pass | model passes per text |")
    print("|---|---:|---:|---:|")
    forward = None
    for label, run, passes in rows:
        seconds = time_per_text(run, texts)
        forward = forward or seconds
        mean_passes = f"{sum(passes) / len(passes):.1f}" if passes else "1"
        print(f"| {label} | {seconds * 1000:.1f} | {seconds / forward:.1f} | {mean_passes} |", flush=True)


if __name__ == "__main__":
    main()
