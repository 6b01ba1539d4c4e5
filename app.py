"""empexp's Gradio app on the embedded default classifier (or ``--model ID_OR_DIR``). Runs as a Space too."""

import argparse

from empexp.app import build_app, launch
from empexp.classifier import load_classifier
from empexp.explainers.empirical import add_explainer_option

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="Hub id or local folder of a classifier (default: the embedded one)")
    add_explainer_option(parser, default="the embedded ones, for the embedded classifier")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args()
    empirical = dict(args.explainer) if args.explainer else None
    launch(build_app(load_classifier(args.model), empirical), server_name=args.host, server_port=args.port)
