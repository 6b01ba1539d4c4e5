"""DiffMask probes (De Cao et al., 2020, "How do decisions emerge across layers in neural models?").

A probe per hook point reads the model's hidden states and predicts, per token, a Hard Concrete gate.
Closed gates replace a token's state by a learned baseline vector. The probes learn to close as many
gates as possible while the masked prediction stays close to the original one
(``KL(original || masked) <= margin``): a constrained problem, solved as the Lagrangian
``mean(log E[L0]) + multiplier * (KL - margin)`` with one multiplier per point, minimised by the
probes and maximised by the multiplier (``aim``: a target below the margin, so that the KL the
multipliers hold is within the margin on new texts too). The model stays frozen.

:class:`Gates` holds what does not depend on the model gated (probes, baselines, multipliers, the
Lagrangian, the metrics); :class:`DiffMaskModel` applies it to a Hugging Face classifier, with
``L + 2`` hook points (the word embeddings, the input of every layer, the last layer's output), and
``empexp.toy`` to the paper's toy model.

- ``input`` variant: probe ``i`` reads ``concat(state 0, state i)``; the gates of probes ``0..l``
  multiply and always mask state 0 (the word embeddings): which *input* tokens can be dropped given
  what the model knows at depth ``l``.
- ``hidden`` variant: probe ``l`` reads state ``l`` and masks state ``l``: which tokens' states at
  depth ``l`` the rest of the model does not need.

As in the paper and its authors' code: gate predictor ``tanh(MLP) * 10 + bias`` with weight norm and
the bias starting at 5 (here the last layer starts at zero as well, so every gate starts open and the
masked model starts equal to the original); Hard Concrete with temperature 0.2 and stretch
``(-0.2, 1.0)``; the L0 term is the mean *log* probability of keeping a token; the multipliers start at 1,
take gradient-ascent steps with RMSprop wrapped in Lookahead (k = 6, alpha = 0.5) and are clipped to
``[0, 200]``; each step trains the probe(s) and the multiplier of one sampled point only. Differences:
one baseline vector per hook point instead of one per position (any length works), special tokens
([CLS], [SEP]) are not gated unless ``gate_special`` (the paper gates them), torch's RMSprop for
the probes without Lookahead, and an optional penalty on keep rates that tell the predicted class
(``leakage``, off by default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import RelaxedBernoulli
from torch.nn.utils.parametrizations import weight_norm

from empexp import layers
from empexp.artefact import AddedWeights, check_identity, load_artefact
from empexp.classifier import Batch, Classifier

Variant = Literal["input", "hidden"]
VARIANTS = ("input", "hidden")
METRICS = "diffmask_metrics.json"
"""Validation metrics the training script writes beside the weights."""
RUN_RECORD = ("step", "args", "aims", "init")
"""What a training run records in :data:`METRICS` besides validation: the step kept, its arguments, the aims
it held, and the same record of the probes it started from (``--init``)."""
TEMPERATURE = 0.2
STRETCH = (-0.2, 1.0)
"""The interval ``(l, r)`` a binary concrete sample is stretched to before clamping to ``[0, 1]``."""
MULTIPLIER_RANGE = (0.0, 200.0)
MEASURES = ("kl", "agreement", "sampled_kl", "kept", "l0")
"""Per text and hook point, from :meth:`Gates.measure`: KL and agreement with deterministic gates,
KL with sampled gates, fraction of gated tokens whose deterministic gate is not 0, mean keep probability."""

RunMasked = Callable[[int, torch.Tensor], torch.Tensor]
"""``(point, gates (batch, tokens)) -> logits`` of the model with those gates applied at that point."""


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

    The bias starts at 5 and the last layer at zero, so every gate starts open (keep probability
    0.995) and the masked model starts as the original: the probes learn what to close.
    """

    def __init__(self, in_features: int, hidden: int, scale: float = 10.0, bias: float = 5.0):
        super().__init__()
        last = nn.Linear(hidden, 1)
        nn.init.zeros_(last.bias)
        last = weight_norm(last)
        with torch.no_grad():
            last.parametrizations.weight.original0.zero_()  # the norm g: weights zero, gradients still reach g
        self.net = nn.Sequential(weight_norm(nn.Linear(in_features, hidden)), nn.Tanh(), last, nn.Tanh())
        self.scale = scale
        self.bias = nn.Parameter(torch.tensor(bias))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1) * self.scale + self.bias


class LookaheadRMSprop(torch.optim.RMSprop):
    """RMSprop whose weights are pulled half-way back to a slow copy every ``k`` of their own steps.

    Lookahead (Zhang et al., 2019), as the paper's code uses for the multipliers. Steps are counted per
    parameter, and parameters without a gradient are skipped entirely (no step, no count), so a
    multiplier only moves on the steps that sampled its point. The slow copies live in the optimiser's
    state, so they are checkpointed with it.
    """

    def __init__(self, params, *, k: int = 6, alpha: float = 0.5, **kwargs):
        super().__init__(params, **kwargs)
        self.k = k
        self.alpha = alpha

    @torch.no_grad()
    def step(self, closure=None):
        before = {p: p.detach().clone() for group in self.param_groups for p in group["params"] if p.grad is not None}
        loss = super().step(closure)
        for p, old in before.items():
            state = self.state[p]
            slow = state.setdefault("slow", old)
            state["fast_steps"] = state.get("fast_steps", 0) + 1
            if state["fast_steps"] % self.k == 0:
                slow.add_(p - slow, alpha=self.alpha)
                p.copy_(slow)
        return loss


class Gates(nn.Module):
    """Probes, baselines and Lagrange multipliers for a model's hook points, whatever the model.

    Args:
        sizes: the width of each hook point's state, in order.
        variant: ``"input"`` or ``"hidden"`` (see the module docstring).
        margin: the KL divergence allowed between the original and the masked prediction.
        baselines: initial baseline vectors, one per point (the input variant keeps point 0's only: it
            always masks there).
        aim: the KL the multipliers hold the masked prediction at in training (default: ``margin``).
            Below the margin, the checkpoint rule's confidence bound (:func:`better`) can be met.
        leakage: weight of a penalty on how much a text's keep rate tells its predicted class (default 0:
            the paper's objective; see :meth:`lagrangian`).
        probe_size: width of each probe's hidden layer.
        gate_special: gate special tokens too (only padding is never gated).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        variant: Variant,
        margin: float,
        baselines: Sequence[torch.Tensor],
        probe_size: int,
        gate_special: bool = False,
        aim: float | None = None,
        leakage: float = 0.0,
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.margin = margin
        self.aim = margin if aim is None else aim
        self.leakage = leakage
        self.gate_special = gate_special
        inputs = [sizes[0] + size for size in sizes] if variant == "input" else list(sizes)
        self.probes = nn.ModuleList(Probe(size, probe_size) for size in inputs)
        kept = baselines[:1] if variant == "input" else baselines
        self.baselines = nn.ParameterList(nn.Parameter(vector.detach().clone()) for vector in kept)
        # One scalar per point, so that a step that never reached a point leaves its multiplier (and
        # its optimiser state) alone.
        self.multipliers = nn.ParameterList(nn.Parameter(torch.tensor(1.0)) for _ in sizes)

    @property
    def points(self) -> int:
        return len(self.probes)

    def used_points(self, point: int) -> list[int]:
        """The probes whose gates decide what is masked at ``point``."""
        return list(range(point + 1)) if self.variant == "input" else [point]

    def ungated(self, batch: Batch) -> torch.Tensor:
        """``(batch, tokens)``: True where no gate applies (padding; special tokens unless ``gate_special``)."""
        return batch.attention_mask == 0 if self.gate_special else batch.special_tokens_mask

    def gate_logits(self, states: Sequence[torch.Tensor], points: Sequence[int] | None = None) -> torch.Tensor:
        """Gate logits ``(batch, tokens, len(points))`` of the probes at ``points`` (default: all)."""
        points = range(self.points) if points is None else points
        if self.variant == "input":
            features = [torch.cat([states[0], states[p]], dim=-1) for p in points]
        else:
            features = [states[p] for p in points]
        return torch.stack([self.probes[p](f) for p, f in zip(points, features)], dim=-1)

    def log_keep(self, logits: torch.Tensor) -> torch.Tensor:
        """``log P(token kept)`` per point: for the input variant, every gate up to the point must be open."""
        log_keep = HardConcrete(logits).log_expected_l0()
        return log_keep.cumsum(-1) if self.variant == "input" else log_keep

    def keep_probabilities(self, logits: torch.Tensor, ungated: torch.Tensor) -> torch.Tensor:
        """``P(gate != 0)`` per token and point ``(batch, tokens, points)``; 1 where no gate applies."""
        return self.log_keep(logits).exp().masked_fill(ungated.unsqueeze(-1), 1.0)

    def gates(self, logits: torch.Tensor, ungated: torch.Tensor, *, sample: bool) -> torch.Tensor:
        """Gates ``(batch, tokens, points)``: sampled (training) or deterministic (evaluation)."""
        dist = HardConcrete(logits)
        gates = dist.rsample() if sample else dist.deterministic()
        if self.variant == "input":
            gates = gates.cumprod(-1)
        return gates.masked_fill(ungated.unsqueeze(-1), 1.0)

    def masked_point(self, point: int) -> int:
        """Where the gates of ``point`` are applied: always the input for the input variant."""
        return 0 if self.variant == "input" else point

    def mask(self, state: torch.Tensor, gates: torch.Tensor, point: int) -> torch.Tensor:
        """``state`` with closed gates ``(batch, tokens)`` replaced by the baseline of the masked point."""
        baseline = self.baselines[self.masked_point(point)]
        keep = gates.unsqueeze(-1)
        return state * keep + baseline * (1.0 - keep)

    def lagrangian(
        self,
        original: torch.Tensor,
        states: Sequence[torch.Tensor],
        ungated: torch.Tensor,
        point: int,
        run_masked: RunMasked,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``mean(log E[L0] + multiplier * (KL - aim))`` at ``point`` for one batch, and its parts.

        Gates are sampled; only the probes and the multiplier that ``point`` uses enter the graph. With
        ``leakage``, plus ``leakage`` times how far apart the predicted classes' keep rates are
        (:func:`class_spread`): a mask whose size tells the prediction is penalised (the paper has no such
        term; a baseline that pulls towards one class makes closing gates cheaper for that class).
        """
        logits = self.gate_logits(states, self.used_points(point))
        gates = self.gates(logits, ungated, sample=True)[..., -1]
        kl = kl_divergence(original, run_masked(point, gates))
        gated = (~ungated).float()
        count = gated.sum(-1).clamp(min=1.0)
        log_keep = self.log_keep(logits)[..., -1]
        log_l0 = (log_keep * gated).sum(-1) / count
        multiplier = self.multipliers[point]
        loss = (log_l0 + multiplier * (kl - self.aim)).mean()
        keep_rates = (log_keep.exp() * gated).sum(-1) / count
        parts = {"kl": kl.mean().item(), "l0": keep_rates.mean().item(), "multiplier": multiplier.item()}
        if self.leakage:
            leak = class_spread(keep_rates, original.argmax(-1))
            loss = loss + self.leakage * leak
            parts["leakage"] = leak.item()
        return loss, parts

    def prediction_pass(self, model, batch) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, RunMasked]:
        """The model's logits and hook-point states for ``batch`` (no gradients), where no gate applies,
        and how to run the model with gates applied; what a subclass wires for its kind of model."""
        raise NotImplementedError

    def forward(self, model, batch, point: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The Lagrangian at ``point`` for one batch and its parts (see :meth:`lagrangian`).

        Minimised by the probes and baselines, maximised by the multiplier; the model must not
        require gradients.
        """
        original, states, ungated, run_masked = self.prediction_pass(model, batch)
        return self.lagrangian(original, states, ungated, point, run_masked)

    @torch.no_grad()
    def evaluate(self, model, batch, samples: int = 1) -> dict[str, torch.Tensor]:
        """:meth:`measure` on one batch, plus the model's ``predicted`` class per text."""
        original, states, ungated, run_masked = self.prediction_pass(model, batch)
        measured = self.measure(original, states, ungated, run_masked, samples=samples)
        return {**measured, "predicted": original.argmax(-1)}

    def clamp_multipliers(self) -> None:
        """Keep the multipliers in ``[0, 200]`` after each ascent step, as the paper does."""
        with torch.no_grad():
            for multiplier in self.multipliers:
                multiplier.clamp_(*MULTIPLIER_RANGE)

    @torch.no_grad()
    def measure(
        self,
        original: torch.Tensor,
        states: Sequence[torch.Tensor],
        ungated: torch.Tensor,
        run_masked: RunMasked,
        *,
        seed: int = 0,
        samples: int = 1,
    ) -> dict[str, torch.Tensor]:
        """Per text and point ``(batch, points)``: the :data:`MEASURES`; plus ``keep`` and ``gates``
        ``(batch, tokens, points)``, the keep probabilities and the deterministic gates.

        ``sampled_kl`` averages ``samples`` draws of the gates per text. They come from torch's random
        state seeded with ``seed`` in a fork, so measuring neither depends on nor disturbs the caller's.
        """
        logits = self.gate_logits(states)
        gates = self.gates(logits, ungated, sample=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            sampled = [self.gates(logits, ungated, sample=True) for _ in range(samples)]
        keep = self.keep_probabilities(logits, ungated)
        gated = (~ungated).float()
        count = gated.sum(-1).clamp(min=1.0)
        results: dict[str, list[torch.Tensor]] = {name: [] for name in MEASURES}
        for point in range(self.points):
            masked = run_masked(point, gates[..., point])
            results["kl"].append(kl_divergence(original, masked))
            results["agreement"].append((masked.argmax(-1) == original.argmax(-1)).float())
            draws = [kl_divergence(original, run_masked(point, draw[..., point])) for draw in sampled]
            results["sampled_kl"].append(torch.stack(draws).mean(0))
            results["kept"].append(((gates[..., point] > 0).float() * gated).sum(-1) / count)
            results["l0"].append((keep[..., point] * gated).sum(-1) / count)
        return {**{k: torch.stack(v, -1) for k, v in results.items()}, "keep": keep, "gates": gates}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What is saved: probes and baselines (the multipliers only matter during training)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("multipliers")}


@dataclass
class ProbeOptimisers:
    """The optimisers of DiffMask training (see :func:`probe_optimisers`) and the one way to take a step."""

    probes: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    multipliers: torch.optim.Optimizer

    def step(self, gates: Gates) -> None:
        """After the Lagrangian's backward pass: descend for the probes, ascend for the multipliers (clipped)."""
        self.probes.step()
        self.schedule.step()
        self.multipliers.step()
        # Gradients go (None, not zero): a probe or multiplier the next step does not reach is skipped.
        self.probes.zero_grad(set_to_none=True)
        self.multipliers.zero_grad(set_to_none=True)
        gates.clamp_multipliers()


def probe_optimisers(
    gates: Gates, *, lr: float, baseline_lr: float, multiplier_lr: float, warmup_steps: int
) -> ProbeOptimisers:
    """The optimisers of DiffMask training, as in the paper's code.

    Probes and baselines: centred RMSprop, its learning rate warmed up linearly over ``warmup_steps``
    (RMSprop's first steps, its running average still near zero, are large). Multipliers: gradient
    ascent with :class:`LookaheadRMSprop`.
    """
    groups = [
        {"params": list(gates.probes.parameters()), "lr": lr},
        {"params": list(gates.baselines.parameters()), "lr": baseline_lr},
    ]
    optimiser = torch.optim.RMSprop(groups, centered=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: min(1.0, (step + 1) / max(1, warmup_steps)))
    ascent = LookaheadRMSprop(list(gates.multipliers), lr=multiplier_lr, maximize=True)
    return ProbeOptimisers(optimiser, scheduler, ascent)


def better(candidate: dict[str, list[float]], best: dict[str, list[float]] | None, margin: float) -> bool:
    """The checkpoint rule: within the margin at every point, and a lower mean keep rate than ``best``.

    Within the margin means the sampled-gate KL's upper bound, mean + 2 standard errors over the
    validation texts (``sampled_kl_se``), is at most ``margin``: the Lagrangian holds the KL *at* the
    margin, so a checkpoint that is within it only by the luck of its validation sample would not
    be on new texts.
    """
    upper = [kl + 2 * se for kl, se in zip(candidate["sampled_kl"], candidate["sampled_kl_se"])]
    if max(upper) > margin:
        return False
    return best is None or sum(candidate["l0"]) < sum(best["l0"])


def summary(values: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """Per point, the mean over texts of each of the :data:`MEASURES` in ``values`` ``(texts, points)``,
    and ``sampled_kl_se``, the standard error of the sampled KL's mean."""
    means = {key: [round(x, 6) for x in values[key].mean(0).tolist()] for key in MEASURES}
    se = values["sampled_kl"].std(0) / len(values["sampled_kl"]) ** 0.5
    return {**means, "sampled_kl_se": [round(x, 6) for x in se.tolist()]}


def class_spread(keep_rates: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """How far apart the predicted classes' mean keep rates are: the variance across classes of the log-odds
    of each class's mean, estimated without bias from a batch as the covariance of that across its two halves
    (the square of one batch's spread would add its sampling noise, which also pulls the classes apart).
    Log-odds, so that a gap counts as much among gates that are nearly all open as among nearly closed ones.
    0 unless both halves hold texts of at least two classes in common."""
    halves = [(keep_rates[i::2], predicted[i::2]) for i in (0, 1)]
    common = sorted(set(halves[0][1].tolist()) & set(halves[1][1].tolist()))
    if len(common) < 2:
        return keep_rates.sum() * 0.0
    # eps: a class whose gates are all fully open (keep rate 1.0 in float32) would have infinite log-odds.
    odds = [torch.stack([rates[labels == c].mean().logit(eps=1e-6) for c in common]) for rates, labels in halves]
    return ((odds[0] - odds[0].mean()) * (odds[1] - odds[1].mean())).mean()


def kl_divergence(original: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(original) || softmax(masked))`` per row."""
    return F.kl_div(masked.log_softmax(-1), original.log_softmax(-1), log_target=True, reduction="none").sum(-1)


class DiffMaskModel(
    Gates,
    AddedWeights,
    library_name="empexp",
    tags=["empexp", "diffmask", "explainability", "text-classification"],
):
    """DiffMask probes for every hook point of one classifier (``L + 2`` points, see the module docstring).

    Args:
        classifier: the classifier probed; its identity must match ``explains``.
        explains: :meth:`Classifier.identity` of the classifier the probes were trained for.
        variant: ``"input"`` or ``"hidden"``.
        margin: the KL divergence allowed between the original and the masked prediction.
        gate_special: gate [CLS]/[SEP] too, as the paper does (default: they are always kept).
        aim: the KL training holds the masked prediction at (default: ``margin``; see :class:`Gates`).
        leakage: weight of the training penalty on keep rates that tell the predicted class (see :class:`Gates`).

    Raises:
        ModelLoadError: ``classifier`` is not the one in ``explains``.
        ValueError: an unknown ``variant``.
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        explains: dict,
        variant: Variant = "input",
        margin: float = 0.1,
        gate_special: bool = False,
        aim: float | None = None,
        leakage: float = 0.0,
    ):
        check_identity(explains, classifier)
        model = classifier.model
        sizes = layers.hidden_sizes(model)
        words = model.get_input_embeddings().weight
        tokenizer = classifier.tokenizer
        token = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.unk_token_id
        start = words[token].detach() if token is not None else torch.zeros(sizes[0])
        # As in the paper's hidden-state gates: Xavier-initialised, except the word embeddings'.
        rest = [nn.init.xavier_normal_(torch.empty(1, size))[0] for size in sizes[1:]]
        super().__init__(
            sizes,
            variant=variant,
            margin=margin,
            baselines=[start, *rest],
            probe_size=max(1, model.config.hidden_size // 4),
            gate_special=gate_special,
            aim=aim,
            leakage=leakage,
        )
        self.explains = explains
        self.to(classifier.device)

    def states(self, classifier: Classifier, batch: Batch, hidden_states: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The ``L + 2`` hook points' states (batch first) from a prediction pass's ``hidden_states``.

        The word embeddings are looked up again (a table lookup, not a pass).
        """
        return [classifier.model.get_input_embeddings()(batch.input_ids), *hidden_states]

    def masked_logits(self, classifier: Classifier, batch: Batch, point: int, gates: torch.Tensor) -> torch.Tensor:
        """The classifier's logits with ``gates`` ``(batch, tokens)`` of ``point`` applied (gradients flow)."""
        where = self.masked_point(point)
        with layers.replaced_states(classifier.model, {where: lambda state: self.mask(state, gates, point)}):
            return classifier.forward(batch.input_ids, *classifier.model_inputs(batch))

    def prediction_pass(self, classifier: Classifier, batch: Batch):
        prediction = classifier.prediction_pass(batch, hidden_states=True)
        original = prediction.logits
        with torch.no_grad():
            states = self.states(classifier, batch, prediction.hidden_states)
        return original, states, self.ungated(batch), partial(self.masked_logits, classifier, batch)


@torch.no_grad()
def validation(
    model: DiffMaskModel,
    classifier: Classifier,
    batches: Iterable[Batch],
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda values: values,
) -> dict[str, list]:
    """:func:`summary` of the probes over ``batches``, and the label-leakage check.

    ``l0_by_class[c][p]`` is the mean keep probability at point ``p`` over texts predicted as class
    ``c``: probes that encode the prediction in how much they keep show different rows. Per text,
    ``l0_class_auc[p]`` is how well a text's keep rate at point ``p`` tells class 0 from the others: the AUC
    (0.5: not at all; 0 or 1: completely), ``None`` when only one class is predicted. ``kept_by_class`` and
    ``kept_class_auc``: the same for the fraction of tokens the deterministic gates keep (the number of
    tokens kept, what the masked model sees).
    ``gather`` collects each batch's values from all processes (``accelerator.gather_for_metrics``).
    """
    rows: dict[str, list[torch.Tensor]] = {key: [] for key in (*MEASURES, "predicted")}
    for batch in batches:
        results = model.evaluate(classifier, batch)
        for key in rows:
            rows[key].append(gather(results[key]))
    values = {key: torch.cat(v) for key, v in rows.items()}
    predicted = values.pop("predicted")

    def by_class(measure: str) -> list[list[float] | None]:
        return [
            [round(x, 6) for x in values[measure][predicted == c].mean(0).tolist()] if (predicted == c).any() else None
            for c in range(len(classifier.labels))
        ]

    return {
        **summary(values),
        "l0_by_class": by_class("l0"),
        "kept_by_class": by_class("kept"),
        "l0_class_auc": class_auc(values["l0"], predicted),
        "kept_class_auc": class_auc(values["kept"], predicted),
        "texts": len(predicted),
    }


def class_auc(values: torch.Tensor, predicted: torch.Tensor) -> list[float] | None:
    """Per point, the AUC with which ``values`` ``(texts, points)`` tell texts predicted as class 0 (ranked
    above) from the others; ``None`` when only one side has texts."""
    first, rest = values[predicted == 0], values[predicted != 0]
    if not len(first) or not len(rest):
        return None
    above = first.unsqueeze(1) - rest.unsqueeze(0)  # (first texts, other texts, points)
    return [round(x, 6) for x in ((above > 0).float() + 0.5 * (above == 0).float()).mean((0, 1)).tolist()]


@torch.no_grad()
def keep_spread(runs: Sequence[DiffMaskModel], classifier: Classifier, batches: Iterable[Batch]) -> list[float]:
    """Per hook point, the standard deviation of a token's keep probability across ``runs`` (probes of
    one variant trained with different seeds), averaged over the gated tokens of ``batches``.

    The paper's measure of how much a DiffMask explanation depends on the seed (0.05 for its input
    probes, 0.03 for its hidden ones on SST).

    Raises:
        ValueError: the runs differ in variant or in which tokens they gate.
    """
    if len({(run.variant, run.gate_special) for run in runs}) > 1:
        raise ValueError("keep_spread compares probes of one variant that gate the same tokens")
    total, count = torch.zeros(runs[0].points), 0
    for batch in batches:
        # The probes read the same frozen classifier: one prediction pass serves every run.
        _, states, ungated, _ = runs[0].prediction_pass(classifier, batch)
        keeps = [run.keep_probabilities(run.gate_logits(states), ungated) for run in runs]
        spread = torch.stack(keeps).std(0)[~ungated]  # (gated tokens, points)
        total += spread.sum(0).cpu()
        count += len(spread)
    return [round(x, 6) for x in (total / max(count, 1)).tolist()]


def load_diffmask(name_or_path: str | Path, classifier: Classifier, *, revision: str | None = None) -> DiffMaskModel:
    """DiffMask probes from a Hub id or a local folder, on ``classifier`` (which must be their own).

    Raises:
        ModelLoadError: nothing loadable there, a corrupt file, or another classifier's probes.
    """
    return load_artefact(DiffMaskModel, name_or_path, classifier, revision=revision, what="DiffMask probes")


def validation_markdown(metrics: dict) -> str:
    """A Markdown table, one row per hook point, of what :func:`validation` measured (cards, app, benchmark)."""
    names = point_names(len(metrics["kl"]))
    by_class = metrics.get("l0_by_class") or []
    lines = [
        "| hook point | KL | sampled KL | agreement | fraction kept | keep rate | keep rate per predicted class |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, name in enumerate(names):
        classes = " / ".join("-" if row is None else f"{row[i]:.3f}" for row in by_class)
        lines.append(
            f"| {name} | {metrics['kl'][i]:.4f} | {metrics['sampled_kl'][i]:.4f} | {metrics['agreement'][i]:.3f} | "
            f"{metrics['kept'][i]:.3f} | {metrics['l0'][i]:.3f} | {classes} |"
        )
    return "\n".join(lines)


def point_names(points: int) -> list[str]:
    """Readable names of the hook points: ``embeddings``, ``layer 1 input``, ..., ``output``."""
    return ["word embeddings"] + [f"layer {i} input" for i in range(1, points - 1)] + ["last layer output"]
