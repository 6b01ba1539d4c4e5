"""How faithful token scores are to the classifier: ERASER's AOPC comprehensiveness and sufficiency.

DeYoung et al. (2020), "ERASER: A Benchmark to Evaluate Rationalized NLP Models". For k in
``fractions`` the top-k share of a text's tokens by score is removed (comprehensiveness: does the
prediction fall without them?) or kept alone (sufficiency: do they suffice?); removed tokens become
the pad token, the same baseline the attribution methods integrate from. Each metric is the drop in
the predicted class's probability averaged over the k (the area over the perturbation curve, AOPC).

Written here rather than reused: ferret-xai has both metrics, but recomputes one forward pass per k
and explanation on its own explanation type; here every perturbation of every explanation of a text
is deduplicated and batched into as few passes as the batch size allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from empexp import layers
from empexp.classifier import Classifier, EncodedText
from empexp.explanation import Explanation

FRACTIONS = tuple(round(0.1 * k, 1) for k in range(1, 11))
"""k = 10%, 20%, ..., 100% of the text's (non-special) tokens."""


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


COMPREHENSIVENESS = Metric("comprehensiveness", higher_is_better=True)
"""Drop in the predicted class's probability when the top-k% tokens are removed."""
SUFFICIENCY = Metric("sufficiency", higher_is_better=False)
"""Drop in the predicted class's probability when only the top-k% tokens are kept."""
METRICS = (COMPREHENSIVENESS, SUFFICIENCY)


def top_k_masks(scores: torch.Tensor, special: torch.Tensor, fractions: Sequence[float] = FRACTIONS) -> torch.Tensor:
    """``(len(fractions), tokens)`` booleans: the top ``ceil(k * n)`` of the ``n`` non-special tokens by
    score for each k (ties go to the earlier token, so the order is deterministic)."""
    candidates = (~special).nonzero().flatten()
    ranked = candidates[torch.sort(scores[candidates], descending=True, stable=True).indices]
    masks = torch.zeros(len(fractions), len(scores), dtype=torch.bool)
    for row, fraction in enumerate(fractions):
        masks[row, ranked[: math.ceil(round(fraction * len(candidates), 6))]] = True
    return masks


def aopc(
    classifier: Classifier,
    explanations: Sequence[Explanation],
    fractions: Sequence[float] = FRACTIONS,
    batch_size: int = 64,
) -> list[dict[str, float]]:
    """AOPC comprehensiveness (higher is better) and sufficiency (lower is better) of each explanation.

    Explanations of one text share its perturbations: identical inputs run once. The explained class
    is each explanation's ``target``; its probability on the unperturbed text is measured in the same
    passes, so both metrics are exactly 0 for a perturbation that changes nothing.

    Raises:
        ValueError: an explanation's tokens are not what ``classifier`` makes of its text.
    """
    instances = list(dict.fromkeys((e.text, e.text_pair) for e in explanations))
    encoded = {(text, pair): classifier.encode([text], None if pair is None else [pair])[0] for text, pair in instances}
    pad = classifier.tokenizer.pad_token_id
    rows: dict[tuple[str, str | None, tuple[int, ...]], int] = {}  # (text, pair, input ids) -> row of `inputs`
    inputs: list[tuple[EncodedText, list[int]]] = []

    def row_of(e: EncodedText, ids: list[int]) -> int:
        key = (e.text, e.text_pair, tuple(ids))
        if key not in rows:
            rows[key] = len(inputs)
            inputs.append((e, ids))
        return rows[key]

    plans = []
    for explanation in explanations:
        e = encoded[explanation.text, explanation.text_pair]
        if explanation.tokens != e.tokens:
            raise ValueError(
                f"the {explanation.method} explanation's tokens are not the classifier's for its text: "
                "was it made for another classifier?"
            )
        ids = torch.tensor(e.input_ids)
        special = torch.tensor(e.special)
        top = top_k_masks(torch.tensor(explanation.scores), special, fractions)
        removed = torch.where(top, pad, ids)
        kept = torch.where(top | special, ids, pad)
        plans.append(
            (
                explanation.target,
                row_of(e, e.input_ids),
                [row_of(e, r.tolist()) for r in removed],
                [row_of(e, r.tolist()) for r in kept],
            )
        )
    probabilities = _probabilities(classifier, inputs, batch_size)
    results = []
    for target, original, removed, kept in plans:
        p = probabilities[original, target]
        results.append(
            {
                COMPREHENSIVENESS.name: float((p - probabilities[removed, target]).mean()),
                SUFFICIENCY.name: float((p - probabilities[kept, target]).mean()),
            }
        )
    return results


@torch.no_grad()
def _probabilities(
    classifier: Classifier, inputs: list[tuple[EncodedText, list[int]]], batch_size: int
) -> torch.Tensor:
    """Class probabilities of each input, in order; inputs of one length share batches (no padding)."""
    probabilities = torch.empty(len(inputs), len(classifier.labels))
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i][1]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for length in sorted({len(inputs[i][1]) for i in chunk}):
            same = [i for i in chunk if len(inputs[i][1]) == length]
            ids = torch.tensor([inputs[i][1] for i in same], device=classifier.device)
            mask = torch.ones_like(ids)
            types = [inputs[i][0].token_type_ids for i in same]
            types = torch.tensor(types, device=classifier.device) if types[0] is not None else None
            # Positions of the unperturbed text: RoBERTa would otherwise renumber around the pads.
            originals = torch.tensor([inputs[i][0].input_ids for i in same], device=classifier.device)
            positions = layers.position_ids(classifier.model, originals)
            logits = classifier.forward(ids, mask, types, positions)
            probabilities[same] = logits.float().softmax(-1).cpu()
    return probabilities
