"""What every explainer shares: validation, tokenisation, grouping into batches, prediction, cost."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, ClassVar, Literal

import torch

from empexp.classifier import Batch, Classifier, EncodedText, PredictionPass, check_counts
from empexp.explanation import Explanation

Kind = Literal["expensive", "empirical", "diffmask", "attention"]


@dataclass(frozen=True)
class Attribution:
    """What :meth:`Explainer.attribute` computes for a batch, padded, tokens last.

    Attributes:
        scores: ``(batch, tokens)`` for the target classes; 0 at special and pad positions for the
            attribution methods.
        passes: model passes (rows) it ran beyond the prediction pass, for the reported cost (a pass through
            some of the layers counts as that share of one).
        layer_scores: ``(batch, layers or hook points, tokens)``, for methods that look inside the model.
        head_scores: ``(batch, layers, heads, tokens)``, likewise.
    """

    scores: torch.Tensor
    passes: float = 0
    layer_scores: torch.Tensor | None = None
    head_scores: torch.Tensor | None = None


class PassCounter:
    """Counts the model passes of one :meth:`Explainer.attribute` call: one per row of a wrapped forward's input."""

    def __init__(self) -> None:
        self.rows = 0

    def wrap(self, forward: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``forward``, counting the rows of its first argument."""

        def counted(inputs: torch.Tensor, *args: Any) -> torch.Tensor:
            self.rows += inputs.shape[0]
            return forward(inputs, *args)

        return counted


class Explainer(ABC):
    """Turns texts into :class:`~empexp.explanation.Explanation` objects for one classifier.

    Subclasses implement :meth:`attribute` for a padded batch; grouping, the prediction pass (the
    explained target is always the predicted class), timing and pass counting happen here once.
    """

    name: ClassVar[str]
    """Registry id, e.g. ``"ig"``."""

    display_name: ClassVar[str]
    """What people read, e.g. ``"Integrated Gradients"``."""

    description: ClassVar[str]
    """One line saying what the method is, shown beside its view and in ``--method`` help."""

    kind: ClassVar[Kind]
    """The family: ``expensive`` (many model passes), ``empirical`` (trained to imitate an expensive one),
    ``diffmask`` (trained probes of the model's own states) or ``attention`` (read off the prediction pass)."""

    imitates: ClassVar[str | None] = None
    """For trained explainers that imitate another method: that method's id."""

    samples: int | None = None
    """Samples (IG steps, SV permutations) per explanation, where the method has such a knob."""

    renamed: ClassVar[dict[str, str]] = {}
    """Older option names :func:`~empexp.explainers.get_explainer` still takes, each with its new name."""

    reads_hidden_states: ClassVar[bool] = False
    """Whether :meth:`attribute` needs the prediction pass's hidden states."""

    def __init__(self, classifier: Classifier, *, batch_size: int = 8, pad_batches: bool = False):
        check_counts(batch_size=batch_size)
        self.classifier = classifier
        self.batch_size = batch_size
        self.pad_batches = pad_batches

    reads_attentions: ClassVar[bool] = False
    """Whether :meth:`attribute` needs the prediction pass's attention weights."""

    @abstractmethod
    def attribute(self, batch: Batch, prediction: PredictionPass) -> Attribution:
        """The :class:`Attribution` of a collated batch for the predicted classes (``prediction.targets``).

        ``prediction`` is the classifier's pass over ``batch``, with hidden states and attention weights
        where the class reads them. Explainers keep no state between calls: concurrent calls on one
        explainer do not interfere (except through the model, for methods that hook into it).
        """

    def details(self) -> dict[str, Any]:
        """Method settings recorded with each explanation."""
        return {}

    def explain(self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None) -> list[Explanation]:
        """Explain the predicted class of each text, or pair (``text_pairs[i]`` goes with ``texts[i]``);
        the result keeps the order of ``texts``.

        Raises:
            InputError: a text is empty, whitespace only, or not a string (a tuple: use ``text_pairs``),
                or ``text_pairs`` does not match ``texts``.
        """
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(text_pairs, str):
            text_pairs = [text_pairs]
        encoded = self.classifier.encode(texts, text_pairs)
        results: list[Explanation | None] = [None] * len(encoded)
        for group in group_by_length(encoded, self.batch_size, pad=self.pad_batches):
            members = [encoded[i] for i in group]
            for i, explanation in zip(group, self._explain_group(members), strict=True):
                results[i] = explanation
        return results

    def _explain_group(self, encoded: list[EncodedText]) -> list[Explanation]:
        start = time.perf_counter()
        batch = self.classifier.collate(encoded)
        prediction = self.classifier.prediction_pass(
            batch, hidden_states=self.reads_hidden_states, attentions=self.reads_attentions
        )
        return self._explain_batch(encoded, batch, prediction, start)

    def _explain_batch(
        self, encoded: list[EncodedText], batch: Batch, prediction: PredictionPass, start: float
    ) -> list[Explanation]:
        """Explanations of a collated batch given its ``prediction`` pass, timed from ``start``."""
        logits, targets = prediction.logits, prediction.targets
        result = self.attribute(batch, prediction)
        parts = {"scores": result.scores, "layer_scores": result.layer_scores, "head_scores": result.head_scores}
        parts = {name: value.detach().float().cpu() for name, value in parts.items() if value is not None}
        seconds = (time.perf_counter() - start) / len(encoded)
        passes = (len(encoded) + result.passes) / len(encoded)  # the prediction pass, then the method's own
        keep = batch.attention_mask.bool().cpu()
        probabilities = self.classifier.probabilities(logits)
        # Tokens are the last dimension of every part; padding goes.
        unpadded = [
            {name: value[row][..., keep[row]].tolist() for name, value in parts.items()} for row in range(len(keep))
        ]
        return [
            Explanation(
                text=e.text,
                tokens=e.tokens,
                offsets=e.offsets,
                method=self.name,
                samples=self.samples,
                target=int(target),
                label=self.classifier.labels[int(target)],
                probabilities=probs,
                forward_passes=passes,
                seconds=seconds,
                truncated=e.truncated,
                details=self.details(),
                text_pair=e.text_pair,
                segment=e.segments,
                **values,
            )
            for e, values, target, probs in zip(encoded, unpadded, targets, probabilities, strict=True)
        ]


def explain_together(explainers: Sequence[Explainer], text: str, text_pair: str | None = None) -> list[Explanation]:
    """``text`` (with ``text_pair``, if given) explained by each of ``explainers`` (all of one classifier)
    from one shared prediction pass.

    What the app's one-pass views use. Each explanation still counts that pass and its time in its
    cost: what the method costs on its own.

    Raises:
        InputError: the text is empty, whitespace only, or not a string.
        ValueError: the explainers belong to different classifiers.
    """
    classifier = explainers[0].classifier
    if any(e.classifier is not classifier for e in explainers):
        raise ValueError("explain_together needs explainers of one classifier")
    encoded = classifier.encode([text], None if text_pair is None else [text_pair])
    start = time.perf_counter()
    batch = classifier.collate(encoded)
    prediction = classifier.prediction_pass(
        batch,
        hidden_states=any(e.reads_hidden_states for e in explainers),
        attentions=any(e.reads_attentions for e in explainers),
    )
    shared = time.perf_counter() - start
    return [e._explain_batch(encoded, batch, prediction, time.perf_counter() - shared)[0] for e in explainers]


def group_by_length(encoded: Sequence[EncodedText], batch_size: int, *, pad: bool) -> list[list[int]]:
    """Indices of ``encoded`` in batches of at most ``batch_size``, shortest texts first.

    With ``pad=False`` a batch only holds texts of identical length and special-token layout, so no
    compute goes to padding (what wins on a CPU) and sampling explainers see identical feature sets
    batched or alone. With ``pad=True`` neighbours in length share a batch (what wins on a GPU).
    """
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), encoded[i].special))
    if pad:
        runs = [order]
    else:
        runs = [list(run) for _, run in groupby(order, key=lambda i: (len(encoded[i]), encoded[i].special))]
    return [run[start : start + batch_size] for run in runs for start in range(0, len(run), batch_size)]
