"""DiffMask's toy task (De Cao et al., 2020, Section 4), where the right mask is known.

Two query digits ``n != m`` and a sequence of 1-10 digits in which ``n`` and ``m`` each appear with
probability 0.25 (the other eight share the rest; ties happen); the label says whether ``n`` occurs
more often than ``m``. The model is the paper's: a per-position feed-forward layer, conditioned on
the queries, maps each digit to 2 numbers; a one-way GRU reads them and a linear head decides. No
position sees any other before the GRU, so at the feed-forward output (hook point 1) the only states
the decision needs are those of the ``n`` and ``m`` occurrences: the ground-truth mask. At the digit
embeddings (hook point 0) a probe cannot know the queries, so there is no ground truth to meet there
(it has to keep every digit).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from tqdm.auto import tqdm

from empexp.probes import Gates, Variant, better, probe_optimisers, summary

DIGITS = 10
MAX_LENGTH = 10
MARGIN = 0.05
POINT_NAMES = ["digit embeddings", "feed-forward output"]
GATED_POINT = 1
"""The hook point with a ground truth."""
SAMPLES = 4
"""Gate samples per text when measuring the sampled KL (the model is tiny; less noise costs little)."""


@dataclass(frozen=True)
class ToyData:
    """Toy examples as tensors: ``queries (N, 2)``, ``digits (N, 10)`` (0 after ``lengths``), ``labels (N,)``."""

    queries: torch.Tensor
    digits: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> ToyData:
        return ToyData(self.queries[index], self.digits[index], self.lengths[index], self.labels[index])

    @property
    def padding(self) -> torch.Tensor:
        """``(N, 10)``: True after each sequence's end (never gated)."""
        return torch.arange(self.digits.shape[1]) >= self.lengths.unsqueeze(1)

    @property
    def relevant(self) -> torch.Tensor:
        """``(N, 10)``: True at the occurrences of ``n`` and ``m``, the ground truth."""
        hits = (self.digits == self.queries[:, :1]) | (self.digits == self.queries[:, 1:])
        return hits & ~self.padding


def make_data(count: int, *, seed: int) -> ToyData:
    """``count`` examples drawn as in the paper; the same ``seed`` gives the same examples."""
    generator = torch.Generator().manual_seed(seed)
    queries = torch.rand(count, DIGITS, generator=generator).argsort(-1)[:, :2]
    probabilities = torch.full((count, DIGITS), 0.5 / (DIGITS - 2))
    probabilities.scatter_(1, queries, 0.25)
    digits = torch.multinomial(probabilities, MAX_LENGTH, replacement=True, generator=generator)
    lengths = torch.randint(1, MAX_LENGTH + 1, (count,), generator=generator)
    real = torch.arange(MAX_LENGTH) < lengths.unsqueeze(1)
    counts = [((digits == queries[:, i : i + 1]) & real).sum(-1) for i in (0, 1)]
    labels = (counts[0] > counts[1]).long()
    return ToyData(queries, digits.masked_fill(~real, 0), lengths, labels)


class ToyModel(nn.Module):
    """The paper's toy classifier: query-conditioned per-position feed-forward (2 outputs), then a GRU."""

    def __init__(self, size: int = 64):
        super().__init__()
        self.size = size
        self.query_embeddings = nn.Embedding(DIGITS, size)
        self.digit_embeddings = nn.Embedding(DIGITS, size)
        self.encoder = nn.Sequential(nn.Linear(3 * size, size), nn.Tanh(), nn.Linear(size, 2))
        self.gru = nn.GRU(2, size, batch_first=True)
        self.head = nn.Linear(size, 2)

    def forward(
        self, data: ToyData, replace: dict[int, Callable[[torch.Tensor], torch.Tensor]] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits ``(N, 2)`` and the two hook points' states; ``replace[i]`` rewrites state ``i`` on the way."""
        replace = replace or {}
        digits = self.digit_embeddings(data.digits)
        digits = replace[0](digits) if 0 in replace else digits
        queries = self.query_embeddings(data.queries).flatten(1).unsqueeze(1).expand(-1, digits.shape[1], -1)
        encoded = self.encoder(torch.cat([queries, digits], dim=-1))
        encoded = replace[1](encoded) if 1 in replace else encoded
        packed = pack_padded_sequence(encoded, data.lengths, batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed)
        return self.head(last[0]), [digits, encoded]


def accuracy(model: ToyModel, data: ToyData) -> float:
    with torch.no_grad():
        return (model(data)[0].argmax(-1) == data.labels).float().mean().item()


def train_model(*, seed: int = 0, steps: int = 3000, batch_size: int = 128, lr: float = 3e-3) -> ToyModel:
    """A toy classifier trained on fresh examples at every step (Adam, cosine-decayed learning rate).

    Label smoothing (0.1) keeps it from becoming so confident that any change of its input is a large KL.
    """
    torch.manual_seed(seed)
    model = ToyModel()
    data = make_data(steps * batch_size, seed=10_000 + seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    for step in tqdm(range(steps), desc="toy model", leave=False):
        batch = data[step * batch_size : (step + 1) * batch_size]
        loss = F.cross_entropy(model(batch)[0], batch.labels, label_smoothing=0.1)
        loss.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
    return model.eval().requires_grad_(False)


class ToyDiffMask(Gates):
    """DiffMask probes for the toy model's two hook points (sizes 64 and 2; probes of width 32, as in the paper)."""

    def __init__(self, model: ToyModel, *, variant: Variant = "hidden", margin: float = MARGIN):
        sizes = [model.size, 2]
        baselines = [nn.init.xavier_normal_(torch.empty(1, size))[0] for size in sizes]
        super().__init__(sizes, variant=variant, margin=margin, baselines=baselines, probe_size=32)

    def prediction_pass(self, model: ToyModel, data: ToyData):
        with torch.no_grad():
            original, states = model(data)

        def run_masked(point: int, gates: torch.Tensor) -> torch.Tensor:
            return model(data, {self.masked_point(point): lambda state: self.mask(state, gates, point)})[0]

        return original, states, data.padding, run_masked


def train_probes(
    model: ToyModel,
    *,
    variant: Variant = "hidden",
    seed: int = 0,
    steps: int = 7000,
    warmup: int = 200,
    batch_size: int = 128,
    lr: float = 1e-3,
    baseline_lr: float = 1e-3,
    multiplier_lr: float = 0.3,
    eval_every: int = 250,
    train: ToyData | None = None,
    dev: ToyData | None = None,
) -> tuple[ToyDiffMask, dict]:
    """Train DiffMask probes for ``model`` as the paper's code does; keep the best validated checkpoint.

    One hook point is sampled per step. Every ``eval_every`` steps the probes are measured on ``dev``;
    the checkpoint kept is the one with the lowest keep rate whose sampled-gate KL is within the margin
    at every point (:func:`empexp.probes.better`). Returns the probes and that checkpoint's metrics
    (``None`` if no checkpoint was within the margin: then the last probes are returned).
    """
    train = train if train is not None else make_data(10_000, seed=0)
    dev = dev if dev is not None else make_data(2_000, seed=1)
    torch.manual_seed(seed)
    probes = ToyDiffMask(model, variant=variant)
    optimisers = probe_optimisers(
        probes, lr=lr, baseline_lr=baseline_lr, multiplier_lr=multiplier_lr, warmup_steps=warmup
    )
    generator = torch.Generator().manual_seed(seed)
    best, best_state = None, None
    for step in tqdm(range(1, steps + 1), desc=f"toy probes (seed {seed})", leave=False):
        batch = train[torch.randint(len(train), (batch_size,), generator=generator)]
        point = int(torch.randint(probes.points, (), generator=generator))
        loss, _ = probes(model, batch, point)
        loss.backward()
        optimisers.step(probes)
        if step % eval_every == 0 or step == steps:
            metrics = {**summary(probes.evaluate(model, dev, samples=SAMPLES)), "step": step}
            if better(metrics, best, probes.margin):
                best, best_state = metrics, copy.deepcopy(probes.state_dict())
    if best_state is not None:
        probes.load_state_dict(best_state)
    return probes.eval(), {"selected": best}


@torch.no_grad()
def mask_quality(probes: ToyDiffMask, model: ToyModel, data: ToyData) -> dict[str, list[float]]:
    """How the probes' masks compare with the ground truth, per hook point.

    - ``table1_kl``, ``table1_js``: the paper's Table 1 measure: per text with at least one ``n``/``m``,
      the keep probabilities normalised over the sequence against the uniform distribution over the
      ``n``/``m`` positions, ``KL(ground truth || keep)`` and the Jensen-Shannon divergence, averaged.
    - ``precision``, ``recall``: of the tokens kept with probability > 0.5, over all texts.
    - ``sampled_kl``: ``KL(original || masked)`` with sampled gates; ``agreement``: masked and original
      predictions agree (deterministic gates).
    - ``kept_by_class``: fraction of tokens kept per predicted class (label leakage if they differ).
    """
    results = probes.evaluate(model, data, samples=SAMPLES)
    real, relevant = ~data.padding, data.relevant
    has_truth = relevant.any(-1)
    truth = relevant[has_truth].float()
    truth = truth / truth.sum(-1, keepdim=True)
    out: dict[str, list[float]] = {key: [] for key in ("table1_kl", "table1_js", "precision", "recall")}
    kept_by_class: list[list[float]] = [[], []]
    for point in range(probes.points):
        keep = results["keep"][..., point] * real
        attribution = keep[has_truth] / keep[has_truth].sum(-1, keepdim=True).clamp(min=1e-12)
        out["table1_kl"].append(_kl(truth, attribution).mean().item())
        middle = (truth + attribution) / 2
        out["table1_js"].append((0.5 * _kl(truth, middle) + 0.5 * _kl(attribution, middle)).mean().item())
        kept = (keep > 0.5) & real
        hits = (kept & relevant).sum().item()
        out["precision"].append(hits / max(1, kept.sum().item()))
        out["recall"].append(hits / max(1, relevant.sum().item()))
        fraction = kept.sum(-1) / real.sum(-1)
        for c in (0, 1):
            kept_by_class[c].append(fraction[results["predicted"] == c].mean().item())
    return {
        **out,
        "sampled_kl": results["sampled_kl"].mean(0).tolist(),
        "agreement": results["agreement"].mean(0).tolist(),
        "kept_by_class": kept_by_class,
        "chance": relevant.sum().item() / real.sum().item(),
    }


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Row-wise ``KL(p || q)``, with ``0 log 0 = 0``."""
    terms = torch.where(p > 0, p * (p.clamp(min=1e-12).log() - q.clamp(min=1e-12).log()), torch.zeros_like(p))
    return terms.sum(-1)


def restarts(model: ToyModel, seeds: Sequence[int], **options) -> tuple[ToyDiffMask, dict]:
    """:func:`train_probes` from each seed; the probes kept are chosen by the same rule as checkpoints
    (:func:`empexp.probes.better`), so a run that got stuck loses to one that did not."""
    chosen = None
    for seed in seeds:
        probes, info = train_probes(model, seed=seed, **options)
        if chosen is None or (info["selected"] and better(info["selected"], chosen[1]["selected"], probes.margin)):
            chosen = probes, {**info, "seed": seed}
    return chosen
