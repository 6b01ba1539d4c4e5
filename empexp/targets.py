"""Attribution targets for empirical explainers: written in resumable chunks, read back as one set.

A target folder holds ``chunk-00000.safetensors``, ``chunk-00001.safetensors``, ... and, once every
chunk is written, ``targets.json`` (the settings and the list of chunks). Chunk ``k`` holds instances
``k * chunk_size`` to ``(k + 1) * chunk_size - 1`` of the input, padded to the chunk's longest:

- ``index`` (n,): position of each instance in the input texts
- ``input_ids``, ``attention_mask``, ``special_tokens_mask`` (n, length); ``token_type_ids`` too for
  models that take them (the segments of text pairs)
- ``predicted`` (n,): the explained class (the classifier's prediction), ``logits`` (n, classes)
- ``attributions`` (n, length): the explainer's scores, zero at special and pad positions

Each chunk is written to a temporary name and renamed when complete, so a kill at any moment loses at
most the chunk in progress, and a rerun skips complete chunks: every instance ends up exactly once.
Chunk ``k`` goes to process ``k % num_processes``, so processes never overlap and leave no gaps.
Read a folder back with :func:`load_targets`, or one chunk with ``safetensors.torch.load_file``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from empexp.classifier import Batch
from empexp.errors import InputError
from empexp.explainers.base import Explainer

INDEX_FILE = "targets.json"
CPU_SECONDS = "label_cpu_seconds"
"""Key of the CPU time (``time.process_time``, every thread) that computing the labels took, in chunk headers
and ``targets.json``."""


def chunk_path(directory: Path, k: int) -> Path:
    return directory / f"chunk-{k:05d}.safetensors"


def chunks_for(process: int, num_processes: int, num_chunks: int) -> list[int]:
    """The chunks one process computes: every ``num_processes``-th, starting at its own index."""
    return list(range(process, num_chunks, num_processes))


def explain_chunk(
    explainer: Explainer, texts: Sequence[str], start: int, text_pairs: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """Targets for ``texts`` (with ``text_pairs``; input positions ``start``, ``start + 1``, ...) as padded tensors."""
    explanations = explainer.explain(texts, text_pairs)
    encoded = explainer.classifier.encode(texts, text_pairs)
    batch = explainer.classifier.collate(encoded)
    # Explanations hold one score per real token; scatter them back into the padded layout.
    attributions = torch.zeros(batch.input_ids.shape)
    keep = batch.attention_mask.bool().cpu()
    for row, explanation in enumerate(explanations):
        attributions[row, keep[row]] = torch.tensor(explanation.scores)
    return {
        "index": torch.arange(start, start + len(texts)),
        **{name: value.cpu() for name, value in batch.tensors().items()},
        "predicted": torch.tensor([e.target for e in explanations]),
        "logits": explainer.classifier.logits(batch).float().cpu(),
        "attributions": attributions,
    }


def write_chunk(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write one chunk atomically (temporary file, then rename), with ``metadata`` in its header."""
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata={"empexp": json.dumps(metadata)})
    os.replace(tmp, path)


def chunk_metadata(path: Path) -> dict[str, Any]:
    """The metadata :func:`write_chunk` put in a chunk's header (empty if it has none)."""
    with safe_open(path, framework="pt") as chunk:
        return json.loads((chunk.metadata() or {}).get("empexp", "{}"))


def total_cpu_seconds(parts: Iterable[dict[str, Any]]) -> float | None:
    """What the labels of ``parts`` (chunk headers or folders' metadata) cost together; ``None`` when one of
    them was written before the cost was recorded, so that the total is unknown rather than too low."""
    costs = [part.get(CPU_SECONDS) for part in parts]
    return None if None in costs else sum(costs)


def same_estimand(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two target folders' explainer settings estimate the same scores: SV's permutations, whatever their
    number or seed, are unbiased estimates of the Shapley values; IG with other steps is another quadrature."""
    return a == b or a["method"] == b["method"] == "sv"


def read_index(directory: str | Path) -> dict[str, Any]:
    """A finished target folder's metadata (``targets.json``), without loading its chunks.

    Raises:
        InputError: the folder is unfinished.
    """
    try:
        return json.loads((Path(directory) / INDEX_FILE).read_text())
    except FileNotFoundError:
        raise InputError(f"{directory} has no {INDEX_FILE}: target generation has not finished there") from None


def pending_chunks(directory: Path, chunks: Iterable[int]) -> list[int]:
    """Those of ``chunks`` with no complete file in ``directory``."""
    return [k for k in chunks if not chunk_path(directory, k).is_file()]


def finalize(directory: Path, num_texts: int, chunk_size: int, metadata: dict[str, Any]) -> dict[str, Any]:
    """Check that every chunk is there and write ``targets.json``; returns its content.

    Raises:
        InputError: a chunk is missing (some process has not finished).
    """
    num_chunks = -(-num_texts // chunk_size)
    missing = pending_chunks(directory, range(num_chunks))
    if missing:
        raise InputError(f"{directory}: {len(missing)} of {num_chunks} chunks are missing, e.g. chunk {missing[0]}")
    chunks = [chunk_path(directory, k) for k in range(num_chunks)]
    index = {
        **metadata,
        "num_instances": num_texts,
        "chunk_size": chunk_size,
        "chunks": [path.name for path in chunks],
        CPU_SECONDS: total_cpu_seconds(chunk_metadata(path) for path in chunks),
    }
    (directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return index


@dataclass
class Target:
    """One instance: unpadded token ids, special-token mask, explained class, logits and scores."""

    index: int
    input_ids: torch.Tensor
    special_tokens_mask: torch.Tensor
    predicted: int
    logits: torch.Tensor
    attributions: torch.Tensor
    token_type_ids: torch.Tensor | None = None


def load_targets(directory: str | Path) -> tuple[list[Target], dict[str, Any]]:
    """All instances of a finished target folder, in input order, and its metadata (``targets.json``).

    Raises:
        InputError: the folder is unfinished, or a chunk is unreadable.
    """
    directory = Path(directory)
    index = read_index(directory)
    targets: list[Target] = []
    for name in index["chunks"]:
        try:
            chunk = load_file(directory / name)
        except (OSError, SafetensorError) as error:
            raise InputError(f"{directory / name}: unreadable chunk ({error})") from error
        for row in range(len(chunk["index"])):
            # Padding side differs between tokenisers; the attention mask says which positions are real.
            real = chunk["attention_mask"][row].bool()
            targets.append(
                Target(
                    index=int(chunk["index"][row]),
                    input_ids=chunk["input_ids"][row][real],
                    special_tokens_mask=chunk["special_tokens_mask"][row][real],
                    predicted=int(chunk["predicted"][row]),
                    logits=chunk["logits"][row],
                    attributions=chunk["attributions"][row][real],
                    token_type_ids=chunk["token_type_ids"][row][real] if "token_type_ids" in chunk else None,
                )
            )
    if [t.index for t in targets] != list(range(index["num_instances"])):
        raise InputError(f"{directory}: chunks do not hold every instance exactly once")
    return targets, index


@dataclass(frozen=True)
class TargetBatch(Batch):
    """A :class:`Batch` of texts with what an explainer learns from: the explained classes, their logits
    and the target attributions ``(batch, tokens)``, 0 at special and pad positions."""

    predicted: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    attributions: torch.Tensor | None = None


def collate_targets(targets: Sequence[Target], pad_token_id: int, padding_side: str = "right") -> TargetBatch:
    """Pad targets as :meth:`Classifier.collate` pads texts (segments included), with their ``predicted``
    classes, ``logits`` and ``attributions``."""
    length = max(len(t.input_ids) for t in targets)
    attention_mask = torch.zeros(len(targets), length, dtype=torch.long)
    for row, target in enumerate(targets):
        if padding_side == "left":
            attention_mask[row, length - len(target.input_ids) :] = 1
        else:
            attention_mask[row, : len(target.input_ids)] = 1
    real = attention_mask.bool()

    def pad(values: list[torch.Tensor], fill: float | int | bool) -> torch.Tensor:
        # Row-major order of the real positions is the order of the concatenated values, either side.
        out = torch.full(real.shape, fill, dtype=values[0].dtype)
        out[real] = torch.cat(values)
        return out

    types = None
    if all(t.token_type_ids is not None for t in targets):
        types = pad([t.token_type_ids for t in targets], 0)
    return TargetBatch(
        input_ids=pad([t.input_ids for t in targets], pad_token_id),
        attention_mask=attention_mask,
        special_tokens_mask=pad([t.special_tokens_mask for t in targets], True),
        token_type_ids=types,
        predicted=torch.tensor([t.predicted for t in targets]),
        logits=torch.stack([t.logits for t in targets]),
        attributions=pad([t.attributions for t in targets], 0.0),
    )
