"""What the app computes, without Gradio: explanations, their cost, comparisons and faithfulness.

:class:`ExplanationService` holds the classifier and its explainers, loaded once, and answers every
request with :class:`~empexp.explanation.Explanation` values; :mod:`empexp.app.layout` only wires it to
Gradio components. Requests may come from several threads at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from empexp.classifier import Classifier, EncodedText
from empexp.errors import EmpexpError, InputError
from empexp.explainers import Explainer, explain_together, explainer_class, get_explainer, list_explainers
from empexp.explainers.attention import AGGREGATIONS
from empexp.explanation import Explanation
from empexp.faithfulness import aopc

DIFFMASK = ("diffmask-input", "diffmask-hidden")
EXPENSIVE = ("ig", "sv")


class Stopped(EmpexpError):
    """An expensive run stopped on the user's request."""


def imitated() -> dict[str, str]:
    """The registered empirical explainers, each with the expensive method it imitates (read when the app
    is built, so an explainer registered before then gets its views)."""
    classes = [explainer_class(name) for name in list_explainers()]
    return {cls.name: cls.imitates for cls in classes if cls.kind == "empirical"}


def model_name(classifier: Classifier) -> str:
    """How the page names the model: its Hub id or folder, or what the embedded classifier is."""
    if classifier.is_default:
        return "the embedded default, all-MiniLM-L6-v2 with a LoRA adapter for SST-2 sentiment."
    if classifier.embedded_name == "embedded:mrpc":
        return "the embedded paraphrase classifier, all-MiniLM-L6-v2 with a LoRA adapter for MRPC pairs."
    return f"`{classifier.name_or_path}`."


def load_empirical_explainers(
    classifier: Classifier, sources: dict[str, str] | None = None
) -> tuple[dict[str, Explainer], list[str]]:
    """Empirical explainers and DiffMask probes for the app, by registry id, and a message for each that
    failed to load.

    ``sources`` maps ids (``empirical-ig``, ``diffmask-input``, ...) to Hub ids or folders; without it
    an embedded classifier gets its embedded ones and any other classifier none.
    """
    known = (*imitated(), *DIFFMASK)
    if sources is None:
        folder = classifier.embedded_artefacts
        sources = {} if folder is None else {n: str(folder / n) for n in known if (folder / n).is_dir()}
    explainers = {}
    problems = [f"{n}: no such explainer in the app (use {', '.join(known)})" for n in sources if n not in known]
    for name in known:
        if name in sources:
            try:
                explainers[name] = get_explainer(name, classifier, source=sources[name])
            except EmpexpError as error:
                problems.append(f"{name}: {error}")
    return explainers, problems


@dataclass(frozen=True)
class Cost:
    """What running IG and SV on one text will cost, said before it starts."""

    passes: int
    seconds: float

    def line(self) -> str:
        return f"about {self.passes:,} model passes, roughly {max(1, round(self.seconds)):,} s on this machine"


class ExplanationService:
    """The classifier's explanations for the app, loaded once.

    Args:
        classifier: what is explained; the cheap views share its prediction pass (it must read
            attention weights: eager attention, :func:`~empexp.classifier.load_classifier`'s default).
        sources: empirical explainer and DiffMask probe ids -> Hub ids or folders
            (:func:`load_empirical_explainers`).

    Attributes:
        empirical: the loaded empirical explainers by id; ``imitating`` maps each to its expensive method.
        probes: the loaded DiffMask probes by id.
        problems: a message per explainer that failed to load.
    """

    def __init__(self, classifier: Classifier, sources: dict[str, str] | None = None):
        self.classifier = classifier
        loaded, self.problems = load_empirical_explainers(classifier, sources)
        self.imitating = {name: method for name, method in imitated().items() if name in loaded}
        self.empirical = {name: e for name, e in loaded.items() if name in self.imitating}
        self.probes = {name: e for name, e in loaded.items() if name in DIFFMASK}
        self.attention = {how: get_explainer("attention", classifier, aggregation=how) for how in AGGREGATIONS}
        # IG hooks into the model it attributes: it gets its own copy, with the faster fused attention, so
        # the cheap views, served at the same time, never pass through its hooks. One expensive run at a time.
        self._expensive = classifier.replica(attn_implementation="sdpa")
        self._expensive_lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}

    @property
    def takes_pairs(self) -> bool | None:
        """``True`` for a pair classifier, ``False`` for a single-text one, ``None`` when its config does not say."""
        return {"pair": True, "text": False}.get(self.classifier.inputs)

    def predict(self, text: str, text_pair: str | None = None) -> dict[str, float]:
        """Class probabilities for ``text`` (with ``text_pair``)."""
        return self.classifier.predict([text], pair_list(text_pair))[0].probabilities

    def explain_empirical(
        self, text: str, text_pair: str | None = None
    ) -> tuple[dict[str, float], bool, list[Explanation]]:
        """The prediction's probabilities, whether the input was truncated, and each empirical explainer's
        explanation, from one shared prediction pass."""
        if not self.empirical:
            prediction = self.classifier.predict([text], pair_list(text_pair))[0]
            return prediction.probabilities, prediction.truncated, []
        results = explain_together(list(self.empirical.values()), text, text_pair)
        return results[0].probabilities, results[0].truncated, results

    def explain_internals(
        self, text: str, text_pair: str | None, variant: str, aggregation: str, others: tuple[Explainer, ...] = ()
    ) -> list[Explanation]:
        """Self-attention (by ``aggregation``), the ``variant``'s DiffMask probes when loaded, and ``others``,
        from one shared prediction pass.

        Raises:
            InputError: an unknown aggregation.
        """
        if aggregation not in self.attention:
            raise InputError(f"unknown aggregation {aggregation!r}: use one of {', '.join(AGGREGATIONS)}")
        probes = [self.probes[f"diffmask-{variant}"]] if f"diffmask-{variant}" in self.probes else []
        return explain_together([self.attention[aggregation], *probes, *others], text, text_pair)

    def explain_fast(
        self, text: str, text_pair: str | None, variant: str, aggregation: str, faithfulness: bool
    ) -> dict:
        """Everything that takes one model pass, in the shared JSON form (and, with ``faithfulness``, AOPC)."""
        results = self.explain_internals(text, text_pair, variant, aggregation, tuple(self.empirical.values()))
        answer = {"probabilities": results[0].probabilities, "explanations": [e.to_dict() for e in results]}
        if faithfulness:
            answer["faithfulness"] = aopc(self.classifier, results)
        return answer

    def expensive_cost(self, text: str, text_pair: str | None, ig_samples: int, sv_samples: int) -> Cost:
        """What IG with ``ig_samples`` steps and SV with ``sv_samples`` permutations will cost on this input:
        passes as the explainers count them, time from one measured pass of 8 rows here and now (a
        gradient pass counted as 3 forward ones; on the cheap views' model, so a running IG or SV sees
        no foreign pass)."""
        encoded = self.classifier.encode([text], pair_list(text_pair))
        ig_passes, sv_passes = expensive_passes(encoded[0], ig_samples, sv_samples)
        batch = self.classifier.collate(encoded * 8)
        start = time.perf_counter()
        self.classifier.logits(batch)
        per_row = (time.perf_counter() - start) / 8
        return Cost(ig_passes + sv_passes, per_row * (3 * ig_passes + sv_passes))

    def explain_expensive(
        self,
        text: str,
        text_pair: str | None,
        ig_samples: int,
        sv_samples: int,
        seed: int,
        *,
        session: str = "",
        progress: Callable[[float, str], None] = lambda fraction, what: None,
    ) -> list[Explanation]:
        """IG and SV explanations, one run at a time; ``progress(fraction, what)`` is told after every
        model pass, and :meth:`stop` with the same ``session`` ends the run at its next pass.

        Raises:
            Stopped: the run was stopped.
        """
        total = sum(expensive_passes(self.classifier.encode([text], pair_list(text_pair))[0], ig_samples, sv_samples))
        stop = self._stops[session] = threading.Event()  # the session's newest run is the one Stop ends
        runs = {
            "ig": ("Integrated Gradients", {"samples": ig_samples}),
            "sv": ("Shapley Value Sampling", {"samples": sv_samples, "seed": seed}),
        }
        try:
            with self._expensive_lock, self._watched(stop, total, progress) as watch:
                results = []
                for method, (what, options) in runs.items():
                    watch["what"] = what
                    results += get_explainer(method, self._expensive, **options).explain(text, text_pair)
        finally:
            if self._stops.get(session) is stop:  # forget ended runs: one event per session at most
                del self._stops[session]
        return results

    def stop(self, session: str = "") -> None:
        """Stop ``session``'s expensive run at its next model pass (nothing if none runs)."""
        if session in self._stops:
            self._stops[session].set()

    @contextmanager
    def _watched(
        self, stop: threading.Event, total: int, progress: Callable[[float, str], None]
    ) -> Iterator[dict[str, Any]]:
        """Counts the expensive model's passes for ``progress`` and raises :class:`Stopped` once ``stop`` is
        set; yields a dict whose ``"what"`` names the running method."""
        watch = {"what": "", "done": 0}

        def before_pass(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            if stop.is_set():
                raise Stopped("stopped: IG and SV were cancelled")
            rows = next(v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)).shape[0]
            watch["done"] += rows
            progress(min(1.0, watch["done"] / total), watch["what"])

        handle = self._expensive.model.register_forward_pre_hook(before_pass, with_kwargs=True)
        try:
            yield watch
        finally:
            handle.remove()

    def faithfulness(self, explanations: list[Explanation]) -> list[dict[str, float]]:
        """AOPC comprehensiveness and sufficiency of each explanation (more model passes)."""
        return aopc(self.classifier, explanations) if explanations else []


def expensive_passes(encoded: EncodedText, ig_samples: int, sv_samples: int) -> tuple[int, int]:
    """The model passes IG and SV will report for ``encoded``: the prediction, IG's input and baseline
    embeddings and its steps; the prediction, SV's first evaluation, and per permutation one pass per
    token plus the special tokens' group."""
    tokens = sum(not special for special in encoded.special)
    return ig_samples + 3, 2 + sv_samples * (tokens + 1)


def pair_list(text_pair: str | None) -> list[str] | None:
    """The one-element pair list the classifier takes, or ``None`` without a second text."""
    return None if text_pair is None else [text_pair]
