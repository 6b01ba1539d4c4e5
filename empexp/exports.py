"""Explanations in other tools' formats."""

from __future__ import annotations

from collections.abc import Sequence

from empexp.explanation import Explanation


def attviz(explanations: Sequence[Explanation]) -> list[dict]:
    """AttViz's JSON input: per text the tokens, one attention vector per head, and the class probabilities.

    Needs explanations with ``head_scores`` (method ``attention``). As AttViz's own generator writes it,
    values are strings and ``text`` is the tokens joined by spaces; heads are named ``layer L head H``.

    Raises:
        ValueError: an explanation carries no per-head attention.
    """
    records = []
    for explanation in explanations:
        if explanation.head_scores is None:
            raise ValueError(f"AttViz needs per-head attention (method 'attention'), not {explanation.method!r}")
        vectors = [
            {"name": f"layer {layer + 1} head {head + 1}", "vectors": [str(v) for v in values]}
            for layer, heads in enumerate(explanation.head_scores)
            for head, values in enumerate(heads)
        ]
        records.append(
            {
                "text": " ".join(explanation.tokens),
                "sets": [{"attention_vectors": vectors, "tokens": explanation.tokens}],
                "output_activations": [
                    {"value": str(p), "name": label} for label, p in explanation.probabilities.items()
                ],
            }
        )
    return records
