"""Explanations turned into what Gradio components display. Pure functions, no Gradio state."""

from __future__ import annotations

import html
from dataclasses import replace

from empexp.convergence import agreement
from empexp.explainers import display_name
from empexp.explanation import Explanation
from empexp.faithfulness import METRICS
from empexp.probes import validation_markdown
from empexp.words import word_groups, words

__all__ = ["word_groups", "words"]  # the views' word level, also importable from here

SAMPLE_NAMES = {"ig": "steps", "sv": "permutations"}


def scale_of(*explanations: Explanation) -> float:
    """The largest score magnitude over ``explanations``: one colour scale for all of them."""
    return max((abs(s) for e in explanations for s in e.scores), default=0.0) or 1.0


PAIR_MARK = "  ‖  "
"""Shown between the two texts of a pair in every text view."""


def shown(explanation: Explanation, pieces: bool) -> Explanation:
    """``explanation`` as the page shows it: per word piece with ``pieces``, else per word (:func:`words`)."""
    return explanation if pieces else words(explanation)


def highlights(
    explanation: Explanation, scale: float | None = None, *, pieces: bool = False
) -> list[tuple[str, float | None]]:
    """The user's own text in spans for ``gr.HighlightedText``: each word's span (each word piece's with
    ``pieces``) with its score divided by ``scale`` (default: the largest magnitude shown), the text
    between them uncoloured. Special tokens have no span and are left out; a pair's second text follows
    the first after :data:`PAIR_MARK`; a truncated text ends with a marker instead of its unexplained rest.
    """
    view = shown(explanation, pieces)
    scale = scale or scale_of(view)
    texts = [explanation.text] if explanation.text_pair is None else [explanation.text, explanation.text_pair]
    spans: list[tuple[str, float | None]] = []
    for segment, text in enumerate(texts):
        if segment:
            spans.append((PAIR_MARK, None))
        position = 0
        for token, (offset, score) in enumerate(zip(view.offsets, view.scores)):
            if offset is None or (view.segment is not None and view.segment[token] != segment):
                continue
            start, end = max(offset[0], position), offset[1]
            if end <= start:  # tokenisers may give overlapping spans (e.g. a merged prefix); keep the text once
                continue
            if start > position:
                spans.append((text[position:start], None))
            spans.append((text[start:end], round(max(-1.0, min(1.0, score / scale)), 4)))
            position = end
        if position < len(text) and not explanation.truncated:
            spans.append((text[position:], None))
    if explanation.truncated:
        spans.append((" … (not explained: past the model's length limit)", None))
    return spans


def cost(explanation: Explanation) -> str:
    """One line of Markdown: method, samples, model passes and time for this explanation."""
    name = display_name(explanation.method)
    samples = ""
    if explanation.samples is not None:
        samples = f" · {explanation.samples} {SAMPLE_NAMES.get(explanation.method, 'samples')}"
    passes = f"{explanation.forward_passes:.2f}".rstrip("0").rstrip(".")  # a branch runs part of a pass: 1.5
    return f"**{name}**{samples} · {passes} model passes · {explanation.seconds * 1000:.0f} ms"


def agreement_line(estimate: Explanation, target: Explanation) -> str:
    """One line of Markdown: how close an empirical explanation is to the expensive one."""
    numbers = agreement(estimate, target)
    return (
        f"vs {display_name(target.method)}: MSE {numbers['mse']:.4f} · "
        f"Spearman rank correlation {numbers['spearman']:.2f}"
    )


def heatmap(
    explanation: Explanation,
    rows: dict[str, list[float]],
    *,
    caption: str,
    legend: tuple[str, str],
    per_row: bool = False,
) -> str:
    """An HTML table, one column per token of ``explanation`` and one row per entry of ``rows``, cells
    coloured by value; a pair's second text starts after a thick rule.

    Values are shown rounded to 2 decimals. Colours span [0, 1], or each row's own range with
    ``per_row`` (for rows on different scales); ``legend`` names the two ends of the colour bar.
    Every text is escaped: tokens come from the user.
    """
    tokens = explanation.tokens
    segment = explanation.segment or [0] * len(tokens)
    second = next((i for i, s in enumerate(segment) if s == 1), None)

    def where(i: int) -> str:
        return ' class="second"' if i == second else ""

    from matplotlib import colormaps

    # viridis: perceptually even, legible for colour-blind readers, light text on its dark end.
    viridis = colormaps["viridis"]

    def colours(shades: list[float]) -> list[str]:  # one colormap call per row: per cell it costs ms
        return ["#{:02x}{:02x}{:02x}".format(*rgba[:3]) for rgba in viridis(shades, bytes=True)]

    head = "".join(
        f'<th class="token{" second" if i == second else ""}">{html.escape(t)}</th>' for i, t in enumerate(tokens)
    )
    body = []
    for name, values in rows.items():
        low, high = (min(values), max(values)) if per_row and values else (0.0, 1.0)
        shades = [(value - low) / (high - low) if high > low else 0.5 for value in values]
        cells = [
            f'<td{where(i)} style="background:{background};color:{"#000" if shade > 0.55 else "#fff"}" '
            f'title="{html.escape(token)}: {value:.4f}">{value:.2f}</td>'
            for i, (token, value, shade, background) in enumerate(zip(tokens, values, shades, colours(shades)))
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


def keep_heatmap(explanation: Explanation, *, pieces: bool = False) -> str:
    """DiffMask keep probabilities as an HTML heatmap: one row per hook point, one column per word (per
    word piece with ``pieces``)."""
    explanation = shown(explanation, pieces)
    values = explanation.layer_scores or []
    names = explanation.details.get("layer_names", [str(i) for i in range(len(values))])
    return heatmap(
        explanation,
        dict(zip(names, values)),
        caption=f"DiffMask keep probability per hook point (rows) and {'token' if pieces else 'word'} (columns)",
        legend=("0 = dropped", "1 = kept"),
    )


def attention_series(explanation: Explanation, *, pieces: bool = False) -> str:
    """Every aggregation of the heads' self-attention per token (per word unless ``pieces``) as an HTML
    heatmap, each row on its own scale."""
    import torch

    from empexp.explainers.attention import AGGREGATIONS, aggregate

    explanation = shown(explanation, pieces)
    heads = torch.tensor(explanation.head_scores or [])
    rows = {how: aggregate(heads, how, (0, 1)).tolist() for how in AGGREGATIONS}
    return heatmap(
        explanation,
        rows,
        caption=f"Self-attention over all heads and layers, per aggregation (rows) and {'token' if pieces else 'word'} "
        "(columns)",
        legend=("row's lowest", "row's highest"),
        per_row=True,
    )


def faithfulness_line(scores: dict[str, float]) -> str:
    """One line of Markdown: an explanation's AOPC comprehensiveness and sufficiency."""
    numbers = " · ".join(f"{m.name} **{scores[m.name]:.3f}** ({m.direction})" for m in METRICS)
    return f"Faithfulness (AOPC over the top 10 to 100% tokens): {numbers}"


def head_highlights(
    explanation: Explanation, layer: int, head: int, *, pieces: bool = False
) -> list[tuple[str, float | None]]:
    """One head's self-attention per token, as :func:`highlights` spans (scaled to that head's largest)."""
    heads = explanation.head_scores or []
    layer = max(0, min(int(layer) - 1, len(heads) - 1))
    head = max(0, min(int(head) - 1, len(heads[layer]) - 1))
    one = replace(explanation, scores=heads[layer][head], layer_scores=None, head_scores=None)
    return highlights(one, pieces=pieces)


def attention_legend(explanation: Explanation, *, pieces: bool = False) -> str:
    """The attention view's own sequential scale, in one line of Markdown: from 0 (uncoloured) to the
    largest value shown, never the attributions' diverging one (attention weights are not signed)."""
    return (
        f"Scale: uncoloured = 0, deepest red = the largest value shown ({scale_of(shown(explanation, pieces)):.3f}); "
        f"{'word pieces' if pieces else 'a word: the mean of its pieces'}."
    )


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
