"""Explainers, one module per family, found by id through the registry."""

from empexp.explainers import captum  # noqa: F401  (registers "ig" and "sv")
from empexp.explainers.base import Explainer
from empexp.explainers.registry import get_explainer, list_explainers, register

__all__ = ["Explainer", "get_explainer", "list_explainers", "register"]
