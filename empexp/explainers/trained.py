"""What explainers with trained weights of their own share: one signature (``source=``, ``revision=``),
the embedded defaults, and loading."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

from torch import nn

from empexp.classifier import Classifier
from empexp.errors import InputError
from empexp.explainers.base import Explainer


class TrainedExplainer(Explainer):
    """An explainer that runs weights trained for one classifier (empirical explainers, DiffMask probes).

    Args:
        source: Hub id or folder of the weights; an embedded classifier's own when ``None``.
        revision: Hub revision of ``source``.
        batch_size: texts explained together (padded: one pass each way). 8, because padding a batch of
            texts of mixed lengths to the longest costs more than bigger batches save: on a CPU, ``empexp
            explain`` (32 texts per call) took 15.1 ms per SST-2 dev sentence with ``empirical-ig`` in
            batches of 8 against 21.8 in batches of 32.

    Raises:
        InputError: no ``source`` for a classifier without embedded weights of this kind.
        ModelLoadError: the weights cannot be loaded, or were trained for another classifier.
    """

    artefact: ClassVar[str]
    """What the weights are called in messages, e.g. ``"an empirical explainer"``."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        source: str | Path | None = None,
        revision: str | None = None,
        batch_size: int = 8,
    ):
        super().__init__(classifier, batch_size=batch_size, pad_batches=True)
        self.source = str(embedded_or(source, classifier, self.name, what=self.artefact))
        self.revision = revision
        self.model = self.load(self.source, classifier, revision=revision)
        self.loaded()

    renamed: ClassVar[dict[str, str]] = {"explainer": "source", "probes": "source"}

    def loaded(self) -> None:
        """Checks that the loaded :attr:`model` is of this explainer's kind (raise ``InputError`` if not)."""

    @staticmethod
    @abstractmethod
    def load(source: str, classifier: Classifier, *, revision: str | None = None) -> nn.Module:
        """The trained module at ``source``, checked against ``classifier``."""


def embedded_or(source: str | Path | None, classifier: Classifier, name: str, *, what: str) -> str | Path:
    """``source``, or when it is ``None`` the embedded ``name`` folder, which only embedded classifiers have.

    Raises:
        InputError: no ``source`` for a classifier without an embedded ``name``.
    """
    if source is not None:
        return source
    folder = classifier.embedded_artefacts
    if folder is None or not (folder / name).is_dir():
        raise InputError(
            f"{name} needs {what} trained for {classifier.embedded_name or classifier.name_or_path}: "
            f"pass source=HUB_ID_OR_FOLDER (CLI: --explainer {name}=HUB_ID_OR_FOLDER)"
        )
    return folder / name
