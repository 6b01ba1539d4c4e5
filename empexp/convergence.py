"""Convergence curves, the evaluation of "Efficient Explanations from Empirical Explainers".

How far is the expensive explainer with ``s`` samples from itself with the full budget (``s = 20``),
for ``s = 1 .. 19``, and how far is an empirical explainer? The smallest ``s`` whose error is below
the empirical explainer's is the crossover ``s*``: the number of samples the expensive explainer needs
to beat a one-pass prediction of it.

Shapley Value Sampling with ``s`` permutations is the mean of ``s`` one-permutation estimates, so the
curve draws ``2 * max_samples - 1`` independently seeded one-permutation runs: the target is the mean
of the first ``max_samples``, the estimate at ``s`` the mean of ``s`` of the others. That costs 39
permutations per text instead of the 210 of separate runs, with the same expected errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from empexp.classifier import Classifier
from empexp.explainers import Explainer, get_explainer
from empexp.explanation import Explanation
from empexp.hub import artefact_file

CURVE_FILE = "convergence.json"


@dataclass
class Curve:
    """Mean per-instance MSE (over real tokens) against the ``max_samples`` target, by sample count."""

    method: str
    max_samples: int
    texts: int
    seed: int
    mse: dict[int, float]
    """``s`` -> MSE of the expensive explainer with ``s`` samples, for ``s < max_samples``."""
    seconds: dict[int, float]
    """``s`` -> seconds per text of the expensive explainer with ``s`` samples."""
    target_mean_square: float
    """Mean square of the target scores, the scale the errors compare to."""
    empirical: dict[str, dict[str, float]] = field(default_factory=dict)
    """Empirical explainer name -> ``{"mse", "seconds", "crossover"}``."""

    def crossover(self, mse: float) -> int:
        """The smallest ``s`` whose MSE is below ``mse``; ``max_samples`` if no smaller ``s`` is."""
        return next((s for s in sorted(self.mse) if self.mse[s] < mse), self.max_samples)

    def add_empirical(self, name: str, mse: float, seconds: float) -> None:
        self.empirical[name] = {"mse": mse, "seconds": seconds, "crossover": self.crossover(mse)}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> Curve:
        """The inverse of ``dataclasses.asdict``, also after JSON, whose object keys are strings."""
        return cls(**data | {key: {int(s): value for s, value in data[key].items()} for key in ("mse", "seconds")})

    @classmethod
    def from_json(cls, text: str) -> Curve:
        return cls.from_dict(json.loads(text))


def real_scores(estimate: Explanation, target: Explanation) -> tuple[torch.Tensor, torch.Tensor]:
    """Both explanations' scores at the real tokens (special tokens, 0 in both, left out)."""
    real = torch.tensor([offset is not None for offset in target.offsets])
    return torch.tensor(estimate.scores)[real], torch.tensor(target.scores)[real]


def mse(estimates: Sequence[Explanation], targets: Sequence[Explanation]) -> float:
    """Mean over texts of the mean squared error over real tokens."""
    errors = []
    for estimate, target in zip(estimates, targets, strict=True):
        a, b = real_scores(estimate, target)
        errors.append(float(((a - b) ** 2).mean()) if len(a) else 0.0)
    return sum(errors) / len(errors)


def expensive_curve(
    classifier: Classifier,
    texts: Sequence[str],
    method: str,
    *,
    text_pairs: Sequence[str] | None = None,
    max_samples: int = 20,
    seed: int = 0,
    progress=None,
) -> tuple[Curve, list[Explanation]]:
    """The curve of ``method`` (``"ig"`` or ``"sv"``) on ``texts`` (with ``text_pairs``), and the targets
    (``max_samples``)."""
    progress = progress or (lambda iterable, **_: iterable)
    if method == "ig":
        runs = {
            s: get_explainer("ig", classifier, samples=s).explain(texts, text_pairs)
            for s in progress(range(1, max_samples + 1), desc="IG s = 1..20")
        }
        targets = runs[max_samples]
        per_sample = {s: (runs[s], mean_seconds(runs[s])) for s in range(1, max_samples)}
    elif method == "sv":
        singles = [
            get_explainer("sv", classifier, samples=1, seed=seed * 1000 + j).explain(texts, text_pairs)
            for j in progress(range(2 * max_samples - 1), desc="SV permutations")
        ]
        targets = average(singles[:max_samples])
        others = singles[max_samples:]
        per_sample = {
            s: (average(others[:s]), sum(mean_seconds(run) for run in others[:s])) for s in range(1, max_samples)
        }
    else:
        raise ValueError(f"no convergence curve for {method!r}: use 'ig' or 'sv'")
    curve = Curve(
        method=method,
        max_samples=max_samples,
        texts=len(texts),
        seed=seed,
        mse={s: mse(estimates, targets) for s, (estimates, _) in per_sample.items()},
        seconds={s: seconds for s, (_, seconds) in per_sample.items()},
        target_mean_square=mse([replace(t, scores=[0.0] * len(t.scores)) for t in targets], targets),
    )
    return curve, targets


def empirical_point(explainer: Explainer, targets: Sequence[Explanation]) -> tuple[float, float]:
    """MSE of an empirical explainer against the targets (on their texts and pairs), and its seconds per
    text (one text at a time)."""
    explanations = [explainer.explain(t.text, t.text_pair)[0] for t in targets]
    return mse(explanations, targets), mean_seconds(explanations)


def mean_seconds(explanations: Sequence[Explanation]) -> float:
    return sum(e.seconds for e in explanations) / len(explanations)


def average(runs: Sequence[Sequence[Explanation]]) -> list[Explanation]:
    """Per text, the first run's explanation with the token-wise mean of the scores of all runs."""
    return [
        replace(column[0], scores=torch.tensor([e.scores for e in column]).mean(0).tolist())
        for column in zip(*runs, strict=True)
    ]


def save_cache(path: Path, key: dict, curve: Curve, targets: Sequence[Explanation]) -> None:
    """Keep an expensive curve and its targets in a JSON file, with ``key``: what they were computed from
    (``benchmarks/convergence.py --cache``), so that explainers can be scored against them again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "curve": asdict(curve), "targets": [t.to_dict() for t in targets]}))


def load_cache(path: Path) -> tuple[dict, Curve, list[Explanation]]:
    """What :func:`save_cache` kept: ``(key, curve, targets)``."""
    cached = json.loads(path.read_text())
    return cached["key"], Curve.from_dict(cached["curve"]), [Explanation.from_dict(t) for t in cached["targets"]]


def load_curve(source: str | Path, revision: str | None = None) -> Curve | None:
    """The curve saved with an explainer (``convergence.json``) in its folder or Hub repo, or ``None``."""
    path = artefact_file(source, CURVE_FILE, revision)
    return Curve.from_json(path.read_text()) if path is not None else None


def plot(curve: Curve, title: str | None = None):
    """The paper's figure: MSE against ``s`` on a log scale, empirical explainers as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.6), layout="constrained")
    samples = sorted(curve.mse)
    axes.plot(
        samples, [curve.mse[s] for s in samples], "o-", color="black", label=f"{curve.method.upper()} with s samples"
    )
    for (name, point), style in zip(curve.empirical.items(), ["--", ":", "-.", (0, (5, 1))]):
        axes.axhline(point["mse"], linestyle=style, color="tab:red", label=f"{name} (s* = {point['crossover']})")
    axes.set_yscale("log")
    axes.set_xlabel("samples s")
    axes.set_ylabel(f"MSE against {curve.method.upper()} s = {curve.max_samples}")
    axes.set_xticks(samples)
    axes.set_title(title or f"{curve.method.upper()} convergence on {curve.texts} texts")
    axes.legend(fontsize="small")
    return figure


def agreement(estimate: Explanation, target: Explanation) -> dict[str, float]:
    """How close one explanation is to another of the same text: MSE and Spearman rank correlation
    over real tokens (``nan`` with fewer than two tokens or a constant explanation)."""
    a, b = real_scores(estimate, target)
    error = float(((a - b) ** 2).mean()) if len(a) else float("nan")
    ranks_a, ranks_b = a.argsort().argsort().float(), b.argsort().argsort().float()
    rho = float(torch.corrcoef(torch.stack([ranks_a, ranks_b]))[0, 1]) if len(a) > 1 else float("nan")
    return {"mse": error, "spearman": rho}
