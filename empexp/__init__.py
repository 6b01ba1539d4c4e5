"""empexp: explanations for transformer text classifiers, fast enough to give with every prediction."""

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
