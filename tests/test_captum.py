"""IG and SV as the paper defines them, on tiny random BERT, RoBERTa, XLNet and ELECTRA models."""

import pytest
import torch

from empexp import get_explainer
from empexp.errors import InputError
from empexp.explainers.captum import pad_baseline

TEXTS = ["the movie was great", "not a good film and a boring plot", "awful", "the acting was fun"]


def target_delta(classifier, explanation) -> float:
    """f(input) - f(baseline) for the explained class."""
    batch = classifier.collate(classifier.encode([explanation.text]))
    inputs = classifier.model_inputs(batch)
    baseline = pad_baseline(batch.input_ids, batch.special_tokens_mask, classifier.tokenizer.pad_token_id)
    with torch.no_grad():
        f_input = classifier.forward(batch.input_ids, *inputs)[0, explanation.target]
        f_baseline = classifier.forward(baseline, *inputs)[0, explanation.target]
    return float(f_input - f_baseline)


@pytest.mark.parametrize("method", ["ig", "sv"])
def test_special_and_pad_positions_get_exactly_zero(tiny, method):
    explainer = get_explainer(method, tiny, samples=5)
    batch = tiny.collate(tiny.encode(TEXTS[:2]))  # different lengths: the shorter one is padded
    scores = explainer.attribute(batch, tiny.prediction_pass(batch)).scores
    special = batch.special_tokens_mask
    assert (~batch.attention_mask.bool() <= special).all()  # pads count as special
    assert torch.all(scores[special] == 0)
    assert torch.any(scores[~special] != 0)


@pytest.mark.parametrize("method", ["ig", "sv"])
def test_target_is_the_predicted_class(tiny, method):
    explanations = get_explainer(method, tiny, samples=3).explain(TEXTS)
    for explanation, prediction in zip(explanations, tiny.predict(TEXTS)):
        assert explanation.target == prediction.target
        assert explanation.label == prediction.label
        assert len(explanation.tokens) == len(explanation.scores) == len(explanation.offsets)


def test_ig_completeness_improves_with_steps(tiny):
    errors = {}
    for steps in (2, 64):
        explanations = get_explainer("ig", tiny, samples=steps).explain(TEXTS)
        errors[steps] = max(abs(sum(e.scores) - target_delta(tiny, e)) for e in explanations)
    scale = max(abs(target_delta(tiny, e)) for e in explanations)
    assert errors[64] <= 0.02 * scale + 1e-4
    assert errors[64] <= errors[2] + 1e-6


def test_sv_efficiency_holds_exactly(tiny):
    for explanation in get_explainer("sv", tiny, samples=4).explain(TEXTS):
        assert sum(explanation.scores) == pytest.approx(target_delta(tiny, explanation), abs=1e-4)


def test_ig_batched_equals_one_at_a_time(tiny):
    texts = [*TEXTS, "a great plot", "the film is not bad but boring"]
    alone = get_explainer("ig", tiny, samples=8, batch_size=1).explain(texts)
    padded = get_explainer("ig", tiny, samples=8, batch_size=4, pad_batches=True).explain(texts)
    for a, b in zip(alone, padded):
        assert a.text == b.text and a.tokens == b.tokens
        torch.testing.assert_close(torch.tensor(b.scores), torch.tensor(a.scores), atol=2e-4, rtol=1e-3)


def test_sv_batched_equals_one_at_a_time_and_is_seeded(tiny):
    texts = [*TEXTS, "the movie was fun", "the film was bad"]  # as long as TEXTS[0]: batched with it
    alone = get_explainer("sv", tiny, samples=6, seed=1, batch_size=1).explain(texts)
    batched = get_explainer("sv", tiny, samples=6, seed=1, batch_size=8).explain(texts)
    again = get_explainer("sv", tiny, samples=6, seed=1, batch_size=8).explain(texts)
    other_seed = get_explainer("sv", tiny, samples=6, seed=2, batch_size=8).explain(texts)
    for a, b, c in zip(alone, batched, again):
        torch.testing.assert_close(torch.tensor(b.scores), torch.tensor(a.scores), atol=1e-5, rtol=1e-4)
        assert b.scores == c.scores
    assert any(a.scores != b.scores for a, b in zip(batched, other_seed))


def test_cost_is_reported(tiny):
    (ig,) = get_explainer("ig", tiny, samples=10).explain(["the movie was great"])
    assert ig.forward_passes == 1 + 2 + 10  # prediction, input and baseline embeddings, one per step
    assert ig.seconds > 0
    (sv,) = get_explainer("sv", tiny, samples=3).explain(["the movie was great"])
    features = sum(1 for span in sv.offsets if span is not None) + 1  # tokens plus the special group
    assert sv.forward_passes == 1 + 1 + 3 * features


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("ig", {"samples": 0}, "samples must be a whole number of at least 1, got 0"),
        ("ig", {"samples": 2.5}, "samples must be a whole number of at least 1, got 2.5"),
        ("ig", {"internal_batch_size": 0}, "internal_batch_size must be"),
        ("ig", {"method": "simpson"}, "unknown integration method 'simpson'"),
        ("ig", {"method": "riemann_trapezoid", "samples": 1}, "needs at least 2 samples"),
        ("sv", {"samples": -1}, "samples must be"),
        ("sv", {"samples": True}, "samples must be"),
        ("sv", {"perturbations_per_eval": 0}, "perturbations_per_eval must be"),
        ("sv", {"batch_size": 0}, "batch_size must be"),
    ],
)
def test_bad_counts_are_refused_with_their_name(bert, method, options, message):
    with pytest.raises(InputError, match=message):
        get_explainer(method, bert, **options)
