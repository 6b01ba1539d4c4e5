"""``empexp predict`` and ``empexp explain`` (one JSON object per line), ``empexp push`` and ``empexp space push``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from empexp.cards import DEFAULT_DATASET
from empexp.classifier import Classifier, Prediction, check_text, load_classifier
from empexp.data import read_lines
from empexp.errors import EmpexpError, InputError, out_of_memory_reason
from empexp.explainers import explainer_class, get_explainer, list_explainers
from empexp.explainers.attention import AGGREGATIONS
from empexp.explainers.captum import INTEGRATION_METHODS
from empexp.explainers.empirical import add_explainer_option
from empexp.explanation import Explanation
from empexp.exports import attviz

CHUNK = 32  # texts per call, so results stream out while a long file is processed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="empexp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def add_common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
        sub.add_argument("--model", help="Hub id or local folder of a classifier (default: the embedded one)")
        sub.add_argument("--revision", help="Hub revision (branch, tag or commit sha) of --model")
        sub.add_argument("--input-file", help="plain text, one instance per line ('-' reads standard input)")
        sub.add_argument("--device", help="torch device, e.g. cpu or cuda (default: cpu)")
        sub.add_argument(
            "--pairs",
            action="store_true",
            help="text pairs: TEXT arguments come two by two, --input-file lines are TEXT<TAB>TEXT_PAIR",
        )

    add_common(commands.add_parser("predict", help="predicted label and class probabilities"))
    explain = commands.add_parser("explain", help="token attributions for the predicted class")
    add_common(explain)
    methods = "; ".join(f"{name}: {explainer_class(name).display_name}" for name in list_explainers())
    explain.add_argument("--method", required=True, choices=list_explainers(), help=f"explainer id ({methods})")
    explain.add_argument("--samples", type=int, help="samples per explanation (IG steps, SV permutations)")
    explain.add_argument("--seed", type=int, help="random seed of sampling explainers (sv)")
    explain.add_argument(
        "--integration-method",
        choices=INTEGRATION_METHODS,
        help="integration rule of ig (default: gausslegendre)",
    )
    explain.add_argument("--batch-size", type=int, help="texts attributed together")
    explain.add_argument(
        "--explainer",
        help="Hub id or folder of an empirical explainer or DiffMask probes trained for --model "
        "(empirical-* and diffmask-* methods; default: the embedded ones, for the embedded classifier)",
    )
    explain.add_argument("--explainer-revision", help="Hub revision of --explainer")
    explain.add_argument(
        "--layer", type=int, help="attention: the layer whose heads are aggregated (0-based; default: all layers)"
    )
    explain.add_argument(
        "--point",
        type=int,
        help="diffmask-*: the hook point whose keep probabilities are the scores (0 = word embeddings; --layer "
        "is its older name)",
    )
    explain.add_argument("--aggregation", choices=AGGREGATIONS, help="attention: how heads are aggregated (mean)")
    explain.add_argument("--attviz", help="attention: also write the explanations in AttViz's JSON input format here")

    push = commands.add_parser("push", help="publish a classifier, empirical explainer or DiffMask probes on the Hub")
    push.add_argument("artefact_dir", metavar="ARTEFACT_DIR", help="a folder a training script exported")
    push.add_argument("repo_id", metavar="REPO_ID", help="Hub repo to create or update, e.g. user/empexp-sst2")
    add_push_options(push)

    space = commands.add_parser("space", help="the app as a Hugging Face Space")
    space_commands = space.add_subparsers(dest="space_command", required=True)
    space_push = space_commands.add_parser("push", help="upload the app, the library and its configuration")
    space_push.add_argument("repo_id", metavar="REPO_ID", help="Space repo to create or update, e.g. user/empexp")
    space_push.add_argument("--private", action="store_true", help="create the Space private")
    space_push.add_argument("--model", help="Hub id of the classifier the Space shows (default: the embedded one)")
    add_explainer_option(space_push, default="the embedded ones, with the embedded classifier")
    space_push.add_argument(
        "--no-weights", action="store_true", help="leave the embedded default out (it then needs --model)"
    )
    return parser


def add_push_options(parser: argparse.ArgumentParser) -> None:
    """``--private`` and, for explainers and probes, the published classifier they belong to."""
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument(
        "--classifier",
        help="explainers and probes: Hub id of the published classifier they were trained for "
        "(checked, then recorded with its commit in config.json)",
    )
    parser.add_argument("--classifier-revision", help="revision of --classifier (default: its newest commit)")
    parser.add_argument(
        "--dataset", help=f"Hub id of the training data (default: the one its card names, else {DEFAULT_DATASET})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ("push", "space"):
            print(_publish(args).commit_url, flush=True)
            return 0
        texts, text_pairs = _texts(args, parser)
        classifier = load_classifier(args.model, revision=args.revision, device=args.device)
        for result in _run(args, classifier, texts, text_pairs):
            if result.truncated:
                print(
                    f"empexp: note: only the first {classifier.max_length} tokens of {result.text[:40]!r}... were used",
                    file=sys.stderr,
                )
            print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
    except EmpexpError as error:
        print(f"empexp: error: {error}", file=sys.stderr)
        return 1
    except torch.OutOfMemoryError as error:  # the device's memory is short, not the input wrong: no traceback
        reason = out_of_memory_reason(error)
        print(
            f"empexp: error: out of device memory ({reason}); fewer texts per batch or --device cpu need less",
            file=sys.stderr,
        )
        return 1
    return 0


def _publish(args: argparse.Namespace):
    from empexp.publish import push_artefact, push_space

    if args.command == "push":
        return push_artefact(
            args.artefact_dir,
            args.repo_id,
            private=args.private,
            classifier=args.classifier,
            classifier_revision=args.classifier_revision,
            dataset=args.dataset,
        )
    return push_space(
        args.repo_id,
        model=args.model,
        explainers=dict(args.explainer or []),
        weights=not args.no_weights,
        private=args.private,
    )


def _texts(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[list[str], list[str] | None]:
    """The texts, and with ``--pairs`` their second texts (positional ones two by two, file lines split at a tab)."""
    lines = []
    if args.input_file == "-":
        lines = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    elif args.input_file:
        try:
            lines = read_lines(args.input_file)
        except (OSError, UnicodeDecodeError) as error:
            parser.error(f"cannot read --input-file: {error}")
    if not args.texts and not lines:
        parser.error("give at least one TEXT or --input-file")
    if not args.pairs:
        texts = [*args.texts, *lines]
        for text in texts:
            check_text(text)
        return texts, None
    if len(args.texts) % 2:
        parser.error("with --pairs, TEXT arguments come two by two (text, then its pair)")
    pairs = list(zip(args.texts[::2], args.texts[1::2]))
    for number, line in enumerate(lines, 1):
        if line.count("\t") != 1:
            parser.error(f"with --pairs, line {number} of --input-file must hold TEXT<TAB>TEXT_PAIR")
        pairs.append(tuple(line.split("\t")))
    for text, text_pair in pairs:
        check_text(text)
        check_text(text_pair)
    return [text for text, _ in pairs], [text_pair for _, text_pair in pairs]


def _run(
    args: argparse.Namespace, classifier: Classifier, texts: list[str], text_pairs: list[str] | None
) -> Iterator[Prediction | Explanation]:
    if args.command == "predict":
        yield from classifier.predict(texts, text_pairs)
        return
    options = {
        key: value
        for key, value in {
            "samples": args.samples,
            "seed": args.seed,
            "method": args.integration_method,
            "batch_size": args.batch_size,
            "revision": args.explainer_revision,
            "point": args.point,
            "layer": args.layer,  # attention's layer; DiffMask takes it as the older name of point
            "aggregation": args.aggregation,
        }.items()
        if value is not None
    }
    if args.explainer is not None:
        options["source"] = args.explainer
    explainer = get_explainer(args.method, classifier, **options)
    explained = []
    for start in range(0, len(texts), CHUNK):
        pairs = None if text_pairs is None else text_pairs[start : start + CHUNK]
        chunk = explainer.explain(texts[start : start + CHUNK], pairs)
        explained += chunk if args.attviz else []
        yield from chunk
    if args.attviz:
        try:
            Path(args.attviz).write_text(json.dumps(attviz(explained), ensure_ascii=False) + "\n")
        except ValueError as error:
            raise InputError(f"--attviz: {error}") from error


if __name__ == "__main__":
    sys.exit(main())
