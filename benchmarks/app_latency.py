"""Latency of the app as a user meets it: start ``app.py``, call its named endpoints through gradio_client.

    python benchmarks/app_latency.py [--rounds 20] [--lengths 16 64 256] [--concurrency 20]

Prints Markdown tables: time from process start to the first page; p50 and p95 per endpoint and
text length (tokens, special ones included) with the ratio of the p50 to one classifier forward pass
on the same text, timed in this process while the app is idle; then the throughput of
``--concurrency`` callers sending mixed requests at once. Goal on a 2-core CPU: p50 under 150 ms at
64 tokens for every endpoint but ``explain`` (IG and SV), and a first page within 10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch
from gradio_client import Client

from empexp import load_classifier
from empexp.classifier import Classifier

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "benchmarks" / "data" / "news_sentences.txt"
CHEAP = {
    "predict": (),
    "explain_empirical": (),
    "explain_internals": ("input", "mean"),
    "explain_fast": (),
}
EXPENSIVE = {"explain": (20, 20, 0)}


def text_of_length(classifier: Classifier, tokens: int) -> str:
    """A prefix of the news sentences that the classifier tokenises to exactly ``tokens`` tokens (or one short)."""
    words = SOURCE.read_text(encoding="utf-8").split()
    low, high = 1, len(words)
    while low < high:  # the longest prefix of words within the length
        middle = (low + high + 1) // 2
        if len(classifier.encode([" ".join(words[:middle])])[0]) <= tokens:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low])


def forward_seconds(classifier: Classifier, text: str, rounds: int) -> float:
    batch = classifier.collate(classifier.encode([text]))
    classifier.logits(batch)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        classifier.logits(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def start_app(port: int) -> tuple[subprocess.Popen, float]:
    """``python app.py`` as a user starts it; the seconds until its first page answers."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                response.read()
            return process, time.perf_counter() - start
        except OSError:
            time.sleep(0.05)


def timed(client: Client, endpoint: str, text: str, args: tuple) -> float:
    start = time.perf_counter()
    client.predict(text, *args, api_name=f"/{endpoint}")
    return time.perf_counter() - start


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of sorted values."""
    return ordered[round(q * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="calls per cheap endpoint and length")
    parser.add_argument("--expensive-rounds", type=int, default=3, help="calls of explain per length")
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument(
        "--expensive-lengths", type=int, nargs="+", default=[16, 64], help="lengths for explain (SV grows with n^2)"
    )
    parser.add_argument("--concurrency", type=int, default=20, help="simultaneous callers in the throughput run")
    parser.add_argument("--port", type=int, default=7871)
    args = parser.parse_args()

    classifier = load_classifier()
    lengths = sorted({*args.lengths, *args.expensive_lengths})
    texts = {n: text_of_length(classifier, n) for n in lengths}
    forward = {n: forward_seconds(classifier, texts[n], args.rounds) for n in lengths}
    process, first_page = start_app(args.port)
    try:
        client = Client(f"http://127.0.0.1:{args.port}/", analytics_enabled=False, verbose=False)
        endpoints = [name for name in CHEAP if f"/{name}" in client.view_api(print_info=False, return_format="dict")[
            "named_endpoints"]]  # fmt: skip
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; app.py on the embedded default\n")
        print(f"time from process start to the first page: {first_page:.1f} s\n")
        print("| endpoint | tokens | p50 ms | p95 ms | p50 / forward pass | calls |")
        print("|---|---:|---:|---:|---:|---:|")
        rows = [(e, args.rounds, CHEAP[e], args.lengths) for e in endpoints]
        rows.append(("explain", args.expensive_rounds, EXPENSIVE["explain"], args.expensive_lengths))
        for name, rounds, calls, lengths in rows:
            for n in lengths:
                timed(client, name, texts[n], calls)  # warm-up: caches, lazy imports
                times = sorted(timed(client, name, texts[n], calls) for _ in range(rounds))
                p50 = statistics.median(times)
                p95 = percentile(times, 0.95)
                print(f"| {name} | {n} | {p50 * 1000:.0f} | {p95 * 1000:.0f} | {p50 / forward[n]:.1f} | {rounds} |")
        print(
            "\none classifier forward pass (in this process, app idle): "
            + ", ".join(f"{forward[n] * 1000:.1f} ms at {n} tokens" for n in lengths)
        )

        # Throughput: every caller sends the same mix of cheap and expensive requests at once.
        mix = [(e, n) for n in args.lengths for e in endpoints] + [("explain", min(args.expensive_lengths))]
        clients = [Client(f"http://127.0.0.1:{args.port}/", analytics_enabled=False, verbose=False)
                   for _ in range(args.concurrency)]  # fmt: skip

        def caller(c: Client) -> list[float]:
            return [timed(c, e, texts[n], {**CHEAP, **EXPENSIVE}[e]) for e, n in mix]

        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            latencies = [t for times in pool.map(caller, clients) for t in times]
        wall = time.perf_counter() - start
        latencies.sort()
        print(
            f"\n{args.concurrency} concurrent callers x {len(mix)} mixed requests: {len(latencies)} answered in "
            f"{wall:.1f} s, {len(latencies) / wall:.1f} requests/s; per-request p50 "
            f"{statistics.median(latencies) * 1000:.0f} ms, p95 {percentile(latencies, 0.95) * 1000:.0f} ms"
        )
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
