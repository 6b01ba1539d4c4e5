"""Explainers by string id: ``get_explainer("ig", classifier)``, ``list_explainers()``."""

from __future__ import annotations

import inspect
from typing import Any

from empexp.classifier import Classifier
from empexp.errors import InputError, UnknownExplainerError
from empexp.explainers.base import Explainer

_REGISTRY: dict[str, type[Explainer]] = {}


def register(cls: type[Explainer]) -> type[Explainer]:
    """Class decorator adding an explainer under its ``name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"an explainer named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def list_explainers() -> list[str]:
    """Registered explainer ids, sorted."""
    return sorted(_REGISTRY)


def get_explainer(name: str, classifier: Classifier, **options: Any) -> Explainer:
    """An explainer by id for ``classifier``; ``options`` go to its constructor (e.g. ``samples=20``).

    Raises:
        UnknownExplainerError: no explainer is registered as ``name``.
        InputError: an option the explainer does not take.
    """
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise UnknownExplainerError(f"unknown explainer {name!r}; available: {', '.join(list_explainers())}") from None
    accepted = [name for name, p in inspect.signature(cls.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(f"explainer {name!r} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}")
    return cls(classifier, **options)
