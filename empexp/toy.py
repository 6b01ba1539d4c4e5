"""DiffMask's toy task, where the right explanation is known: is digit ``n`` more frequent than ``m``?

Each text is two query digits ``n m`` followed by a sequence of digits; the label says whether ``n``
occurs in the sequence more often than ``m`` (ties are not generated). Only the occurrences of ``n``
and ``m`` (queries included) matter, so probes that keep anything else keep something the model does
not need. A word-level tokeniser (one token per digit) keeps tokens and digits aligned.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from empexp.classifier import Classifier, EncodedText
from empexp.diffmask import DiffMaskModel

DIGITS = [str(d) for d in range(10)]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LABELS = ["n not more frequent", "n more frequent"]


def make_examples(count: int, *, seed: int, lengths: tuple[int, int] = (10, 20)) -> tuple[list[str], list[int]]:
    """``count`` toy texts and labels; the same ``seed`` gives the same examples."""
    rng = random.Random(seed)
    texts, labels = [], []
    while len(texts) < count:
        n, m = rng.sample(DIGITS, 2)
        sequence = [rng.choice(DIGITS) for _ in range(rng.randint(*lengths))]
        if sequence.count(n) == sequence.count(m):
            continue
        texts.append(" ".join([n, m, *sequence]))
        labels.append(int(sequence.count(n) > sequence.count(m)))
    return texts, labels


def tokenizer() -> PreTrainedTokenizerFast:
    """A BERT-style (``[CLS] ... [SEP]``) word-level tokeniser over the ten digits."""
    vocab = {token: i for i, token in enumerate(SPECIALS + DIGITS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )


def untrained_classifier(*, hidden_size: int = 64, layers: int = 3, heads: int = 4, seed: int = 0):
    """A small randomly initialised BERT classifier for the toy task.

    Matching sequence digits to the queries is all the task asks, yet with BERT's usual small initial
    weights (0.02) training sat at chance for thousands of steps, and so did two layers; three layers
    with weights four times larger (``initializer_range=0.2``) and no dropout pass 90% in under a
    thousand steps of AdamW at 1e-3 (found by trying these settings side by side).
    """
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(SPECIALS) + len(DIGITS),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=64,
        pad_token_id=0,
        initializer_range=0.2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    return BertForSequenceClassification(config)


def relevant(encoded: EncodedText) -> list[bool]:
    """Per token: is it an occurrence of one of the two query digits (the queries themselves included)?"""
    words = [encoded.text[span[0] : span[1]] if span else None for span in encoded.offsets]
    queries = {words[1], words[2]}  # after [CLS]
    return [word in queries for word in words]


@torch.no_grad()
def mask_quality(probes: DiffMaskModel, classifier: Classifier, texts: Sequence[str], batch_size: int = 64) -> dict:
    """How well the probes' deterministic masks pick out the toy task's relevant tokens, per hook point.

    Returns lists over points: ``precision`` (fraction of kept tokens that are ``n`` or ``m``),
    ``recall`` (fraction of ``n``/``m`` occurrences kept), ``kl`` and ``agreement``; and ``chance``, the
    precision of keeping tokens at random (the fraction of real tokens that are ``n`` or ``m``).
    Special tokens are never gated and are left out.
    """
    encoded = classifier.encode(texts)
    totals = {"kept": 0.0, "kept_relevant": 0.0, "kl": 0.0, "agreement": 0.0}
    relevant_count = real_count = 0
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        batch = classifier.collate(chunk)
        results = probes.evaluate(classifier, batch)
        real = ~batch["special_tokens_mask"]
        gold = torch.zeros_like(real)
        for row, e in enumerate(chunk):
            gold[row, : len(e)] = torch.tensor(relevant(e))
        gold &= real
        kept = (results["gates"] > 0) & real.unsqueeze(-1)
        totals["kept"] = totals["kept"] + kept.sum((0, 1))
        totals["kept_relevant"] = totals["kept_relevant"] + (kept & gold.unsqueeze(-1)).sum((0, 1))
        totals["kl"] = totals["kl"] + results["kl"].sum(0)
        totals["agreement"] = totals["agreement"] + results["agreement"].sum(0)
        relevant_count += int(gold.sum())
        real_count += int(real.sum())
    precision = totals["kept_relevant"] / totals["kept"].clamp(min=1)
    return {
        "precision": precision.tolist(),
        "recall": (totals["kept_relevant"] / relevant_count).tolist(),
        "kl": (totals["kl"] / len(encoded)).tolist(),
        "agreement": (totals["agreement"] / len(encoded)).tolist(),
        "chance": relevant_count / real_count,
    }
