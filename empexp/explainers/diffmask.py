"""DiffMask probes in the registry: ``diffmask-input`` and ``diffmask-hidden``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch

from empexp.classifier import Classifier
from empexp.diffmask import METRICS, load_diffmask, point_names
from empexp.errors import InputError
from empexp.explainers.base import Attribution, Explainer
from empexp.explainers.empirical import embedded_or
from empexp.explainers.registry import register
from empexp.hub import artefact_file


class DiffMaskExplainer(Explainer):
    """Keep probabilities of trained DiffMask probes, from the prediction pass's hidden states (no extra pass).

    ``scores`` are the keep probabilities at hook point ``layer`` (default: the last point for the
    input variant, what the whole model needs from the input; the word embeddings for the hidden
    variant); ``layer_scores`` hold every point's, one row per point, named in ``details["layer_names"]``.
    Special tokens are never masked: their keep probability is 1.

    Args:
        probes: Hub id or folder of probes trained for this classifier; defaults to the embedded ones
            when the classifier is the embedded default.
        revision: Hub revision of ``probes``.
        layer: hook point whose keep probabilities become ``scores``.
        batch_size: texts explained together.

    Raises:
        InputError: no probes given for a classifier without embedded ones, probes of the other variant,
            or a ``layer`` out of range.
        ModelLoadError: the probes cannot be loaded, or were trained for another classifier.
    """

    variant: ClassVar[str]
    reads_hidden_states = True

    def __init__(
        self,
        classifier: Classifier,
        *,
        probes: str | Path | None = None,
        revision: str | None = None,
        layer: int | None = None,
        batch_size: int = 32,
    ):
        super().__init__(classifier, batch_size=batch_size, pad_batches=True)
        probes = embedded_or(probes, classifier, self.name, what="probes", option="probes")
        self.source = str(probes)
        self.model = load_diffmask(probes, classifier, revision=revision)
        if self.model.variant != self.variant:
            right = f"diffmask-{self.model.variant}"
            raise InputError(f"{self.source} holds {right} probes; use them with method {right!r}, not {self.name!r}")
        points = self.model.points
        if layer is None:
            layer = points - 1 if self.variant == "input" else 0
        if not -points <= layer < points:
            raise InputError(f"layer must be in 0..{points - 1} (hook points), got {layer}")
        self.layer = layer % points
        self.validation = _validation(probes, revision)

    def details(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "probes": self.source,
            "layer": self.layer,
            "layer_names": point_names(self.model.points),
            "margin": self.model.margin,
            "validation": self.validation,
        }

    @torch.no_grad()
    def attribute(self, batch: dict[str, torch.Tensor], targets: torch.Tensor) -> Attribution:
        states = self.model.states(self.classifier, batch, batch["hidden_states"])
        keep = self.model.keep_probabilities(self.model.gate_logits(states), self.model.ungated(batch))
        return Attribution(keep[..., self.layer], layer_scores=keep.transpose(1, 2))


def _validation(probes: str | Path, revision: str | None) -> dict | None:
    """What validation measured when the probes were trained (``empexp.diffmask.validation``), if shipped."""
    path = artefact_file(probes, METRICS, revision)
    if path is None:
        return None
    metrics = json.loads(path.read_text())
    return {key: value for key, value in metrics.items() if key != "args"}


@register
class DiffMaskInput(DiffMaskExplainer):
    """Which input tokens the model can do without, as seen from each layer (DiffMask, input variant)."""

    name = "diffmask-input"
    display_name = "DiffMask (input)"
    description = "DiffMask, input variant: which input tokens the model still needs, as seen from each layer."
    kind = "diffmask"
    variant = "input"


@register
class DiffMaskHidden(DiffMaskExplainer):
    """Which tokens' hidden states each layer can do without (DiffMask, hidden variant)."""

    name = "diffmask-hidden"
    display_name = "DiffMask (hidden states)"
    description = "DiffMask, hidden variant: which tokens' states each layer needs."
    kind = "diffmask"
    variant = "hidden"
