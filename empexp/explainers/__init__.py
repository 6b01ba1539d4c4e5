"""Explainers, one module per family, found by id through the registry."""

from empexp.explainers import captum, empirical  # noqa: F401  (register "ig", "sv", "empirical-*")
from empexp.explainers.base import Explainer
from empexp.explainers.registry import get_explainer, list_explainers, register

__all__ = ["Explainer", "get_explainer", "list_explainers", "register"]
