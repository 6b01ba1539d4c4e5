"""Explanations turned into what Gradio components display. Pure functions, no Gradio state."""

from __future__ import annotations

import html
from dataclasses import replace

from empexp.convergence import agreement
from empexp.diffmask import validation_markdown
from empexp.explainers import display_name
from empexp.explanation import Explanation
from empexp.faithfulness import METRICS

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
    name = display_name(explanation.method)
    samples = ""
    if explanation.samples is not None:
        samples = f" · {explanation.samples} {SAMPLE_NAMES.get(explanation.method, 'samples')}"
    return f"**{name}**{samples} · {explanation.forward_passes:.0f} model passes · {explanation.seconds * 1000:.0f} ms"


def agreement_line(estimate: Explanation, target: Explanation) -> str:
    """One line of Markdown: how close an empirical explanation is to the expensive one."""
    numbers = agreement(estimate, target)
    return (
        f"vs {display_name(target.method)}: MSE {numbers['mse']:.4f} · "
        f"Spearman rank correlation {numbers['spearman']:.2f}"
    )


def heatmap(
    tokens: list[str], rows: dict[str, list[float]], *, caption: str, legend: tuple[str, str], per_row: bool = False
) -> str:
    """An HTML table, one column per token and one row per entry of ``rows``, cells coloured by value.

    Values are shown rounded to 2 decimals. Colours span [0, 1], or each row's own range with
    ``per_row`` (for rows on different scales); ``legend`` names the two ends of the colour bar.
    Every text is escaped: tokens come from the user.
    """
    from matplotlib import colormaps

    # viridis: perceptually even, legible for colour-blind readers, light text on its dark end.
    viridis = colormaps["viridis"]

    def colours(shades: list[float]) -> list[str]:  # one colormap call per row: per cell it costs ms
        return ["#{:02x}{:02x}{:02x}".format(*rgba[:3]) for rgba in viridis(shades, bytes=True)]

    head = "".join(f'<th class="token">{html.escape(t)}</th>' for t in tokens)
    body = []
    for name, values in rows.items():
        low, high = (min(values), max(values)) if per_row and values else (0.0, 1.0)
        shades = [(value - low) / (high - low) if high > low else 0.5 for value in values]
        cells = [
            f'<td style="background:{background};color:{"#000" if shade > 0.55 else "#fff"}" '
            f'title="{html.escape(token)}: {value:.4f}">{value:.2f}</td>'
            for token, value, shade, background in zip(tokens, values, shades, colours(shades))
        ]
        body.append(f'<tr><th class="row">{html.escape(name)}</th>{"".join(cells)}</tr>')
    bar = ", ".join(colours([i / 8 for i in range(9)]))
    return (
        f'<div class="empexp-heatmap"><table><caption>{html.escape(caption)}</caption>'
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f'<div class="legend"><span>{html.escape(legend[0])}</span>'
        f'<span class="bar" style="background:linear-gradient(to right, {bar})"></span>'
        f"<span>{html.escape(legend[1])}</span></div></div>"
    )


def keep_heatmap(explanation: Explanation) -> str:
    """DiffMask keep probabilities as an HTML heatmap: one row per hook point, one column per token."""
    values = explanation.layer_scores or []
    names = explanation.details.get("layer_names", [str(i) for i in range(len(values))])
    return heatmap(
        explanation.tokens,
        dict(zip(names, values)),
        caption="DiffMask keep probability per hook point (rows) and token (columns)",
        legend=("0 = dropped", "1 = kept"),
    )


def attention_series(explanation: Explanation) -> str:
    """Every aggregation of the heads' self-attention per token as an HTML heatmap, each row on its own scale."""
    import torch

    from empexp.explainers.attention import AGGREGATIONS, aggregate

    heads = torch.tensor(explanation.head_scores or [])
    rows = {how: aggregate(heads, how, (0, 1)).tolist() for how in AGGREGATIONS}
    return heatmap(
        explanation.tokens,
        rows,
        caption="Self-attention over all heads and layers, per aggregation (rows) and token (columns)",
        legend=("row's lowest", "row's highest"),
        per_row=True,
    )


def faithfulness_line(scores: dict[str, float]) -> str:
    """One line of Markdown: an explanation's AOPC comprehensiveness and sufficiency."""
    numbers = " · ".join(f"{m.name} **{scores[m.name]:.3f}** ({m.direction})" for m in METRICS)
    return f"Faithfulness (AOPC over the top 10 to 100% tokens): {numbers}"


def head_highlights(explanation: Explanation, layer: int, head: int) -> list[tuple[str, float | None]]:
    """One head's self-attention per token, as :func:`highlights` spans (scaled to that head's largest)."""
    heads = explanation.head_scores or []
    layer = max(0, min(int(layer) - 1, len(heads) - 1))
    head = max(0, min(int(head) - 1, len(heads[layer]) - 1))
    return highlights(replace(explanation, scores=heads[layer][head], layer_scores=None, head_scores=None))


def validation_table(explanation: Explanation) -> str:
    """Markdown table of what the probes reached in validation, per hook point."""
    validation = explanation.details.get("validation")
    if not validation:
        return "No validation metrics ship with these probes."
    intro = (
        f"Reached on {validation['texts']} held-out texts (margin {explanation.details['margin']}; KL, agreement "
        "and fraction kept with deterministic gates, sampled KL with sampled ones; keep rate = mean keep "
        "probability, per predicted class in the last column):"
    )
    return intro + "\n\n" + validation_markdown(validation)
