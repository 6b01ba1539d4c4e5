"""Reading labelled text data (the GLUE TSV layout of SST-2) and plain text files."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path


def read_tsv(path: str | Path) -> tuple[list[str], list[int]]:
    """Texts and integer labels from a TSV with a header naming ``label`` and a text column.

    The text column is whichever other column the header names (SST-2 uses ``sentence`` for train and
    ``content`` for dev).
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        label_col = header.index("label")
        text_col = next(i for i, name in enumerate(header) if i != label_col)
        texts, labels = [], []
        for row in reader:
            texts.append(row[text_col])
            labels.append(int(row[label_col]))
    return texts, labels


def read_lines(path: str | Path) -> list[str]:
    """One instance per line; blank lines are skipped."""
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


def read_texts(path: str | Path) -> list[str]:
    """The texts of a TSV with a header (GLUE layout, labels ignored) or of a plain file, one per line."""
    return read_tsv(path)[0] if Path(path).suffix == ".tsv" else read_lines(path)


def select_texts(texts: Sequence[str], *, limit: int | None = None, min_words: int = 1, seed: int = 0) -> list[str]:
    """Distinct texts of at least ``min_words`` words, shuffled with ``seed``, the first ``limit`` of them.

    The same arguments give the same list, which is what lets interrupted target generation resume.
    """
    distinct = [t for t in dict.fromkeys(texts) if t.strip() and len(t.split()) >= min_words]
    random.Random(seed).shuffle(distinct)
    return distinct[:limit]


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
