"""Explanations turned into what Gradio components display. Pure functions, no Gradio state."""

from __future__ import annotations

from empexp.convergence import agreement
from empexp.explanation import Explanation

METHOD_NAMES = {
    "ig": "Integrated Gradients",
    "sv": "Shapley Value Sampling",
    "empirical-ig": "Empirical IG (encoder copy)",
    "empirical-sv": "Empirical SV (encoder copy)",
    "empirical-ig-head": "Empirical IG (head on the prediction pass)",
    "empirical-sv-head": "Empirical SV (head on the prediction pass)",
}
SAMPLE_NAMES = {"ig": "steps", "sv": "permutations"}


def scale_of(*explanations: Explanation) -> float:
    """The largest score magnitude over ``explanations``: one colour scale for all of them."""
    return max((abs(s) for e in explanations for s in e.scores), default=0.0) or 1.0


def highlights(explanation: Explanation, scale: float | None = None) -> list[tuple[str, float | None]]:
    """The user's own text in spans for ``gr.HighlightedText``: each token's span with its score divided
    by ``scale`` (default: the largest magnitude in this explanation), the text between tokens
    uncoloured. Special tokens have no span and are left out; a truncated text ends with a marker
    instead of its unexplained rest.
    """
    text = explanation.text
    scale = scale or scale_of(explanation)
    spans: list[tuple[str, float | None]] = []
    position = 0
    for offset, score in zip(explanation.offsets, explanation.scores):
        if offset is None:
            continue
        start, end = max(offset[0], position), offset[1]
        if end <= start:  # tokenisers may give overlapping spans (e.g. a merged prefix); keep the text once
            continue
        if start > position:
            spans.append((text[position:start], None))
        spans.append((text[start:end], round(max(-1.0, min(1.0, score / scale)), 4)))
        position = end
    if explanation.truncated:
        spans.append((" … (not explained: past the model's length limit)", None))
    elif position < len(text):
        spans.append((text[position:], None))
    return spans


def cost(explanation: Explanation) -> str:
    """One line of Markdown: method, samples, model passes and time for this explanation."""
    name = METHOD_NAMES.get(explanation.method, explanation.method)
    samples = ""
    if explanation.samples is not None:
        samples = f" · {explanation.samples} {SAMPLE_NAMES.get(explanation.method, 'samples')}"
    return f"**{name}**{samples} · {explanation.forward_passes:.0f} model passes · {explanation.seconds * 1000:.0f} ms"


def agreement_line(estimate: Explanation, target: Explanation) -> str:
    """One line of Markdown: how close an empirical explanation is to the expensive one."""
    numbers = agreement(estimate, target)
    return (
        f"vs {METHOD_NAMES[target.method]}: MSE {numbers['mse']:.4f} · "
        f"Spearman rank correlation {numbers['spearman']:.2f}"
    )
