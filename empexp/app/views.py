"""Explanations turned into what Gradio components display. Pure functions, no Gradio state."""

from __future__ import annotations

from empexp.explanation import Explanation

METHOD_NAMES = {"ig": "Integrated Gradients", "sv": "Shapley Value Sampling"}
SAMPLE_NAMES = {"ig": "steps", "sv": "permutations"}


def highlights(explanation: Explanation) -> list[tuple[str, float | None]]:
    """The user's own text in spans for ``gr.HighlightedText``: each token's span with its score scaled
    to [-1, 1] by the largest magnitude, the text between tokens uncoloured. Special tokens have no
    span and are left out; a truncated text ends with a marker instead of its unexplained rest.
    """
    text = explanation.text
    scale = max((abs(s) for s in explanation.scores), default=0.0) or 1.0
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
        spans.append((text[start:end], round(score / scale, 4)))
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
