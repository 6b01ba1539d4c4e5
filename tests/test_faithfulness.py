"""AOPC comprehensiveness and sufficiency: hand-computed answers on a model whose behaviour is known."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import PretrainedConfig

from empexp import get_explainer
from empexp.classifier import Classifier, pad_baseline
from empexp.explanation import Explanation
from empexp.faithfulness import aopc, top_k_masks
from tests.conftest import _tokenizer

TEXT = "good good good good good the the the the the"


class CountingModel(torch.nn.Module):
    """P(positive) = 0.5 + 0.05 x the number of "good" tokens: each one adds exactly 0.05."""

    def __init__(self, good: int):
        super().__init__()
        self.config = PretrainedConfig(id2label={0: "negative", 1: "positive"})
        self.good = good

    @property
    def base_model(self) -> torch.nn.Module:
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, input_ids, attention_mask, token_type_ids=None, position_ids=None):
        p = 0.5 + 0.05 * (input_ids == self.good).sum(-1, keepdim=True).float()
        return SimpleNamespace(logits=torch.cat([1 - p, p], -1).log())


@pytest.fixture(scope="module")
def counting() -> Classifier:
    tokenizer = _tokenizer("bert")
    return Classifier(CountingModel(tokenizer.convert_tokens_to_ids("good")), tokenizer, "counting")


def explanation(classifier: Classifier, scores_of: dict[str, float]) -> Explanation:
    e = classifier.encode([TEXT])[0]
    scores = [0.0 if special else scores_of[token] for token, special in zip(e.tokens, e.special)]
    return Explanation(TEXT, e.tokens, e.offsets, scores, "hand", None, 1, "positive", {}, 1, 0.0)


def test_top_k_masks_take_ceil_of_the_share_of_non_special_tokens_best_first():
    scores = torch.tensor([0.0, 0.3, 0.9, 0.1, 0.9, 0.0])
    special = torch.tensor([True, False, False, False, False, True])
    masks = top_k_masks(scores, special, (0.1, 0.5, 0.6, 1.0))
    assert masks.tolist() == [
        [False, False, True, False, False, False],  # ceil(0.4) = 1; of the tie, the earlier token
        [False, False, True, False, True, False],  # 2
        [False, True, True, False, True, False],  # ceil(2.4) = 3
        [False, True, True, True, True, False],  # all 4, never a special token
    ]


def test_hand_computed_aopc_for_the_right_and_the_reversed_order(counting):
    # p = 0.75 with 5 "good" tokens. Right order removes them first: drops 0.05, 0.10, ..., 0.25, then
    # 0.25 five more times (mean 0.2); keeping the top k leaves 0.55, 0.60, ..., then 0.75 (mean 0.05).
    right = explanation(counting, {"good": 1.0, "the": 0.0})
    reversed_ = explanation(counting, {"good": 0.0, "the": 1.0})
    scores = aopc(counting, [right, reversed_])
    assert scores[0] == pytest.approx({"comprehensiveness": 0.2, "sufficiency": 0.05}, abs=1e-6)
    assert scores[1] == pytest.approx({"comprehensiveness": 0.075, "sufficiency": 0.175}, abs=1e-6)


def test_explanations_together_match_each_alone_and_share_their_inputs(counting, monkeypatch):
    explanations = [explanation(counting, {"good": g, "the": t}) for g, t in [(1, 0), (0, 1), (1, 1), (2, 1)]]
    alone = [aopc(counting, [e])[0] for e in explanations]
    rows = []
    forward = counting.forward
    monkeypatch.setattr(counting, "forward", lambda ids, *rest: rows.append(len(ids)) or forward(ids, *rest))
    assert aopc(counting, explanations, batch_size=1000) == alone
    # Explanations that rank alike perturb alike: 2 distinct rankings (ties go to the earlier token), each
    # with 10 removals and 9 keeps (keeping all is the original). Shared between them: the original, the
    # all-pad text, and "goods removed" = "thes kept" both ways. 1 + 2 x 19 - 3 rows, in one batch.
    assert rows == [36]


def test_whole_text_removed_is_the_pad_baseline_on_real_architectures(tiny):
    # Comprehensiveness at k = 100% is p(x) - p(pad baseline) for every ranking: the baseline IG and SV use.
    text = "the plot was boring but the acting was fun"
    ig = get_explainer("ig", tiny, samples=4).explain(text)[0]
    batch = tiny.collate(tiny.encode([text]))
    baseline = pad_baseline(batch.input_ids, batch.special_tokens_mask, tiny.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = torch.cat([tiny.forward(ids, *tiny.model_inputs(batch)) for ids in (batch.input_ids, baseline)])
    p = logits.softmax(-1)[:, ig.target]
    whole = aopc(tiny, [ig], fractions=(1.0,))[0]
    assert whole["comprehensiveness"] == pytest.approx(float(p[0] - p[1]), abs=1e-5)
    assert whole["sufficiency"] == pytest.approx(0.0, abs=1e-6)


def test_an_explanation_of_another_tokenisation_is_refused(counting, bert):
    other = get_explainer("attention", bert).explain("the film is not bad")[0]
    other.tokens = [*other.tokens[:-1], "[UNK]"]
    with pytest.raises(ValueError, match="another classifier"):
        aopc(bert, [other])
