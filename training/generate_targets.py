"""Run an expensive explainer (IG or SV) over a text dataset and write its attributions as targets.

    accelerate launch training/generate_targets.py --data ../shared/data/sst2/train.tsv \\
        --method ig --samples 20 --limit 8000 --min-words 8 --output-dir runs/targets/ig

One process or several (``accelerate launch --num_processes N``; on CPUs, ``ACCELERATE_USE_CPU=true
accelerate launch --multi_gpu --num_processes N``): chunk ``k`` goes to process ``k % N``. Every
chunk is written atomically, so after a kill (even ``kill -9``) the same command resumes where it
stopped; the number of processes may differ between runs. ``--pseudo-documents N`` adds N long texts (the
data's texts joined, 60-400 word pieces) so that explainers trained on the targets see long inputs;
``--limit 0 --pseudo-documents N`` makes a folder of long texts only. The result is a
folder of safetensors chunks plus ``targets.json``: read it with ``empexp.targets.load_targets``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from accelerate import Accelerator
from tqdm.auto import tqdm

from empexp import Classifier, Explainer, get_explainer, load_classifier
from empexp.data import pseudo_documents, read_instances, select_texts
from empexp.errors import InputError
from empexp.targets import CPU_SECONDS, chunk_path, chunks_for, explain_chunk, finalize, pending_chunks, write_chunk
from empexp.training import note_cpu_threads

SETTINGS_FILE = "settings.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a TSV with a label column, or one text per line")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--model", help="classifier: Hub id or folder (default: the embedded default)")
    parser.add_argument("--revision")
    parser.add_argument("--method", choices=["ig", "sv"], required=True)
    parser.add_argument("--samples", type=int, default=20, help="IG steps or SV permutations")
    parser.add_argument("--limit", type=int, help="use the first N texts after shuffling")
    parser.add_argument("--min-words", type=int, default=1, help="skip texts with fewer words")
    parser.add_argument(
        "--pseudo-documents",
        type=int,
        default=0,
        help="add N long texts (60-400 word pieces), each the data's texts joined (with --limit 0: only them)",
    )
    parser.add_argument("--seed", type=int, default=0, help="shuffles the texts and seeds SV")
    parser.add_argument(
        "--sv-seed",
        type=int,
        help="seeds SV instead of --seed: the same texts with independent permutations (default: --seed)",
    )
    parser.add_argument("--chunk-size", type=int, default=64, help="texts per written chunk")
    parser.add_argument("--batch-size", type=int, default=8, help="texts attributed together")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    accelerator = Accelerator()
    note_cpu_threads(accelerator)
    instances = read_instances(args.data)
    texts, text_pairs = select_texts(*instances, limit=args.limit, min_words=args.min_words, seed=args.seed)
    if args.pseudo_documents:
        if text_pairs is not None:
            raise InputError("--pseudo-documents joins single texts; the data holds pairs")
        texts += pseudo_documents(instances[0], args.pseudo_documents, seed=args.seed)
    classifier = load_classifier(args.model, revision=args.revision, device=accelerator.device)
    explainer = make_explainer(classifier, args, chunk=0)
    settings = {
        "classifier": classifier.identity(),
        "explainer": {"method": args.method, "samples": args.samples, **explainer.details()},
        # SV's seed for chunk k is sv_seed * 100000 + k (see make_explainer).
        "data": {
            "path": args.data.name,
            "limit": args.limit,
            "min_words": args.min_words,
            "seed": args.seed,
            **({"sv_seed": args.sv_seed} if args.sv_seed is not None else {}),
            **({"pseudo_documents": args.pseudo_documents} if args.pseudo_documents else {}),
        },
        "chunk_size": args.chunk_size,
    }
    check_settings(accelerator, args.output_dir, settings)

    num_chunks = -(-len(texts) // args.chunk_size)
    mine = pending_chunks(args.output_dir, chunks_for(accelerator.process_index, accelerator.num_processes, num_chunks))
    progress = tqdm(mine, desc=f"{args.method} targets", unit="chunk", disable=not accelerator.is_local_main_process)
    for k in progress:
        part = slice(k * args.chunk_size, (k + 1) * args.chunk_size)
        pairs = None if text_pairs is None else text_pairs[part]
        start = time.process_time()
        chunk = explain_chunk(make_explainer(classifier, args, k), texts[part], part.start, pairs)
        # What the labels cost goes with them, for the label-cost trade-off (train_empirical.py logs it too).
        made = {"process": accelerator.process_index, CPU_SECONDS: time.process_time() - start}
        write_chunk(chunk_path(args.output_dir, k), chunk, {**settings, **made})
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        index = finalize(args.output_dir, len(texts), args.chunk_size, settings)
        print(f"{index['num_instances']} targets in {len(index['chunks'])} chunks under {args.output_dir}")


def make_explainer(classifier: Classifier, args: argparse.Namespace, chunk: int) -> Explainer:
    """The explainer for one chunk. SV draws each chunk's permutations from its own seed: with one seed
    throughout, every batch of same-length texts would share its permutations, and so the pattern of
    its sampling noise, which an explainer trained on the targets could learn."""
    options = {"samples": args.samples, "batch_size": args.batch_size}
    if args.method == "sv":
        options["seed"] = (args.seed if args.sv_seed is None else args.sv_seed) * 100_000 + chunk
    return get_explainer(args.method, classifier, **options)


def check_settings(accelerator: Accelerator, directory: Path, settings: dict) -> None:
    """Record the settings in a new folder; refuse to resume one written with other settings."""
    path = directory / SETTINGS_FILE
    if accelerator.is_main_process and not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2) + "\n")
    accelerator.wait_for_everyone()
    recorded = json.loads(path.read_text())
    if recorded != json.loads(json.dumps(settings)):
        raise InputError(f"{directory} holds targets made with other settings ({path}); use another --output-dir")


if __name__ == "__main__":
    main()
