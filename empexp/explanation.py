"""The one result type of empexp: a token-level explanation of one prediction."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Explanation:
    """Per-token attribution scores for the prediction on one text.

    Every explainer returns this type and every view, metric and export consumes it. ``tokens``,
    ``offsets`` and ``scores`` are aligned and include special tokens (whose score is 0 for
    baseline-based methods). ``offsets`` are ``(start, end)`` character spans into ``text`` (for a
    pair, into the text ``segment`` names), or ``None`` for tokens that do not come from a text
    (special tokens, padding).
    """

    text: str
    tokens: list[str]
    offsets: list[tuple[int, int] | None]
    scores: list[float]
    method: str
    samples: int | None
    target: int
    label: str
    probabilities: dict[str, float]
    forward_passes: float
    seconds: float
    truncated: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    """Method-specific extras (settings such as the integration method or seed)."""
    layer_scores: list[list[float]] | None = None
    """Per layer (or hook point) and token, where the method looks inside the model: DiffMask's keep
    probabilities, attention's per-layer aggregation; ``details["layer_names"]`` names the rows."""
    head_scores: list[list[list[float]]] | None = None
    """Per layer, head and token: each head's attention of a token to itself (attention only)."""
    text_pair: str | None = None
    """The second text of a pair (``None`` for a single text, and then absent from the JSON)."""
    segment: list[int] | None = None
    """For pairs, per token, the text it belongs to (0: ``text``, 1: ``text_pair``); its offsets point
    into that text. ``None`` for a single text (absent from the JSON)."""

    def __post_init__(self) -> None:
        if not (len(self.tokens) == len(self.offsets) == len(self.scores)):
            raise ValueError(
                f"tokens, offsets and scores must align, got {len(self.tokens)}, "
                f"{len(self.offsets)} and {len(self.scores)}"
            )
        rows = list(self.layer_scores or []) + [row for layer in self.head_scores or [] for row in layer]
        if any(len(row) != len(self.tokens) for row in rows):
            raise ValueError("every row of layer_scores and head_scores must have one value per token")
        if (self.text_pair is None) != (self.segment is None) or len(self.segment or self.tokens) != len(self.tokens):
            raise ValueError("a pair's explanation needs one segment per token; a single text's none")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; offsets become lists (or null). Shallow: it shares this explanation's lists
        (``dataclasses.asdict`` deep-copies every score, a third of an app request's time)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.text_pair is None:  # single texts keep the JSON they always had
            del data["text_pair"], data["segment"]
        data["offsets"] = [list(span) if span is not None else None for span in self.offsets]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        """Rebuild an explanation from :meth:`to_dict` output; unknown keys are rejected."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Explanation fields: {sorted(unknown)}")
        data = dict(data)
        data["offsets"] = [tuple(span) if span is not None else None for span in data["offsets"]]
        return cls(**data)

    @classmethod
    def from_json(cls, line: str) -> Explanation:
        return cls.from_dict(json.loads(line))
