"""AttViz-style attention views (Škrlj et al., 2020): how much each token attends to itself, per head.

For every layer and head the diagonal of the attention matrix is read from the prediction pass (no
extra pass), then aggregated across heads (and layers) per token. AttViz's own script took one head
per layer; here every head of every layer is kept in ``head_scores``.
"""

from __future__ import annotations

from typing import Any

import torch

from empexp.classifier import Batch, Classifier, PredictionPass
from empexp.errors import InputError
from empexp.explainers.base import Attribution, Explainer
from empexp.explainers.registry import register

AGGREGATIONS = ("mean", "entropy", "std", "max", "min")


def self_attention(attentions: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The diagonals of per-layer attention weights ``(batch, heads, q, k)``: ``(batch, layers, heads, tokens)``."""
    return torch.stack([layer.diagonal(dim1=-2, dim2=-1) for layer in attentions], dim=1)


def aggregate(values: torch.Tensor, how: str, dims: int | tuple[int, ...]) -> torch.Tensor:
    """Aggregate ``values`` over ``dims``: mean, entropy, std (population), max or min.

    ``entropy`` treats the values as weights, normalised to a distribution over ``dims``: high when the
    heads agree on a token, low when one head dominates.
    """
    dims = (dims,) if isinstance(dims, int) else dims
    if how == "mean":
        return values.mean(dims)
    if how == "std":
        return values.std(dims, correction=0)
    if how == "max":
        return values.amax(dims)
    if how == "min":
        return values.amin(dims)
    if how == "entropy":
        weights = values / values.sum(dims, keepdim=True).clamp(min=1e-12)
        return -(weights * weights.clamp(min=1e-12).log()).sum(dims)
    raise InputError(f"unknown aggregation {how!r}; choose one of {', '.join(AGGREGATIONS)}")


@register
class Attention(Explainer):
    """Each head's attention of a token to itself, aggregated across heads (one pass, the prediction's).

    ``scores`` aggregate over every head of every layer (or of ``layer`` alone); ``layer_scores``
    aggregate each layer's heads; ``head_scores`` hold every head's diagonal. Special tokens keep their
    values. Reading attention weights switches the classifier to eager attention.

    Args:
        aggregation: one of ``mean``, ``entropy``, ``std``, ``max``, ``min``.
        layer: aggregate only this layer's heads for ``scores`` (0-based); ``None`` takes all layers.
        batch_size: texts explained together.

    Raises:
        InputError: an unknown aggregation or a layer out of range.
    """

    name = "attention"
    display_name = "Self-attention"
    description = "Self-attention (AttViz): how much each token attends to itself, per head, aggregated."
    kind = "attention"
    reads_attentions = True

    def __init__(
        self, classifier: Classifier, *, aggregation: str = "mean", layer: int | None = None, batch_size: int = 32
    ):
        super().__init__(classifier, batch_size=batch_size, pad_batches=True)
        if aggregation not in AGGREGATIONS:
            raise InputError(f"unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}")
        layers = classifier.model.config.num_hidden_layers
        if layer is not None and not -layers <= layer < layers:
            raise InputError(f"layer must be in 0..{layers - 1}, got {layer}")
        self.aggregation = aggregation
        self.layer = None if layer is None else layer % layers
        self.layers = layers

    def details(self) -> dict[str, Any]:
        return {
            "aggregation": self.aggregation,
            "layer": self.layer,
            "layer_names": [f"layer {i + 1}" for i in range(self.layers)],
        }

    @torch.no_grad()
    def attribute(self, batch: Batch, prediction: PredictionPass) -> Attribution:
        heads = self_attention(prediction.attentions)
        chosen = heads if self.layer is None else heads[:, self.layer : self.layer + 1]
        return Attribution(
            aggregate(chosen, self.aggregation, (1, 2)),
            layer_scores=aggregate(heads, self.aggregation, 2),
            head_scores=heads,
        )
