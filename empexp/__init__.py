"""empexp: explanations for transformer text classifiers, fast enough to give with every prediction."""

import sys

from empexp import imitator, probes
from empexp.classifier import Classifier, load_classifier
from empexp.errors import EmpexpError, InputError, ModelLoadError, UnknownExplainerError
from empexp.explainers import Explainer, get_explainer, list_explainers
from empexp.explanation import Explanation

__all__ = [
    "Classifier",
    "EmpexpError",
    "Explainer",
    "Explanation",
    "InputError",
    "ModelLoadError",
    "UnknownExplainerError",
    "get_explainer",
    "list_explainers",
    "load_classifier",
]

# The modules' names before 0.2 (``empexp.empirical`` and ``empexp.diffmask`` clashed with the explainer
# modules of the same names): still importable, as the same module objects.
sys.modules.setdefault("empexp.empirical", imitator)
sys.modules.setdefault("empexp.diffmask", probes)
