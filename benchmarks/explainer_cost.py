"""Cost of prediction, empirical explainers, IG and SV on the embedded default, side by side in one run.

    python benchmarks/explainer_cost.py [--data ../shared/data/sst2/dev.tsv] [--n 50] [--samples 20] [--methods ig sv]

Prints Markdown tables: time per text, its ratio to one classifier forward pass, and model passes per
text; then the speed-up of each empirical explainer, one text at a time (as the app) and in the chunks
of texts per call that ``empexp explain`` reads a file in, over IG and SV in their fastest mode on this
device, and over the paper's setting (one text, one perturbation per model pass). Every row runs on the
same texts in the same process. Absolute times on shared machines are noise; compare the ratios.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from empexp import get_explainer, load_classifier
from empexp.classifier import Batch, PredictionPass
from empexp.cli import CHUNK
from empexp.data import read_tsv
from empexp.explainers import explainer_class, list_explainers
from empexp.imitator import ScoreTotals

AS_CLI = f"explain(), {CHUNK} texts per call, its default batches (as empexp explain)"
EMPIRICAL = [name for name in list_explainers() if explainer_class(name).kind == "empirical"]


def time_per_text(run: Callable[[list[str]], object], texts: list[str]) -> float:
    start = time.perf_counter()
    run(texts)
    return (time.perf_counter() - start) / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/sst2/dev.tsv")
    parser.add_argument("--n", type=int, default=50, help="number of texts (the first N of --data)")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every row; each keeps its fastest")
    parser.add_argument("--model", help="Hub id or folder (default: the embedded default, with its explainers)")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=["ig", "sv"],
        default=["ig", "sv"],
        help="expensive methods timed, and their imitators",
    )
    args = parser.parse_args()

    classifier = load_classifier(args.model)
    texts = read_tsv(args.data).texts[: args.n]
    encoded = [classifier.collate(classifier.encode([t])) for t in texts]
    s = args.samples

    def one_at_a_time(step: Callable[..., object], items: list[tuple] | None = None) -> Callable[[list[str]], None]:
        # Pre-tokenised, so the component rows time model work only.
        items = items or [(batch,) for batch in encoded]

        def run(chunk: list[str]) -> None:
            for item in items[: len(chunk)]:
                step(*item)

        return run

    def explain(explainer, per_call: int | None = None):
        passes: list[float] = []

        def run(chunk: list[str]) -> None:
            size = per_call or len(chunk)  # texts per explain() call; all in one by default
            results = [
                e for start in range(0, len(chunk), size) for e in explainer.explain(chunk[start : start + size])
            ]
            passes[:] = [e.forward_passes for e in results]

        return run, passes

    rows: list[tuple[str, Callable, list[float] | None]] = [
        ("classifier forward pass", one_at_a_time(classifier.logits), None),
    ]
    empirical = {}
    for name in [name for name in EMPIRICAL if explainer_class(name).imitates in args.methods]:
        try:
            empirical[name] = get_explainer(name, classifier)
        except Exception as error:  # no embedded explainer for this classifier: skip its rows
            print(f"({name} skipped: {error})")
    totals = ScoreTotals.of(classifier)  # baseline logits per length: cached after the warm-up
    if "empirical-ig" in empirical:
        model = empirical["empirical-ig"].model
        predicted = [(batch, classifier.prediction_pass(batch, hidden_states=True)) for batch in encoded]

        def own_pass(batch: Batch, prediction: PredictionPass) -> None:
            target = prediction.targets
            with torch.no_grad():  # a branch continues from the prediction's hidden states
                model(batch, target, prediction.hidden_states, totals(batch, prediction.logits, target)[0])

        copied = (
            f"layers {model.branch + 1}..{classifier.model.config.num_hidden_layers}" if model.branch else "encoder"
        )
        label = f"empirical-ig's own pass (copy of the {copied} + head), no prediction"
        rows.append((label, one_at_a_time(own_pass, predicted), None))
    if "empirical-ig-head" in empirical:
        head = empirical["empirical-ig-head"].model

        def predict_with_head(batch: Batch) -> None:
            prediction = classifier.prediction_pass(batch, hidden_states=True)
            batch_logits, hidden = prediction.logits, prediction.hidden_states
            target = batch_logits.argmax(-1)
            with torch.no_grad():
                head(batch, target, hidden, totals(batch, batch_logits, target)[0])

        rows.append(("forward pass + empirical-ig-head (prediction and explanation)", one_at_a_time(predict_with_head),
                     None))  # fmt: skip
    for name, explainer in empirical.items():
        rows.append((f"{name} explain(), one text at a time", *explain(explainer, per_call=1)))
        rows.append((f"{name} {AS_CLI}", *explain(explainer, per_call=CHUNK)))
    # IG's fastest rows on a CPU: batches of 8, equal lengths or padded (padded batches of 32 took IG 637 ms
    # per text against 392 in batches of 8 of equal length).
    one, paper_ig, paper_sv = {"batch_size": 1}, {"internal_batch_size": 1}, {"perturbations_per_eval": 1}
    expensive = [
        ("ig", f"IG s={s}, one text at a time", one),
        ("ig", f"IG s={s}, batches of 8 of equal length", {"batch_size": 8, "pad_batches": False}),
        ("ig", f"IG s={s}, batches of 8 neighbours in length, padded", {"batch_size": 8, "pad_batches": True}),
        ("ig", f"IG s={s}, one text, one step per pass (paper)", {**one, **paper_ig}),
        ("sv", f"SV s={s}, one text at a time", one),
        ("sv", f"SV s={s}, batches of 8 of equal length", {"batch_size": 8}),
        ("sv", f"SV s={s}, one text, one perturbation per pass (paper)", {**one, **paper_sv}),
    ]
    for name, label, options in [row for row in expensive if row[0] in args.methods]:
        rows.append((label, *explain(get_explainer(name, classifier, samples=s, **options))))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {classifier.device}, "
          f"{len(texts)} texts from {args.data}\n")  # fmt: skip
    # Rows run in turn, several rounds, keeping each row's fastest round (as timeit does): load from
    # other processes then slows every row alike instead of whichever row it happens to hit. Every row
    # gets the same rounds, the slow ones too: a ratio near a goal is only as good as its slower side.
    times: dict[str, float] = {}
    for _, run, _ in rows:
        run(texts[:2])  # warm-up: allocator, kernels, lazy imports, cached baselines
    for _ in range(args.rounds):
        for label, run, _ in rows:
            times[label] = min(times.get(label, float("inf")), time_per_text(run, texts))
    forward = times["classifier forward pass"]
    print("| what | ms per text | x forward pass | model passes per text |")
    print("|---|---:|---:|---:|")
    for label, _, passes in rows:
        mean_passes = f"{sum(passes) / len(passes):.1f}" if passes else "1"
        print(f"| {label} | {times[label] * 1000:.1f} | {times[label] / forward:.2f} | {mean_passes} |")

    print(
        f"\n| empirical explainer | one text at a time, vs the fastest | {CHUNK} texts per call (as empexp "
        "explain), vs the fastest | one text at a time, vs the paper's setting |"
    )
    print("|---|---:|---:|---:|")
    for name in empirical:
        method = name.split("-")[1].upper()
        alone, together = times[f"{name} explain(), one text at a time"], times[f"{name} {AS_CLI}"]
        own = {label: t for label, t in times.items() if label.startswith(f"{method} s=")}
        fastest, paper = min(own.values()), next(t for label, t in own.items() if "paper" in label)
        print(
            f"| {name} vs {method} s={s} | {fastest / alone:.1f}x faster | {fastest / together:.1f}x faster "
            f"| {paper / alone:.1f}x faster |"
        )


if __name__ == "__main__":
    main()
