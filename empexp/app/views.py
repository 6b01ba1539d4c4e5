"""Explanations turned into what Gradio components display. Pure functions, no Gradio state."""

from __future__ import annotations

from dataclasses import replace

from empexp.convergence import agreement
from empexp.explanation import Explanation

METHOD_NAMES = {
    "ig": "Integrated Gradients",
    "sv": "Shapley Value Sampling",
    "empirical-ig": "Empirical IG (encoder copy)",
    "empirical-sv": "Empirical SV (encoder copy)",
    "empirical-ig-head": "Empirical IG (head on the prediction pass)",
    "empirical-sv-head": "Empirical SV (head on the prediction pass)",
    "attention": "Self-attention",
    "diffmask-input": "DiffMask (input)",
    "diffmask-hidden": "DiffMask (hidden states)",
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


def keep_heatmap(explanation: Explanation):
    """A tokens x hook points heatmap of DiffMask keep probabilities (a matplotlib figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = explanation.layer_scores or []
    names = explanation.details.get("layer_names", [str(i) for i in range(len(values))])
    width = max(6.0, 0.45 * len(explanation.tokens) + 2.5)
    figure, axes = plt.subplots(figsize=(min(width, 24.0), 0.4 * len(values) + 1.6))
    image = axes.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(explanation.tokens)), explanation.tokens, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    figure.colorbar(image, ax=axes, label="keep probability")
    figure.tight_layout()
    return figure


def attention_series(explanation: Explanation):
    """Every aggregation of the heads' self-attention over token positions (a matplotlib figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from empexp.explainers.attention import AGGREGATIONS, aggregate

    heads = torch.tensor(explanation.head_scores or [])
    figure, axes = plt.subplots(figsize=(min(max(6.0, 0.45 * len(explanation.tokens) + 2.0), 24.0), 3.2))
    for how in AGGREGATIONS:
        axes.plot(aggregate(heads, how, (0, 1)).tolist(), marker="o", markersize=3, label=how)
    axes.set_xticks(range(len(explanation.tokens)), explanation.tokens, rotation=60, ha="right", fontsize=8)
    axes.set_ylabel("over all heads")
    axes.legend(fontsize=8, ncols=len(AGGREGATIONS))
    figure.tight_layout()
    return figure


def head_highlights(explanation: Explanation, layer: int, head: int) -> list[tuple[str, float | None]]:
    """One head's self-attention per token, as :func:`highlights` spans (scaled to that head's largest)."""
    heads = explanation.head_scores or []
    layer = max(0, min(int(layer) - 1, len(heads) - 1))
    head = max(0, min(int(head) - 1, len(heads[layer]) - 1))
    return highlights(replace(explanation, scores=heads[layer][head], layer_scores=None, head_scores=None))


def validation_table(explanation: Explanation) -> str:
    """Markdown table of the per-point KL, agreement and fraction kept the probes reached in validation."""
    validation = explanation.details.get("validation")
    if not validation:
        return "No validation metrics ship with these probes."
    rows = zip(explanation.details["layer_names"], validation["kl"], validation["agreement"], validation["kept"])
    lines = [
        f"Reached on {validation['texts']} held-out texts (deterministic gates; margin "
        f"{explanation.details['margin']}):",
        "",
        "| hook point | KL | agreement | fraction kept |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {kl:.3f} | {agree:.3f} | {kept:.3f} |" for name, kl, agree, kept in rows]
    return "\n".join(lines)
