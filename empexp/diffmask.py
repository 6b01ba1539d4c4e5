"""DiffMask probes (De Cao et al., 2020, "How do decisions emerge across layers in neural models?").

A probe per hook point (the word embeddings, the input of every layer, the last layer's output:
``L + 2`` points) reads the classifier's hidden states and predicts, per token, a Hard Concrete gate.
Closed gates replace a token's state by a learned baseline vector. The probes learn to close as many
gates as possible (expected L0) while the masked prediction stays close to the original one
(``KL(original || masked) <= margin``), a constrained problem solved with one Lagrange multiplier per
point. The classifier stays frozen.

- ``input`` variant: probe ``i`` reads ``concat(word embeddings, state i)``; the gates of probes
  ``0..l`` multiply and always mask the word embeddings: which *input* tokens can be dropped given
  what the model knows at depth ``l``.
- ``hidden`` variant: probe ``l`` reads state ``l`` and masks state ``l``: which tokens' states at
  depth ``l`` the rest of the model does not need.

Special tokens are never gated (as in the pad baseline of the attribution methods). Differences from
the paper's code: one baseline vector per hook point instead of one per position (any length works;
positions are added after the word embeddings anyway), and torch's own RMSprop instead of its
Lookahead wrapper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import RelaxedBernoulli
from torch.nn.utils.parametrizations import weight_norm

from empexp import layers
from empexp.artefact import AddedWeights, check_identity, load_artefact
from empexp.classifier import Classifier

Variant = Literal["input", "hidden"]
VARIANTS = ("input", "hidden")
METRICS = "diffmask_metrics.json"
"""Validation metrics the training script writes beside the weights."""
TEMPERATURE = 0.2
STRETCH = (-0.2, 1.0)
"""The interval ``(l, r)`` a binary concrete sample is stretched to before clamping to ``[0, 1]``."""


class HardConcrete:
    """Stretched, rectified binary concrete gates (Louizos et al., 2018), as DiffMask uses them.

    A binary concrete sample ``s`` (torch's ``RelaxedBernoulli``) is stretched to ``l + (r - l) s`` and
    clamped to ``[0, 1]``, so a gate is exactly 0 or 1 with non-zero probability and differentiable in
    between.
    """

    def __init__(self, logits: torch.Tensor, temperature: float = TEMPERATURE, stretch: tuple[float, float] = STRETCH):
        self.logits = logits
        self.temperature = temperature
        self.low, self.high = stretch

    def rsample(self) -> torch.Tensor:
        """Gates in ``[0, 1]``, reparameterised (gradients reach the logits)."""
        temperature = torch.tensor(self.temperature, device=self.logits.device)
        concrete = RelaxedBernoulli(temperature, logits=self.logits).rsample()
        return (self.low + (self.high - self.low) * concrete).clamp(0.0, 1.0)

    def log_expected_l0(self) -> torch.Tensor:
        """``log P(gate != 0)`` in closed form: ``log sigmoid(logits - T log(-l / r))``."""
        return F.logsigmoid(self.logits - self.temperature * torch.log(torch.tensor(-self.low / self.high)))

    def deterministic(self) -> torch.Tensor:
        """The test-time gate: the stretched, clamped sigmoid of the logits, no noise."""
        return (self.low + (self.high - self.low) * torch.sigmoid(self.logits)).clamp(0.0, 1.0)


class Probe(nn.Module):
    """The paper's gate predictor: weight-normed ``Linear -> tanh -> Linear -> tanh``, scaled, plus a bias.

    The bias starts at 5 (with a scale of 10), so every gate starts open and the probes learn what to close.
    """

    def __init__(self, in_features: int, hidden: int, scale: float = 10.0, bias: float = 5.0):
        super().__init__()
        self.net = nn.Sequential(
            weight_norm(nn.Linear(in_features, hidden)),
            nn.Tanh(),
            weight_norm(nn.Linear(hidden, 1)),
            nn.Tanh(),
        )
        self.scale = scale
        self.bias = nn.Parameter(torch.tensor(bias))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1) * self.scale + self.bias


class DiffMaskModel(
    nn.Module,
    AddedWeights,
    library_name="empexp",
    tags=["empexp", "diffmask", "explainability", "text-classification"],
):
    """DiffMask probes for every hook point of one classifier.

    Args:
        classifier: the classifier probed; its identity must match ``explains``.
        explains: :meth:`Classifier.identity` of the classifier the probes were trained for.
        variant: ``"input"`` or ``"hidden"`` (see the module docstring).
        margin: the KL divergence allowed between the original and the masked prediction.

    Raises:
        ModelLoadError: ``classifier`` is not the one in ``explains``.
        ValueError: an unknown ``variant``.
    """

    def __init__(self, classifier: Classifier, *, explains: dict, variant: Variant = "input", margin: float = 0.1):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        check_identity(explains, classifier)
        self.explains = explains
        self.variant = variant
        self.margin = margin
        model = classifier.model
        sizes = layers.hidden_sizes(model)
        hidden = max(1, model.config.hidden_size // 4)
        inputs = [sizes[0] + size for size in sizes] if variant == "input" else sizes
        self.probes = nn.ModuleList(Probe(size, hidden) for size in inputs)
        words = model.get_input_embeddings().weight
        tokenizer = classifier.tokenizer
        token = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.unk_token_id
        start = words[token].detach().clone() if token is not None else torch.zeros(sizes[0])
        if variant == "input":
            self.baselines = nn.ParameterList([nn.Parameter(start)])
        else:
            # As in the paper's hidden-state gates: Xavier-initialised, except the word embeddings'.
            rest = [nn.init.xavier_normal_(torch.empty(1, size))[0] for size in sizes[1:]]
            self.baselines = nn.ParameterList(nn.Parameter(vector) for vector in [start, *rest])
        self.multipliers = nn.Parameter(torch.ones(len(sizes)))
        """Lagrange multipliers, one per hook point: trained by gradient ascent, kept in ``[0, 200]``."""
        self.to(classifier.device)

    @property
    def points(self) -> int:
        return len(self.probes)

    def states(
        self, classifier: Classifier, batch: dict[str, torch.Tensor], hidden_states: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """The ``L + 2`` hook points' states (batch first) from a prediction pass's ``hidden_states``.

        The word embeddings are looked up again (a table lookup, not a pass).
        """
        return [classifier.model.get_input_embeddings()(batch["input_ids"]), *hidden_states]

    def gate_logits(self, states: list[torch.Tensor]) -> torch.Tensor:
        """Gate logits ``(batch, tokens, points)`` from the hook points' states."""
        features = states
        if self.variant == "input":
            features = [torch.cat([states[0], state], dim=-1) for state in states]
        return torch.stack([probe(f) for probe, f in zip(self.probes, features)], dim=-1)

    def keep_probabilities(self, logits: torch.Tensor, special_tokens_mask: torch.Tensor) -> torch.Tensor:
        """``P(gate != 0)`` per token and point ``(batch, tokens, points)``; special tokens are always kept (1).

        For the input variant a token is kept at point ``l`` only if all gates ``0..l`` are open.
        """
        log_keep = HardConcrete(logits).log_expected_l0()
        if self.variant == "input":
            log_keep = log_keep.cumsum(-1)
        return log_keep.exp().masked_fill(special_tokens_mask.unsqueeze(-1), 1.0)

    def gates(self, logits: torch.Tensor, special_tokens_mask: torch.Tensor, *, sample: bool) -> torch.Tensor:
        """Gates ``(batch, tokens, points)``: sampled (training) or deterministic (evaluation)."""
        dist = HardConcrete(logits)
        gates = dist.rsample() if sample else dist.deterministic()
        if self.variant == "input":
            gates = gates.cumprod(-1)
        return gates.masked_fill(special_tokens_mask.unsqueeze(-1), 1.0)

    def masked_logits(
        self, classifier: Classifier, batch: dict[str, torch.Tensor], point: int, gates: torch.Tensor
    ) -> torch.Tensor:
        """The classifier's logits with ``gates`` ``(batch, tokens)`` applied at ``point`` (gradients flow)."""
        where, baseline = (0, self.baselines[0]) if self.variant == "input" else (point, self.baselines[point])
        keep = gates.unsqueeze(-1)

        def mask(state: torch.Tensor) -> torch.Tensor:
            return state * keep + baseline * (1.0 - keep)

        with layers.replaced_states(classifier.model, {where: mask}):
            return classifier.forward(batch["input_ids"], *classifier.model_inputs(batch))

    def forward(
        self, classifier: Classifier, batch: dict[str, torch.Tensor], point: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The Lagrangian at ``point`` for one batch, ``mean(E[L0] + multiplier * (KL - margin))``, and its parts.

        Minimised by the probes and baselines, maximised by the multiplier (its optimiser must use
        ``maximize=True``). Gates are sampled; the classifier must not require gradients.
        """
        original, hidden_states = classifier.logits_and_hidden_states(batch)
        with torch.no_grad():
            states = self.states(classifier, batch, hidden_states)
        logits = self.gate_logits(states)
        special = batch["special_tokens_mask"]
        gates = self.gates(logits, special, sample=True)[..., point]
        masked = self.masked_logits(classifier, batch, point, gates)
        kl = kl_divergence(original, masked)
        real = (~special).float()
        keep = self.keep_probabilities(logits, special)[..., point]
        expected_l0 = (keep * real).sum(-1) / real.sum(-1).clamp(min=1.0)
        multiplier = self.multipliers[point]
        loss = (expected_l0 + multiplier * (kl - self.margin)).mean()
        return loss, {"kl": kl.mean().item(), "expected_l0": expected_l0.mean().item(), "multiplier": multiplier.item()}

    def clamp_multipliers(self) -> None:
        """Keep the multipliers in ``[0, 200]`` after each ascent step, as the paper does."""
        with torch.no_grad():
            self.multipliers.clamp_(0.0, 200.0)

    @torch.no_grad()
    def evaluate(self, classifier: Classifier, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per instance and point, with deterministic gates: KL, agreement of predictions, fraction kept.

        Returns tensors of shape ``(batch, points)`` under ``kl``, ``agreement`` (1 where the masked
        prediction equals the original) and ``kept`` (fraction of real tokens whose gate is not 0),
        plus ``keep`` and ``gates`` ``(batch, tokens, points)``: keep probabilities and the gates used.
        """
        original, hidden_states = classifier.logits_and_hidden_states(batch)
        logits = self.gate_logits(self.states(classifier, batch, hidden_states))
        special = batch["special_tokens_mask"]
        gates = self.gates(logits, special, sample=False)
        real = (~special).float()
        kl, agreement, kept = [], [], []
        for point in range(self.points):
            masked = self.masked_logits(classifier, batch, point, gates[..., point])
            kl.append(kl_divergence(original, masked))
            agreement.append((masked.argmax(-1) == original.argmax(-1)).float())
            kept.append(((gates[..., point] > 0).float() * real).sum(-1) / real.sum(-1).clamp(min=1.0))
        return {
            "kl": torch.stack(kl, -1),
            "agreement": torch.stack(agreement, -1),
            "kept": torch.stack(kept, -1),
            "keep": self.keep_probabilities(logits, special),
            "gates": gates,
        }

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What is saved: probes and baselines (the multipliers only matter during training)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("multipliers")}


@torch.no_grad()
def validation(
    model: DiffMaskModel,
    classifier: Classifier,
    batches: Iterable[dict[str, torch.Tensor]],
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda values: values,
) -> dict[str, list[float]]:
    """Mean KL, agreement and fraction kept per hook point over ``batches`` (deterministic gates).

    ``gather`` collects each batch's values from all processes (``accelerator.gather_for_metrics``).
    """
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for batch in batches:
        results = model.evaluate(classifier, batch)
        for key in ("kl", "agreement", "kept"):
            values = gather(results[key])
            sums[key] = sums.get(key, 0) + values.sum(0)
        count += len(values)  # rows of this batch over all processes
    return {key: [round(v, 6) for v in (total / count).tolist()] for key, total in sums.items()}


def kl_divergence(original: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(original) || softmax(masked))`` per row."""
    return F.kl_div(masked.log_softmax(-1), original.log_softmax(-1), log_target=True, reduction="none").sum(-1)


def load_diffmask(name_or_path: str | Path, classifier: Classifier, *, revision: str | None = None) -> DiffMaskModel:
    """DiffMask probes from a Hub id or a local folder, on ``classifier`` (which must be their own).

    Raises:
        ModelLoadError: nothing loadable there, a corrupt file, or another classifier's probes.
    """
    return load_artefact(DiffMaskModel, name_or_path, classifier, revision=revision, what="DiffMask probes")


def point_names(points: int) -> list[str]:
    """Readable names of the hook points: ``embeddings``, ``layer 1 input``, ..., ``output``."""
    return ["word embeddings"] + [f"layer {i} input" for i in range(1, points - 1)] + ["last layer output"]
