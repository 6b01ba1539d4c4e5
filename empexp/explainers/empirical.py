"""Empirical explainers in the registry: ``empirical-ig``, ``empirical-sv`` and their ``-head`` variants."""

from __future__ import annotations

import argparse
from typing import Any, ClassVar

import torch

from empexp.classifier import DEFAULT_CLASSIFIER, Batch, PredictionPass
from empexp.errors import InputError
from empexp.explainers.base import Attribution
from empexp.explainers.registry import register
from empexp.explainers.trained import TrainedExplainer
from empexp.imitator import ScoreTotals, load_empirical

DEFAULT_EXPLAINERS = DEFAULT_CLASSIFIER.parent
"""Where the embedded default classifier's explainers live, one folder per registry id."""


class EmpiricalExplainer(TrainedExplainer):
    """One pass of a trained model (:class:`~empexp.imitator.EmpiricalModel`) instead of the expensive
    explainer it imitates: its own pass (a LoRA-adapted copy of the encoder), or a head on the prediction
    pass's hidden states (``own_pass = False``, the ``-head`` ids: no extra pass).

    Args:
        source: Hub id or folder of an empirical explainer trained for this classifier; the embedded
            one for an embedded classifier.
        revision: Hub revision of ``source``.
        batch_size: texts explained together.

    Raises:
        InputError: no explainer given for a classifier without an embedded one, or one of another kind.
        ModelLoadError: the explainer cannot be loaded, or was trained for another classifier.
    """

    artefact = "an empirical explainer"
    own_pass: ClassVar[bool] = True
    """Whether the explainer runs its own pass (else it reads the prediction pass's hidden states)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.reads_hidden_states = not cls.own_pass

    def loaded(self) -> None:
        self._totals = ScoreTotals.of(self.classifier)
        self.reads_hidden_states = self.model.reads_hidden_states  # a branch continues from them
        method, own_pass = self.model.imitates["method"], self.model.own_pass
        if method != self.imitates or own_pass != self.own_pass:
            right = f"empirical-{method}" + ("" if own_pass else "-head")
            raise InputError(f"{self.source} is an {right} explainer; use it with method {right!r}, not {self.name!r}")

    load = staticmethod(load_empirical)

    def details(self) -> dict[str, Any]:
        return {"imitates": self.model.imitates, "explainer": self.source}

    @torch.no_grad()
    def attribute(self, batch: Batch, prediction: PredictionPass) -> Attribution:
        targets = prediction.targets
        passes = len(targets) * self.model.pass_share
        total = None
        if self.model.complete:
            total, baseline_passes = self._totals(batch, prediction.logits, targets)
            passes += baseline_passes  # only for layouts not seen before
        return Attribution(self.model(batch, targets, prediction.hidden_states, total), passes=passes)


@register
class EmpiricalIG(EmpiricalExplainer):
    """Predicts Integrated Gradients' scores with a LoRA-adapted copy of the classifier's encoder (one pass)."""

    name = "empirical-ig"
    display_name = "Empirical IG (encoder copy)"
    description = "A copy of the encoder trained to predict Integrated Gradients' scores in one pass."
    kind = "empirical"
    imitates = "ig"


@register
class EmpiricalSV(EmpiricalExplainer):
    """Predicts Shapley Value Sampling's scores with a LoRA-adapted copy of the classifier's encoder (one pass)."""

    name = "empirical-sv"
    display_name = "Empirical SV (encoder copy)"
    description = "A copy of the encoder trained to predict Shapley Value Sampling's scores in one pass."
    kind = "empirical"
    imitates = "sv"


@register
class EmpiricalIGHead(EmpiricalExplainer):
    """Predicts Integrated Gradients' scores from the prediction pass's hidden states (no extra pass)."""

    name = "empirical-ig-head"
    display_name = "Empirical IG (head on the prediction pass)"
    description = "A small head on the prediction pass's hidden states, trained to predict IG: no extra pass."
    kind = "empirical"
    imitates = "ig"
    own_pass = False


@register
class EmpiricalSVHead(EmpiricalExplainer):
    """Predicts Shapley Value Sampling's scores from the prediction pass's hidden states (no extra pass)."""

    name = "empirical-sv-head"
    display_name = "Empirical SV (head on the prediction pass)"
    description = "A small head on the prediction pass's hidden states, trained to predict SV: no extra pass."
    kind = "empirical"
    imitates = "sv"
    own_pass = False


def add_explainer_option(parser: argparse.ArgumentParser, default: str) -> None:
    """Add the repeatable ``--explainer METHOD=ID_OR_DIR`` option (empirical explainers and DiffMask probes);
    its value is a list of ``(id, source)``."""

    def pair(text: str) -> tuple[str, str]:
        name, _, source = text.partition("=")
        if not source or not name.startswith(("empirical-", "diffmask-")):
            raise argparse.ArgumentTypeError(
                f"expected METHOD=ID_OR_DIR with an empirical-* or diffmask-* method, got {text!r}"
            )
        return name, source

    parser.add_argument(
        "--explainer",
        action="append",
        type=pair,
        metavar="METHOD=ID_OR_DIR",
        help="an empirical explainer or DiffMask probes, e.g. empirical-ig=user/my-explainer; repeatable "
        f"(default: {default})",
    )
