"""Explainers, one module per family, found by id through the registry."""

from empexp.explainers import attention, captum, diffmask, empirical  # noqa: F401  (register every explainer)
from empexp.explainers.base import Attribution, Explainer, explain_together
from empexp.explainers.registry import display_name, explainer_class, get_explainer, list_explainers, register

__all__ = [
    "Attribution",
    "Explainer",
    "display_name",
    "explain_together",
    "explainer_class",
    "get_explainer",
    "list_explainers",
    "register",
]
