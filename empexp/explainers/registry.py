"""Explainers by string id: ``get_explainer("ig", classifier)``, ``list_explainers()``."""

from __future__ import annotations

import inspect
from typing import Any

from empexp.classifier import Classifier
from empexp.errors import InputError, UnknownExplainerError
from empexp.explainers.base import Explainer

_REGISTRY: dict[str, type[Explainer]] = {}


def register(cls: type[Explainer]) -> type[Explainer]:
    """Class decorator adding an explainer under its ``name``; it must carry its metadata.

    Raises:
        ValueError: the name is taken, or ``display_name``, ``description`` or ``kind`` is missing.
    """
    missing = [field for field in ("name", "display_name", "description", "kind") if not hasattr(cls, field)]
    if missing:
        raise ValueError(f"{cls.__name__} lacks {', '.join(missing)}")
    if cls.name in _REGISTRY:
        raise ValueError(f"an explainer named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def list_explainers() -> list[str]:
    """Registered explainer ids, sorted."""
    return sorted(_REGISTRY)


def explainer_class(name: str) -> type[Explainer]:
    """The class registered as ``name``: its metadata (``display_name``, ``description``, ``kind``, ...).

    Raises:
        UnknownExplainerError: no explainer is registered as ``name``.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownExplainerError(f"unknown explainer {name!r}; available: {', '.join(list_explainers())}") from None


def display_name(name: str) -> str:
    """The readable name of the explainer ``name``, or ``name`` itself if none is registered so."""
    return _REGISTRY[name].display_name if name in _REGISTRY else name


def get_explainer(name: str, classifier: Classifier, **options: Any) -> Explainer:
    """An explainer by id for ``classifier``; ``options`` go to its constructor (e.g. ``samples=20``),
    older option names (:attr:`Explainer.renamed`) under their new ones.

    Raises:
        UnknownExplainerError: no explainer is registered as ``name``.
        InputError: an option the explainer does not take.
    """
    cls = explainer_class(name)
    both = [f"{old}/{new}" for old, new in cls.renamed.items() if old in options and new in options]
    if both:
        raise InputError(f"explainer {name!r} got an option under its old and its new name ({', '.join(both)})")
    options = {cls.renamed.get(option, option): value for option, value in options.items()}
    accepted = accepted_options(cls)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(f"explainer {name!r} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}")
    return cls(classifier, **options)


def accepted_options(cls: type[Explainer]) -> list[str]:
    """The keyword options of ``cls``'s constructor, including those it passes on to its base's (``**``)."""
    accepted = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        accepted += [p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in accepted]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return accepted
