"""Empirical explainers in the registry: ``empirical-ig``, ``empirical-sv`` and their ``-head`` variants."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from empexp.classifier import DEFAULT_CLASSIFIER, Classifier
from empexp.empirical import ScoreTotals, load_empirical
from empexp.errors import InputError
from empexp.explainers.base import Attribution, Explainer
from empexp.explainers.registry import register

DEFAULT_EXPLAINERS = DEFAULT_CLASSIFIER.parent
"""Where the embedded default classifier's explainers live, one folder per registry id."""


def embedded_or(source: str | Path | None, classifier: Classifier, name: str, *, what: str, option: str) -> str | Path:
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
            f"pass {option}=HUB_ID_OR_FOLDER (CLI: --explainer)"
        )
    return folder / name


class EmpiricalExplainer(Explainer):
    """One pass of a trained model instead of the expensive explainer it imitates.

    Args:
        explainer: Hub id or folder of an empirical explainer trained for this classifier; defaults
            to the embedded one when the classifier is the embedded default.
        revision: Hub revision of ``explainer``.
        batch_size: texts explained together (padded: it is a single pass).

    Raises:
        InputError: no explainer given for a classifier without an embedded one, or one of another kind.
        ModelLoadError: the explainer cannot be loaded, or was trained for another classifier.
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        explainer: str | Path | None = None,
        revision: str | None = None,
        batch_size: int = 32,
    ):
        super().__init__(classifier, batch_size=batch_size, pad_batches=True)
        explainer = embedded_or(explainer, classifier, self.name, what="an explainer", option="explainer")
        self.source = str(explainer)
        self.revision = revision
        self.model = load_empirical(explainer, classifier, revision=revision)
        self._totals = ScoreTotals.of(classifier)
        method, extra_pass = self.model.imitates["method"], self.model.extra_pass
        if method != self.imitates or extra_pass == self.reads_hidden_states:
            right = f"empirical-{method}" + ("" if extra_pass else "-head")
            raise InputError(f"{self.source} is a {right} explainer; use it with method {right!r}, not {self.name!r}")

    def details(self) -> dict[str, Any]:
        return {"imitates": self.model.imitates, "explainer": self.source}

    @torch.no_grad()
    def attribute(self, batch: dict[str, torch.Tensor], targets: torch.Tensor) -> Attribution:
        passes = len(targets) if self.model.extra_pass else 0
        total = None
        if self.model.complete:
            total, baseline_passes = self._totals(batch, batch["logits"], targets)
            passes += baseline_passes  # only for layouts not seen before
        return Attribution(self.model(batch, targets, batch.get("hidden_states"), total), passes=passes)


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
    reads_hidden_states = True


@register
class EmpiricalSVHead(EmpiricalExplainer):
    """Predicts Shapley Value Sampling's scores from the prediction pass's hidden states (no extra pass)."""

    name = "empirical-sv-head"
    display_name = "Empirical SV (head on the prediction pass)"
    description = "A small head on the prediction pass's hidden states, trained to predict SV: no extra pass."
    kind = "empirical"
    imitates = "sv"
    reads_hidden_states = True


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
