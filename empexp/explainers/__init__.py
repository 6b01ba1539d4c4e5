"""Explainers, one module per family, found by id through the registry."""

from empexp.explainers import attention, captum, diffmask, empirical  # noqa: F401  (register every explainer)
from empexp.explainers.base import Explainer, explain_together
from empexp.explainers.registry import get_explainer, list_explainers, register

__all__ = ["Explainer", "explain_together", "get_explainer", "list_explainers", "register"]
