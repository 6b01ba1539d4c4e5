"""Tiny random classifiers for the paper's four architectures, built offline from configs."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from tokenizers.pre_tokenizers import ByteLevel
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    ElectraConfig,
    ElectraForSequenceClassification,
    ElectraTokenizer,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaTokenizer,
    XLNetConfig,
    XLNetForSequenceClassification,
    XLNetTokenizer,
)

from empexp.classifier import Classifier, load_classifier

ARCHITECTURES = ["bert", "roberta", "xlnet", "electra"]
WORDS = [
    *("the", "a", "movie", "film", "is", "was", "not", "very", "good", "bad"),
    *("great", "awful", "plot", "acting", "boring", "fun", "and", "but"),
]
SENTENCES = [
    "the movie was great",
    "not a good film",
    "the plot was boring but the acting was fun",
    "awful",
    "a very very good movie and a great plot",
    "the film is not bad",
]
SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: a worker per core, at most 8 (each worker loads its own models, and the longest file
    alone takes minutes, so more workers would add memory, not speed)."""
    return min(8, os.cpu_count() or 1)


def pytest_configure(config) -> None:
    """Under pytest-xdist the workers share the cores: each takes its share of threads, not one per core
    (the processes its tests start inherit the share)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        share = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(int(os.environ.setdefault("OMP_NUM_THREADS", str(share))))


def _tokenizer(arch: str):
    if arch in ("bert", "electra"):
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
        vocab = specials + WORDS + letters + ["##" + c for c in letters] + list(".,!?<>/()'\"")
        cls = BertTokenizer if arch == "bert" else ElectraTokenizer
        return cls(vocab={token: i for i, token in enumerate(vocab)})
    if arch == "roberta":
        vocab = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", *sorted(ByteLevel.alphabet())]
        return RobertaTokenizer(vocab={token: i for i, token in enumerate(vocab)}, merges=[])
    pieces = ["<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>", "<mask>"]
    vocab = [(p, 0.0) for p in pieces] + [("▁" + w, -2.0) for w in WORDS]
    vocab += [(c, -5.0) for c in "▁abcdefghijklmnopqrstuvwxyz.,!?<>/()'\""]
    return XLNetTokenizer(vocab=vocab)


def _model(arch: str, tokenizer, num_labels: int):
    # Not len(tokenizer): a word that is also a letter ("a") leaves a gap, and ids run one past the length.
    common = {
        "vocab_size": max(tokenizer.get_vocab().values()) + 1,
        "num_labels": num_labels,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if arch == "bert":
        return BertForSequenceClassification(BertConfig(**SIZES, **common))
    if arch == "electra":
        return ElectraForSequenceClassification(ElectraConfig(**SIZES, embedding_size=16, **common))
    if arch == "roberta":
        config = RobertaConfig(**SIZES, max_position_embeddings=80, **common)
        return RobertaForSequenceClassification(config)
    config = XLNetConfig(d_model=32, n_layer=2, n_head=2, d_inner=37, **common)
    return XLNetForSequenceClassification(config)


def make_tiny(arch: str, directory: Path, num_labels: int = 2) -> Path:
    """Save a tiny random classifier with a working tokeniser in Hub layout under ``directory``."""
    torch.manual_seed(0)
    tokenizer = _tokenizer(arch)
    tokenizer.model_max_length = 64
    model = _model(arch, tokenizer, num_labels)
    # Random heads put every text in one class; a larger classifier scale spreads predictions out.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(2.0)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session", params=ARCHITECTURES)
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def tiny_path(arch, tmp_path_factory) -> Path:
    return make_tiny(arch, tmp_path_factory.mktemp(arch))


@pytest.fixture(scope="session")
def tiny(tiny_path) -> Classifier:
    return load_classifier(tiny_path)


@pytest.fixture(scope="session")
def bert_path(tmp_path_factory) -> Path:
    return make_tiny("bert", tmp_path_factory.mktemp("bert-only"))


@pytest.fixture(scope="session")
def bert(bert_path) -> Classifier:
    return load_classifier(bert_path)


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` (Gradio Blocks) launched as ``app.py`` launches it, on a free localhost port; its URL."""
    from empexp.app import launch

    launch(app, server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        yield app.local_url
    finally:
        app.close()
