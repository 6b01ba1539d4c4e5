"""Cheap, unbiased estimates of IG and SV scores: training labels for empirical explainers.

Stochastic amortization (Covert et al., NeurIPS 2024): an explainer trained with MSE on noisy but
*unbiased* labels converges to the same function as with exact ones, and at equal compute many noisy
labels beat few exact ones.

- **IG, one node**: Integrated Gradients with ``s`` Gauss-Legendre steps is ``sum_i w_i g_i`` with
  ``g_i = (e(x) - e(x')) . grad f(e(x') + a_i (e(x) - e(x')))`` (the embedding layer's output ``e``,
  summed over the hidden dimension). Drawing node ``i`` with probability ``w_i`` (the weights sum to
  1) gives ``g_i``, whose expectation is that sum: IG with ``s`` steps itself, for one forward and
  backward pass. ``draws = k`` averages ``k`` such draws.
- **SV, one permutation**: the marginal contributions of the tokens along one uniformly random
  permutation (``n + 1`` passes for ``n`` tokens) have the Shapley values as expectation. The
  antithetic second permutation is the first one reversed.

Both use the attribution methods' own baseline (non-special tokens replaced by the pad token, special
tokens and pads kept) and explain the given target classes, so they estimate exactly what the ``ig``
and ``sv`` explainers compute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from captum.attr._utils.approximation_methods import approximation_parameters

from empexp import layers
from empexp.classifier import Batch, Classifier, pad_baseline


def gauss_legendre(steps: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Captum's Gauss-Legendre rule on ``[0, 1]`` with ``steps`` nodes: ``(alphas, weights)``, weights summing to 1."""
    weights, alphas = approximation_parameters("gausslegendre")
    return torch.tensor(alphas(steps), dtype=torch.float64), torch.tensor(weights(steps), dtype=torch.float64)


def draw_nodes(rows: int, draws: int, *, steps: int = 20, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(rows, draws)`` node indices, each drawn with probability equal to its weight."""
    _, weights = gauss_legendre(steps)
    return torch.multinomial(weights.expand(rows, -1), draws, replacement=True, generator=generator)


class _Stop(Exception):
    """Raised by a hook once the embedding layer's output is captured: the rest of the pass is not needed."""


def _embedding_output(
    classifier: Classifier, input_ids: torch.Tensor, model_inputs: Sequence[torch.Tensor | None]
) -> torch.Tensor:
    """The output of the layer IG attributes to, for ``input_ids`` with the other ``model_inputs``."""
    captured = []

    def grab(_module, _inputs, output):
        captured.append(output)
        raise _Stop

    handle = layers.embedding_layer(classifier.model).register_forward_hook(grab)
    try:
        with torch.no_grad():
            classifier.forward(input_ids, *model_inputs)
    except _Stop:
        pass
    finally:
        handle.remove()
    return captured[0]


def ig_node_estimates(
    classifier: Classifier,
    batch: Batch,
    targets: torch.Tensor,
    nodes: torch.Tensor,
    *,
    steps: int = 20,
) -> torch.Tensor:
    """``(batch, tokens)`` averages over ``nodes`` ``(batch, k)`` of the one-node IG estimates ``g_i``.

    With ``nodes`` from :func:`draw_nodes` the result is an unbiased estimate of IG with ``steps``
    Gauss-Legendre steps; ``k`` nodes cost ``k`` forward and backward passes per text (plus one pass cut
    short after the embeddings, for input and baseline), run as one batch.
    """
    alphas, _ = gauss_legendre(steps)
    rows, draws = nodes.shape
    special = batch.special_tokens_mask
    baseline_ids = pad_baseline(batch.input_ids, special, classifier.tokenizer.pad_token_id)
    # Input and baseline in one (cut-short) pass, with the input's other inputs (RoBERTa: its positions).
    doubled = [None if x is None else torch.cat([x, x]) for x in classifier.model_inputs(batch)]
    both = _embedding_output(classifier, torch.cat([batch.input_ids, baseline_ids]), doubled)
    flip = layers.sequence_first(classifier.model)
    if flip:  # XLNet's word embeddings come out sequence-first
        both = both.transpose(0, 1)
    original, baseline = both.chunk(2)
    alpha = alphas.to(original.dtype).to(original.device)[nodes].reshape(-1, 1, 1)  # (rows * k, 1, 1)
    difference = (original - baseline).repeat_interleave(draws, dim=0)
    points = (baseline.repeat_interleave(draws, dim=0) + alpha * difference).requires_grad_(True)
    repeated = batch.map(lambda value: value.repeat_interleave(draws, dim=0))

    def replace(_module, _inputs, _output):
        return points.transpose(0, 1) if flip else points

    handle = layers.embedding_layer(classifier.model).register_forward_hook(replace)
    try:
        with torch.enable_grad():
            logits = classifier.forward(repeated.input_ids, *classifier.model_inputs(repeated))
            picked = logits.gather(1, targets.repeat_interleave(draws).view(-1, 1)).sum()
            (gradient,) = torch.autograd.grad(picked, points)
    finally:
        handle.remove()
    scores = (gradient * difference).sum(-1).view(rows, draws, -1).mean(1)
    return scores.masked_fill(special, 0.0).detach()


def sv_permutation_estimates(
    classifier: Classifier,
    batch: Batch,
    targets: torch.Tensor,
    permutations: Sequence[torch.Tensor],
    *,
    max_passes: int | None = None,
) -> torch.Tensor:
    """``(batch, tokens)`` averages of the marginal contributions along ``permutations``.

    ``permutations[i]`` ``(k, n_i)`` orders text ``i``'s ``n_i`` real (non-special) tokens by their rank
    among them (a ``(batch, k, n)`` tensor when every text has ``n``). Each permutation costs ``n_i + 1``
    passes (the prefixes of the order, from the baseline to the input); the passes of all texts run
    together, ``max_passes`` sequences at a time (default: 64 on a CPU, where small batches run fastest,
    4096 on an accelerator, which few large batches keep busy).
    """
    special = batch.special_tokens_mask
    pad = classifier.tokenizer.pad_token_id
    real_positions = [torch.nonzero(~row).squeeze(-1) for row in special]
    if len(permutations) != len(real_positions) or any(
        order.shape[-1] != len(p) for order, p in zip(permutations, real_positions)
    ):
        raise ValueError("every text of the batch needs as many real tokens as its permutations order")
    length = special.shape[1]
    max_passes = max_passes or (64 if special.device.type == "cpu" else 4096)
    prefixes, orders_at = [], []
    for row, orders in enumerate(permutations):
        draws, n = orders.shape
        positions = real_positions[row][orders.to(special.device)]  # (k, n): token positions in order of arrival
        # Prefix j of a permutation holds the tokens ranked below j in it; every other real token is the pad token.
        rank = torch.full((draws, length), n, device=special.device)
        rank.scatter_(1, positions, torch.arange(n, device=special.device).expand(draws, n))
        arrived = rank.unsqueeze(1) < torch.arange(n + 1, device=special.device).view(1, -1, 1)  # (k, n + 1, length)
        ids = batch.input_ids[row]
        prefixes.append(torch.where(arrived | special[row], ids, torch.full_like(ids, pad)).view(-1, length))
        orders_at.append(positions)
    passes = [len(x) for x in prefixes]
    rows = torch.repeat_interleave(
        torch.arange(len(passes), device=special.device), torch.tensor(passes, device=special.device)
    )
    inputs = torch.cat(prefixes)
    # Each prefix's other inputs (mask, segments, RoBERTa's positions) are its text's, as SV passes them.
    extras = [None if x is None else x[rows] for x in classifier.model_inputs(batch)]
    picked = targets[rows].unsqueeze(1)
    values = []
    with torch.no_grad():
        for start in range(0, len(inputs), max_passes):
            part = slice(start, start + max_passes)
            logits = classifier.forward(inputs[part], *(None if x is None else x[part] for x in extras))
            values.append(logits.gather(1, picked[part]).squeeze(1).float())
    scores = torch.zeros(special.shape, dtype=torch.float32, device=special.device)
    for row, (text_values, positions) in enumerate(zip(torch.cat(values).split(passes), orders_at)):
        draws, n = positions.shape
        text_values = text_values.view(draws, n + 1)
        gains = text_values[:, 1:] - text_values[:, :-1]  # (k, n): the j-th arrival's contribution
        contribution = torch.zeros(draws, length, device=special.device)
        contribution.scatter_(1, positions, gains)
        scores[row] = contribution.mean(0)
    return scores


def draw_permutations(
    rows: int, n: int, draws: int, *, antithetic: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``(rows, draws, n)`` uniformly random orders of ``n`` tokens; with ``antithetic``, every second
    order is the previous one reversed."""
    fresh = -(-draws // 2) if antithetic else draws
    orders = torch.rand(rows, fresh, n, generator=generator).argsort(-1)
    if antithetic:
        orders = torch.stack([orders, orders.flip(-1)], dim=2).view(rows, 2 * fresh, n)
    return orders[:, :draws]


def draw_text_permutations(
    batch: Batch, draws: int, *, antithetic: bool = True, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """Per text of ``batch``, ``(draws, n_i)`` orders of its ``n_i`` real tokens (see :func:`draw_permutations`)."""
    counts = (~batch.special_tokens_mask).sum(-1).tolist()
    return [draw_permutations(1, n, draws, antithetic=antithetic, generator=generator)[0] for n in counts]
