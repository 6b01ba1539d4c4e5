"""DiffMask probes in the registry: ``diffmask-input`` and ``diffmask-hidden``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch

from empexp.classifier import Batch, Classifier, PredictionPass
from empexp.errors import InputError
from empexp.explainers.base import Attribution
from empexp.explainers.registry import register
from empexp.explainers.trained import TrainedExplainer
from empexp.hub import artefact_file
from empexp.probes import METRICS, load_diffmask, point_names


class DiffMaskExplainer(TrainedExplainer):
    """Keep probabilities of trained DiffMask probes, from the prediction pass's hidden states (no extra pass).

    ``scores`` are the keep probabilities at hook ``point`` (0 = word embeddings, ..., ``L + 1`` = the
    last layer's output; default: the last point for the input variant, what the whole model needs from
    the input; the word embeddings for the hidden variant); ``layer_scores`` hold every point's, one row
    per point, named in ``details["layer_names"]``. Special tokens are never masked: their keep
    probability is 1.

    Args:
        source: Hub id or folder of probes trained for this classifier; the embedded ones for an
            embedded classifier.
        revision: Hub revision of ``source``.
        point: hook point whose keep probabilities become ``scores``.
        batch_size: texts explained together.

    ``get_explainer`` also takes the older names ``probes`` (``source``) and ``layer`` (``point``).

    Raises:
        InputError: no probes given for a classifier without embedded ones, probes of the other variant,
            or a ``point`` out of range.
        ModelLoadError: the probes cannot be loaded, or were trained for another classifier.
    """

    artefact = "DiffMask probes"
    variant: ClassVar[str]
    reads_hidden_states = True

    renamed: ClassVar[dict[str, str]] = {**TrainedExplainer.renamed, "layer": "point"}

    def __init__(self, classifier: Classifier, *, point: int | None = None, **trained: Any):
        super().__init__(classifier, **trained)
        points = self.model.points
        if point is None:
            point = points - 1 if self.variant == "input" else 0
        if not -points <= point < points:
            raise InputError(f"point must be in 0..{points - 1} (hook points), got {point}")
        self.point = point % points
        self.validation = _validation(self.source, self.revision)

    def loaded(self) -> None:
        if self.model.variant != self.variant:
            right = f"diffmask-{self.model.variant}"
            raise InputError(f"{self.source} holds {right} probes; use them with method {right!r}, not {self.name!r}")

    load = staticmethod(load_diffmask)

    def details(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "probes": self.source,
            "point": self.point,
            "layer": self.point,  # the hook point's key before 0.2, kept for readers of the JSON
            "layer_names": point_names(self.model.points),
            "margin": self.model.margin,
            "validation": self.validation,
        }

    @torch.no_grad()
    def attribute(self, batch: Batch, prediction: PredictionPass) -> Attribution:
        states = self.model.states(self.classifier, batch, prediction.hidden_states)
        keep = self.model.keep_probabilities(self.model.gate_logits(states), self.model.ungated(batch))
        return Attribution(keep[..., self.point], layer_scores=keep.transpose(1, 2))


def _validation(probes: str | Path, revision: str | None) -> dict | None:
    """What validation measured when the probes were trained (``empexp.probes.validation``), if shipped."""
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
