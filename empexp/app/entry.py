"""The app's command line: what ``python app.py`` runs, locally and in a Space.

What it shows, first found wins: ``--model`` / ``--explainer`` options; the ``EMPEXP_MODEL`` and
``EMPEXP_EXPLAINERS`` (``empirical-ig=user/repo,diffmask-input=user/repo2``) environment variables, as
a Space's variables; the Space's ``empexp_space.json`` written by ``empexp space push``, beside
``app.py``; the embedded default. Values are Hub ids or local folders.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from empexp.app import build_app, launch
from empexp.classifier import load_classifier
from empexp.errors import EmpexpError
from empexp.explainers.empirical import add_explainer_option
from empexp.hub import SPACE_CONFIG


def configured(args: argparse.Namespace, folder: Path) -> tuple[str | None, dict[str, str] | None]:
    """The classifier and explainers to show (``None``: the embedded default / its explainers).

    ``folder`` is where ``app.py`` lies, and with it a Space's configuration.
    """
    if args.model or args.explainer:
        return args.model, dict(args.explainer) if args.explainer else None
    if os.environ.get("EMPEXP_MODEL") or os.environ.get("EMPEXP_EXPLAINERS"):
        pairs = [item.partition("=") for item in os.environ.get("EMPEXP_EXPLAINERS", "").split(",") if item.strip()]
        return os.environ.get("EMPEXP_MODEL") or None, {
            name.strip(): source.strip() for name, _, source in pairs
        } or None
    space_config = folder / SPACE_CONFIG
    if space_config.is_file():
        config = json.loads(space_config.read_text())
        return config.get("model"), config.get("explainers") or None
    return None, None


def main(folder: Path, argv: list[str] | None = None) -> None:
    """Parse the command line, load the classifier (one line and exit 1 if it does not load) and serve."""
    parser = argparse.ArgumentParser(
        prog="app.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="Hub id or local folder of a classifier (default: the embedded one)")
    add_explainer_option(parser, default="the embedded ones, for the embedded classifier")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="address to serve on")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args(argv)
    model, explainers = configured(args, folder)
    try:
        classifier = load_classifier(model)
    except EmpexpError as error:
        sys.exit(f"app.py: cannot start: {error}")
    launch(build_app(classifier, explainers), server_name=args.host, server_port=args.port)
