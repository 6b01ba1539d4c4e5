"""Reading labelled text data (the GLUE TSV layout of SST-2) and plain text files."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Labelled:
    """Labelled texts: ``texts``, their second texts ``text_pairs`` (``None`` unless the data are pairs), ``labels``."""

    texts: list[str]
    text_pairs: list[str] | None
    labels: list[int]

    def __getitem__(self, index: slice) -> Labelled:
        pairs = None if self.text_pairs is None else self.text_pairs[index]
        return Labelled(self.texts[index], pairs, self.labels[index])


def read_tsv(path: str | Path) -> Labelled:
    """Texts (and text pairs) with integer labels from a TSV whose header names ``label`` and one or two
    text columns, in order (SST-2: ``sentence`` or ``content``; MRPC: ``sentence1``, ``sentence2``)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        label_col = header.index("label")
        text_cols = [i for i in range(len(header)) if i != label_col]
        if len(text_cols) not in (1, 2):
            raise ValueError(f"{path}: expected a label column and one or two text columns, got {header}")
        rows = list(reader)
    labels = [int(row[label_col]) for row in rows]
    texts = [row[text_cols[0]] for row in rows]
    pairs = [row[text_cols[1]] for row in rows] if len(text_cols) == 2 else None
    return Labelled(texts, pairs, labels)


def read_lines(path: str | Path) -> list[str]:
    """One instance per line; blank lines are skipped."""
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


def read_instances(path: str | Path) -> tuple[list[str], list[str] | None]:
    """The texts of a TSV with a header (GLUE layout, labels ignored), with their pairs where it has two
    text columns, or of a plain file, one per line (no pairs)."""
    if Path(path).suffix != ".tsv":
        return read_lines(path), None
    data = read_tsv(path)
    return data.texts, data.text_pairs


def read_texts(path: str | Path) -> list[str]:
    """The (first) texts of a TSV with a header (GLUE layout, labels ignored) or of a plain file, one per line."""
    return read_instances(path)[0]


def select_texts(
    texts: Sequence[str],
    text_pairs: Sequence[str] | None = None,
    *,
    limit: int | None = None,
    min_words: int = 1,
    seed: int = 0,
) -> tuple[list[str], list[str] | None]:
    """Distinct texts (or pairs) of at least ``min_words`` words (a pair: in all), shuffled with ``seed``,
    the first ``limit`` of them; ``(texts, text_pairs)``, the pairs ``None`` for single texts.

    The same arguments give the same list, which is what lets interrupted target generation resume.
    """
    instances = list(zip(texts, text_pairs)) if text_pairs is not None else [(t, "") for t in texts]
    distinct = [
        (t, p) for t, p in dict.fromkeys(instances) if t.strip() and len(t.split()) + len(p.split()) >= min_words
    ]
    random.Random(seed).shuffle(distinct)
    chosen = distinct[:limit]
    return [t for t, _ in chosen], None if text_pairs is None else [p for _, p in chosen]


def pseudo_documents(
    texts: Sequence[str], count: int, *, words: tuple[int, int] = (50, 300), min_words: int = 5, seed: int = 0
) -> list[str]:
    """``count`` long texts, each of randomly drawn texts of at least ``min_words`` words joined until it
    reaches a length drawn uniformly from ``words`` (50-300 words: roughly 60-400 word pieces)."""
    rng = random.Random(seed)
    pool = [t for t in dict.fromkeys(texts) if len(t.split()) >= min_words]
    documents = []
    for _ in range(count):
        goal, parts, length = rng.randint(*words), [], 0
        while length < goal:
            part = rng.choice(pool)
            parts.append(part)
            length += len(part.split())
        documents.append(" ".join(parts))
    return documents


def classification_scores(predicted: Sequence[int], labels: Sequence[int]) -> dict[str, float]:
    """``accuracy`` and ``f1`` (of class 1, GLUE's F1 for MRPC), rounded to 4 decimals."""
    hits = sum(p == y for p, y in zip(predicted, labels, strict=True))
    true_positive = sum(p == y == 1 for p, y in zip(predicted, labels))
    predicted_positive, positive = sum(p == 1 for p in predicted), sum(y == 1 for y in labels)
    f1 = 2 * true_positive / (predicted_positive + positive) if predicted_positive + positive else 0.0
    return {"accuracy": round(hits / len(labels), 4), "f1": round(f1, 4)}
