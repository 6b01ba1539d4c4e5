"""Tokens grouped into words: what the views show by default, and what reports aggregate over."""

from __future__ import annotations

from dataclasses import replace

from empexp.explanation import Explanation


def word_groups(explanation: Explanation) -> list[list[int]]:
    """Token indices grouped into words: a token whose span touches the previous one's inside a word
    (letters or digits on both sides, as ``p|wn|ed``) joins it; special tokens stand alone."""
    groups: list[list[int]] = []
    for i, offset in enumerate(explanation.offsets):
        if offset is not None and groups and explanation.offsets[groups[-1][-1]] is not None:
            previous = explanation.offsets[groups[-1][-1]]
            text = text_of(explanation, i)
            same_text = text_of(explanation, groups[-1][-1]) is text
            if (
                same_text
                and previous[1] == offset[0]
                and 0 < offset[0] < len(text)
                and (text[offset[0] - 1].isalnum() and text[offset[0]].isalnum())
            ):
                groups[-1].append(i)
                continue
        groups.append([i])
    return groups


def words(explanation: Explanation) -> Explanation:
    """``explanation`` at word level (:func:`word_groups`): a word's score is the sum of its pieces'
    (attributions add up); its keep probabilities and attention rows, their mean (they are rates)."""
    groups = word_groups(explanation)
    if len(groups) == len(explanation.tokens):
        return explanation

    def total(values: list[float]) -> list[float]:
        return [sum(values[i] for i in group) for group in groups]

    def mean(values: list[float]) -> list[float]:
        return [sum(values[i] for i in group) / len(group) for group in groups]

    def span(group: list[int]) -> tuple[int, int] | None:
        first, last = explanation.offsets[group[0]], explanation.offsets[group[-1]]
        return None if first is None else (first[0], last[1])

    offsets = [span(group) for group in groups]
    tokens = [
        explanation.tokens[g[0]] if o is None else text_of(explanation, g[0])[o[0] : o[1]]
        for g, o in zip(groups, offsets)
    ]
    return replace(
        explanation,
        tokens=tokens,
        offsets=offsets,
        scores=total(explanation.scores),
        layer_scores=None if explanation.layer_scores is None else [mean(r) for r in explanation.layer_scores],
        head_scores=None
        if explanation.head_scores is None
        else [[mean(r) for r in layer] for layer in explanation.head_scores],
        segment=None if explanation.segment is None else [explanation.segment[g[0]] for g in groups],
    )


def text_of(explanation: Explanation, token: int) -> str:
    """The text a token's offsets point into: ``text``, or ``text_pair`` for a pair's second segment."""
    if explanation.segment is not None and explanation.segment[token] == 1:
        return explanation.text_pair
    return explanation.text
