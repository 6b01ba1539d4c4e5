"""Cheap label estimators: unbiased for IG s=20 and for the exact Shapley values, on tiny models."""

import itertools
import math

import pytest
import torch

from empexp import get_explainer
from empexp.estimators import (
    draw_nodes,
    draw_permutations,
    draw_text_permutations,
    gauss_legendre,
    ig_node_estimates,
    sv_permutation_estimates,
)
from tests.conftest import SENTENCES


def _one(classifier, text):
    batch = classifier.collate(classifier.encode([text]))
    return batch, classifier.logits(batch).argmax(-1)


def test_every_node_weighted_by_its_weight_is_ig_with_20_steps(tiny):
    """The estimator's expectation, computed exactly, is what the ig explainer (Captum) computes."""
    text = SENTENCES[2]
    batch, targets = _one(tiny, text)
    _, weights = gauss_legendre(20)
    per_node = torch.stack([ig_node_estimates(tiny, batch, targets, torch.tensor([[i]]))[0] for i in range(20)])
    expectation = (weights.float().unsqueeze(1) * per_node).sum(0)
    ig = torch.tensor(get_explainer("ig", tiny, samples=20).explain(text)[0].scores)
    assert torch.allclose(expectation, ig, atol=1e-4 * max(1.0, ig.abs().max().item())), (expectation, ig)


def test_one_node_draws_average_to_ig_within_sampling_error(bert):
    text = SENTENCES[4]
    batch, targets = _one(bert, text)
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [ig_node_estimates(bert, batch, targets, draw_nodes(1, 1, generator=generator))[0] for _ in range(400)]
    )
    ig = torch.tensor(get_explainer("ig", bert, samples=20).explain(text)[0].scores)
    standard_error = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - ig).abs() <= 4 * standard_error + 1e-6).all()
    assert (draws.std(0) > 0).any()  # one node is noisy: the test would pass trivially otherwise


def test_several_nodes_in_one_batch_equal_their_average(bert):
    batch, targets = _one(bert, SENTENCES[0])
    nodes = torch.tensor([[3, 11, 17]])
    together = ig_node_estimates(bert, batch, targets, nodes)
    apart = torch.stack([ig_node_estimates(bert, batch, targets, nodes[:, i : i + 1]) for i in range(3)]).mean(0)
    assert torch.allclose(together, apart, atol=1e-5)


def _exact_shapley(classifier, batch, target):
    """Shapley values of the real tokens by enumerating every coalition."""
    special = batch.special_tokens_mask[0]
    positions = torch.nonzero(~special).squeeze(-1).tolist()
    n = len(positions)
    pad = classifier.tokenizer.pad_token_id

    def value(coalition):
        ids = batch.input_ids.clone()
        for p in positions:
            if p not in coalition:
                ids[0, p] = pad
        # The input's other inputs (RoBERTa: its positions), as Shapley Value Sampling passes them.
        with torch.no_grad():
            return classifier.forward(ids, *classifier.model_inputs(batch))[0, target].item()

    values = {c: value(set(c)) for r in range(n + 1) for c in itertools.combinations(positions, r)}
    phi = torch.zeros(special.shape)
    for p in positions:
        others = [q for q in positions if q != p]
        for r in range(n):
            weight = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for c in itertools.combinations(others, r):
                with_p = tuple(sorted((*c, p)))
                phi[p] += weight * (values[with_p] - values[c])
    return phi


@pytest.fixture()
def four_tokens(tiny):
    """A text of exactly four real tokens (RoBERTa's tiny tokeniser splits into characters)."""
    for text in ("the movie was great", "good"):
        batch, targets = _one(tiny, text)
        if int((~batch.special_tokens_mask).sum()) == 4:
            return tiny, batch, targets
    raise AssertionError("no four-token text for this tokeniser")


def test_all_permutations_average_to_the_exact_shapley_values(four_tokens):
    classifier, batch, targets = four_tokens
    exact = _exact_shapley(classifier, batch, int(targets[0]))
    every = torch.tensor(list(itertools.permutations(range(4)))).unsqueeze(0)  # (1, 24, 4)
    estimate = sv_permutation_estimates(classifier, batch, targets, every)[0]
    assert torch.allclose(estimate, exact, atol=1e-4), (estimate, exact)


def test_random_permutations_average_to_the_shapley_values_and_each_is_efficient(four_tokens):
    classifier, batch, targets = four_tokens
    exact = _exact_shapley(classifier, batch, int(targets[0]))
    orders = draw_permutations(1, 4, 400, generator=torch.Generator().manual_seed(0))
    assert torch.equal(orders[0, 1], orders[0, 0].flip(-1))  # antithetic pairs
    singles = torch.stack([sv_permutation_estimates(classifier, batch, targets, orders[:, i : i + 1])[0]
                           for i in range(orders.shape[1])])  # fmt: skip
    standard_error = singles.std(0) / math.sqrt(len(singles))
    assert ((singles.mean(0) - exact).abs() <= 4 * standard_error + 1e-5).all()
    # Efficiency holds for every single permutation: the scores add up to f(x) - f(baseline).
    total = exact.sum()
    assert torch.allclose(singles.sum(-1), total.expand(len(singles)), atol=1e-4)


def test_permutations_must_fit_every_text_of_the_batch(bert):
    batch = bert.collate(bert.encode(["the movie was great", "awful"]))
    with pytest.raises(ValueError, match="as many real tokens"):
        sv_permutation_estimates(bert, batch, torch.tensor([0, 0]), draw_permutations(2, 4, 1))


def test_texts_of_different_lengths_get_their_own_permutations_in_one_batch(bert):
    texts = ["the movie was great", "awful", "a long and winding but rewarding story"]
    batch = bert.collate(bert.encode(texts))
    targets = bert.logits(batch).argmax(-1)
    orders = draw_text_permutations(batch, 2, generator=torch.Generator().manual_seed(0))
    assert [o.shape for o in orders] == [(2, int(n)) for n in (~batch.special_tokens_mask).sum(-1)]
    together = sv_permutation_estimates(bert, batch, targets, orders)
    for i, text in enumerate(texts):
        alone, _ = _one(bert, text)
        expected = sv_permutation_estimates(bert, alone, targets[i : i + 1], orders[i].unsqueeze(0))[0]
        assert torch.allclose(together[i, : len(expected)], expected, atol=1e-5)
        assert not together[i, len(expected) :].any()  # padding gets no score
    # However the passes are chunked (a few at a time, or every text's in one), the scores are the same.
    for max_passes in (3, 1000):
        chunked = sv_permutation_estimates(bert, batch, targets, orders, max_passes=max_passes)
        assert torch.allclose(chunked, together, atol=1e-5)
