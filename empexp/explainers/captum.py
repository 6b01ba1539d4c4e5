"""The expensive explainers, as in "Efficient Explanations from Empirical Explainers": Captum's
Integrated Gradients on the embedding layer and Shapley Value Sampling over tokens.

Both explain the predicted class against a baseline that keeps special and pad tokens and replaces
every other token by the pad token, so special and pad positions get exactly zero attribution.
"""

from __future__ import annotations

from typing import Any

import torch
from captum.attr import IntegratedGradients, LayerIntegratedGradients, ShapleyValueSampling

from empexp import layers
from empexp.classifier import Batch, Classifier, PredictionPass, check_counts, pad_baseline
from empexp.errors import InputError
from empexp.explainers.base import Attribution, Explainer, PassCounter
from empexp.explainers.registry import register

INTEGRATION_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")
"""Captum's integration rules for IG's ``method``; the Riemann rules need at least 2 steps."""


@register
class IntegratedGradientsExplainer(Explainer):
    """Integrated Gradients on the output of the embedding layer, summed over the hidden dimension.

    Args:
        samples: integration steps (Captum's ``n_steps``).
        method: Captum's integration rule: ``"gausslegendre"`` (default), ``"riemann_trapezoid"``, ...
        internal_batch_size: rows per model pass (Captum's ``internal_batch_size``); ``None`` runs all
            steps of a batch in one pass.
        batch_size: texts attributed together.
        pad_batches: batch texts of different lengths together (padding them); defaults to ``True``
            on a GPU and ``False`` on a CPU, where padding waste outweighs the saved overhead.
    """

    name = "ig"
    display_name = "Integrated Gradients"
    description = "Integrated Gradients: gradients along the path from the pad baseline to the text, summed per token."
    kind = "expensive"

    def __init__(
        self,
        classifier: Classifier,
        *,
        samples: int = 20,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        batch_size: int = 8,
        pad_batches: bool | None = None,
    ):
        check_counts(samples=samples, internal_batch_size=internal_batch_size)
        if method not in INTEGRATION_METHODS:
            raise InputError(f"unknown integration method {method!r}: use one of {', '.join(INTEGRATION_METHODS)}")
        if method != "gausslegendre" and samples < 2:
            raise InputError(f"{method}, a Riemann rule, needs at least 2 samples, got {samples}")
        if pad_batches is None:
            pad_batches = classifier.device.type == "cuda"
        super().__init__(classifier, batch_size=batch_size, pad_batches=pad_batches)
        self.samples = samples
        self.method = method
        self.internal_batch_size = internal_batch_size
        # Models without an embeddings module (XLNet) lay their word embeddings out sequence-first inside
        # the model, which Captum's layer hook cannot expand along the batch. Attributing to
        # ``inputs_embeds`` (batch-first) is the same computation for the word-embedding layer.
        self._layer = layers.embedding_layer(classifier.model)
        self._on_word_embeddings = self._layer is classifier.model.get_input_embeddings()

    def details(self) -> dict[str, Any]:
        return {"integration_method": self.method}

    def attribute(self, batch: Batch, prediction: PredictionPass) -> Attribution:
        inputs = batch.input_ids
        baselines = pad_baseline(inputs, batch.special_tokens_mask, self.classifier.tokenizer.pad_token_id)
        counter = PassCounter()
        if self._on_word_embeddings:
            ig = IntegratedGradients(counter.wrap(self.classifier.forward_embeds))
            embed = self.classifier.model.get_input_embeddings()
            with torch.no_grad():
                inputs, baselines = embed(inputs), embed(baselines)
            counter.rows += 2 * len(inputs)  # as Captum's layer variant, which runs the model to get them
        else:
            ig = LayerIntegratedGradients(counter.wrap(self.classifier.forward), self._layer)
        attributions = ig.attribute(
            inputs=inputs,
            baselines=baselines,
            target=prediction.targets,
            additional_forward_args=self.classifier.model_inputs(batch),
            n_steps=self.samples,
            method=self.method,
            internal_batch_size=self.internal_batch_size,
        )
        return Attribution(attributions.sum(-1), passes=counter.rows)


@register
class ShapleyValueSamplingExplainer(Explainer):
    """Shapley Value Sampling over input tokens, special and pad positions forming one group.

    That group's baseline equals the input, so it always gets zero and the token scores add up to
    ``f(input) - f(baseline)`` for the target logit. Texts are only batched with texts of identical
    length, so a text gets the same scores alone or in a batch.

    Args:
        samples: sampled permutations (Captum's ``n_samples``).
        seed: seeds the permutations of every batch; same seed, same scores.
        perturbations_per_eval: perturbed inputs evaluated per model pass.
        batch_size: texts attributed together.
    """

    name = "sv"
    display_name = "Shapley Value Sampling"
    description = "Shapley Value Sampling: each token's average effect when added to random subsets of the others."
    kind = "expensive"

    def __init__(
        self,
        classifier: Classifier,
        *,
        samples: int = 20,
        seed: int = 0,
        perturbations_per_eval: int = 16,
        batch_size: int = 8,
    ):
        check_counts(samples=samples, perturbations_per_eval=perturbations_per_eval)
        super().__init__(classifier, batch_size=batch_size, pad_batches=False)
        self.samples = samples
        self.seed = seed
        self.perturbations_per_eval = perturbations_per_eval

    def details(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def attribute(self, batch: Batch, prediction: PredictionPass) -> Attribution:
        input_ids, special = batch.input_ids, batch.special_tokens_mask
        counter = PassCounter()
        sv = ShapleyValueSampling(counter.wrap(self.classifier.forward))
        # Feature 0 is every special/pad position; each other token is its own feature, numbered in order.
        feature_mask = torch.where(special, 0, (~special).long().cumsum(-1))
        # Captum draws permutations from torch's global generator: fork it so seeding stays local.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            scores = sv.attribute(
                input_ids,
                baselines=pad_baseline(input_ids, special, self.classifier.tokenizer.pad_token_id),
                target=prediction.targets,
                additional_forward_args=self.classifier.model_inputs(batch),
                feature_mask=feature_mask,
                n_samples=self.samples,
                perturbations_per_eval=self.perturbations_per_eval,
            )
        # The special group's baseline is the input itself, so its contribution is exactly zero; Captum
        # reports rounding noise (~1e-9) from evaluating the same input in differently sized batches.
        return Attribution(scores.masked_fill(special, 0.0), passes=counter.rows)
