"""The Gradio app: a text (or a pair) in, the prediction and its explanations side by side out.

:mod:`empexp.app.service` computes (no Gradio), :mod:`empexp.app.views` turns explanations into what
components show, :mod:`empexp.app.layout` lays out the page and wires its events, and
:mod:`empexp.app.entry` is the command line ``app.py`` (what a Space runs) calls.
"""

import os

# Read when gradio is imported: no analytics calls from a local, offline app.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from empexp.app.layout import build_app, launch
from empexp.app.service import ExplanationService, imitated, load_empirical_explainers

__all__ = ["ExplanationService", "build_app", "imitated", "launch", "load_empirical_explainers"]
