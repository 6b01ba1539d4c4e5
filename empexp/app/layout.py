"""The app's page: Gradio components and the events that connect them to :class:`ExplanationService`.

Nothing is computed here. :class:`Handlers` turns the service's explanations into what components
show (through :mod:`empexp.app.views`) and its errors into messages on the page; :func:`build_app`
lays the page out and wires the events.
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import torch

from empexp.app.service import EXPENSIVE, ExplanationService, model_name
from empexp.app.views import (
    agreement_line,
    attention_legend,
    attention_series,
    cost,
    faithfulness_line,
    head_highlights,
    highlights,
    keep_heatmap,
    scale_of,
    shown,
    validation_table,
)
from empexp.classifier import Classifier, load_classifier
from empexp.convergence import load_curve, plot
from empexp.errors import EmpexpError, out_of_memory_reason
from empexp.explainers import display_name, explainer_class
from empexp.explainers.attention import AGGREGATIONS
from empexp.explanation import Explanation
from empexp.exports import attviz

EXAMPLES = [
    "A gorgeous, witty, seductive movie.",
    "The plot is nothing but boilerplate clichés from start to finish.",
    "Not bad at all, though the ending drags.",
    "This is not a film I would call good, funny or even watchable.",
    "It starts slowly, with a long stretch of exposition about the family's history and a cast that seems unsure "
    "of its accents, but somewhere in the second hour the film finds its rhythm: the performances loosen, the jokes "
    "land, and by the final scene, a quiet dinner that says more than any speech could, I was moved in a way I had "
    "not expected from such an uneven beginning.",
]
"""Positive, negative, negated with a positive word, negated throughout, long and mixed."""
PAIR_EXAMPLES = [
    ["The company said profits rose 5 percent this quarter.", "Quarterly profits grew by 5 percent, the company said."],
    ["The senator voted against the bill on Tuesday.", "The bill passed the senate on Tuesday with broad support."],
    ["He was born in 1950 in a small town in Ohio.", "Born in a small Ohio town in 1950, he later moved west."],
]
"""A paraphrase, a related non-paraphrase, a paraphrase reordered."""
LEGEND = (
    "Red words push towards the predicted label, purple ones against it; a word's score is the sum of its "
    "pieces'. Colours are scaled to the largest magnitude in each view; once IG and SV have run, each row "
    "(an expensive method and its empirical explainers) shares one scale."
)
EXPLAINERS_HELP = (
    "Empirical explainers answer at once (one model pass or none); Integrated Gradients and Shapley Value "
    "Sampling, which they imitate, take tens to hundreds of passes: run them with the button above, which "
    "says what they will cost first."
)
FAITHFULNESS_HELP = (
    "Under each view, once it has been scored: AOPC comprehensiveness (how much the predicted class's probability "
    "drops when the view's top 10%, 20%, ..., 100% tokens are replaced by the pad token; higher means the view "
    "found what the model relies on) and sufficiency (the drop when only those tokens are kept; lower is better)."
)
DIFFMASK_HELP = (
    "DiffMask: per layer, the probability that a probe keeps each token (input variant: which input tokens the "
    "model still needs, as seen from that layer; hidden variant: which tokens' states that layer needs). "
    "A word's keep probability is the mean of its pieces'."
)
ATTENTION_HELP = (
    "Self-attention (AttViz): how much each token attends to itself, per head; the view aggregates all heads "
    "of all layers, on its own scale from 0 (attention is never negative); the table shows every aggregation."
)
CURVE_HELP = (
    "MSE (log scale) of IG or SV with s samples against the same method with 20, on held-out dev "
    "data; the horizontal lines are the empirical explainers. s* is the number of samples the "
    "expensive method needs to come closer to its 20-sample result than the one-pass empirical explainer."
)
PAIR_HELP = "‖ marks where the second text starts, in every view (a thick rule in the tables)."
CSS = """
.empexp-heatmap { overflow-x: auto; }
.empexp-heatmap table { border-collapse: collapse; font-size: 12px; }
.empexp-heatmap caption { caption-side: top; text-align: left; padding-bottom: 4px; }
.empexp-heatmap th { font-weight: normal; padding: 2px 4px; }
.empexp-heatmap th.token { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
.empexp-heatmap th.row { text-align: right; white-space: nowrap; }
.empexp-heatmap td { min-width: 2.4em; text-align: center; border: 1px solid var(--block-background-fill); }
.empexp-heatmap .second { border-left: 3px solid var(--body-text-color); }
.empexp-heatmap .legend { display: flex; gap: 8px; align-items: center; font-size: 12px; margin-top: 6px; }
.empexp-heatmap .bar { display: inline-block; width: 160px; height: 10px; border-radius: 2px; }
"""
DOWNLOAD_LIFETIME = 3600
"""Seconds a download file is kept on the server."""
GRANULARITIES = ("words", "word pieces")

# System fonts only: a theme's default web fonts would be fetched from a CDN, which an offline app cannot reach.
THEME = gr.themes.Default(
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
)

Raw = list[dict] | None
"""Explanations in the shared JSON form, as the page keeps them between events."""


def loaded(raw: Raw) -> list[Explanation]:
    return [Explanation.from_dict(d) for d in raw or []]


class Handlers:
    """What the page's events call: the service's answers as component values, its errors as messages.

    ``text_pair`` is the last parameter of every endpoint (empty: a single text), so calls written
    before pairs existed keep working; ``pieces`` comes from the page's words / word pieces switch.
    """

    def __init__(self, service: ExplanationService):
        self.service = service

    @staticmethod
    def _pair(text_pair: str | None) -> str | None:
        return text_pair if text_pair else None

    def predict(self, text: str, text_pair: str = "") -> dict[str, float]:
        """Class probabilities of the classifier for ``text`` (with ``text_pair``, for pair classifiers)."""
        with messages():
            return self.service.predict(text, self._pair(text_pair))

    def explain_empirical(self, text: str, text_pair: str = "", pieces: bool = False):
        """Prediction plus the empirical explainers' views for ``text`` (one pass each)."""
        with messages():
            probabilities, truncated, results = self.service.explain_empirical(text, self._pair(text_pair))
        views = [part for e in results for part in (highlights(e, pieces=pieces), cost(e))]
        notice = truncation_notice(self.service.classifier, truncated)
        return probabilities, notice, *views, [e.to_dict() for e in results]

    def explain(
        self,
        text: str,
        ig_samples: int = 20,
        sv_samples: int = 20,
        seed: int = 0,
        text_pair: str = "",
        pieces: bool = False,
        request: gr.Request = None,
        progress=gr.Progress(),  # noqa: B008 (how Gradio injects it)
    ):
        """Prediction plus Integrated Gradients and Shapley Value Sampling views for ``text``."""
        with messages():
            ig, sv = self.service.explain_expensive(
                text,
                self._pair(text_pair),
                int(ig_samples),
                int(sv_samples),
                int(seed),
                session=session_of(request),
                progress=lambda fraction, what: progress(fraction, desc=what),
            )
        notice = truncation_notice(self.service.classifier, ig.truncated)
        views = (highlights(ig, pieces=pieces), cost(ig), highlights(sv, pieces=pieces), cost(sv))
        return ig.probabilities, *views, notice, [ig.to_dict(), sv.to_dict()]

    def expensive_cost(self, text: str, text_pair: str, ig_samples: int, sv_samples: int) -> str:
        """What "Run IG and SV" will cost on this text, said before it runs ("" before there is a text)."""
        if not text.strip():
            return ""
        try:
            estimate = self.service.expensive_cost(text, self._pair(text_pair), int(ig_samples), int(sv_samples))
        except EmpexpError:
            return ""  # the explain events say what is wrong with the text
        return f"IG ({int(ig_samples)} steps) and SV ({int(sv_samples)} permutations) on this text: {estimate.line()}."

    def stop(self, request: gr.Request = None) -> None:
        self.service.stop(session_of(request))

    def explain_internals(
        self, text: str, variant: str = "input", aggregation: str = "mean", text_pair: str = "", pieces: bool = False
    ):
        """What the model keeps and attends to for ``text``: DiffMask keep probabilities per layer (the
        ``variant``'s probes, when loaded) and each head's self-attention, aggregated by ``aggregation``."""
        with messages():
            attended, *masked = self.service.explain_internals(text, self._pair(text_pair), variant, aggregation)
        masked = masked[0] if masked else None
        table = validation_table(masked) if masked else f"No diffmask-{variant} probes are loaded for this classifier."
        return (
            attended.probabilities,
            keep_heatmap(masked, pieces=pieces) if masked else None,
            table,
            highlights(attended, pieces=pieces),
            attention_series(attended, pieces=pieces),
            [attended.to_dict()] + ([masked.to_dict()] if masked else []),
        )

    def explain_fast(
        self,
        text: str,
        variant: str = "input",
        aggregation: str = "mean",
        faithfulness: bool = False,
        text_pair: str = "",
    ) -> dict:
        """Everything that takes one model pass, in one call: the prediction and the explanations of the
        empirical explainers, the ``variant``'s DiffMask probes and self-attention (by ``aggregation``), in
        the shared JSON form; with ``faithfulness``, each explanation's AOPC scores too (more passes)."""
        with messages():
            return self.service.explain_fast(text, self._pair(text_pair), variant, aggregation, faithfulness)

    def score(self, raw: Raw, slots: int) -> list[str]:
        """A faithfulness line for each of the first ``slots`` explanations in ``raw`` ("" for missing ones)."""
        lines = [faithfulness_line(scores) for scores in self.service.faithfulness(loaded(raw))]
        return (lines + [""] * slots)[:slots]

    def attributions(self, empirical_raw: Raw, expensive_raw: Raw, pieces: bool) -> list:
        """Every attribution view redrawn: each expensive view with its empirical counterparts on one colour
        scale when both are of this text, with their agreement lines; words or ``pieces``."""
        empirical = loaded(empirical_raw)
        expensive = {e.method: e for e in loaded(expensive_raw)}
        inputs = {(e.text, e.text_pair) for e in [*empirical, *expensive.values()]}
        compared = bool(empirical and expensive) and len(inputs) == 1  # else each view stands alone
        imitating = self.service.imitating

        def scale(method: str) -> float | None:
            if not compared:
                return None
            alike = [expensive[method], *(e for e in empirical if imitating[e.method] == method)]
            return scale_of(*(shown(e, pieces) for e in alike))

        views = [highlights(e, scale(imitating[e.method]), pieces=pieces) for e in empirical]
        lines = [agreement_line(e, expensive[imitating[e.method]]) if compared else "" for e in empirical]
        views += [highlights(expensive[m], scale(m), pieces=pieces) if m in expensive else None for m in EXPENSIVE]
        return [*views, *lines]

    def internals(self, raw: Raw, layer: int, head: int, pieces: bool) -> list:
        """The internals' views redrawn from their last result (no model pass): words or ``pieces``."""
        explanations = loaded(raw)
        if not explanations:
            return [gr.skip()] * 5
        attended, masked = explanations[0], explanations[1] if len(explanations) > 1 else None
        return [
            keep_heatmap(masked, pieces=pieces) if masked else None,
            highlights(attended, pieces=pieces),
            attention_legend(attended, pieces=pieces),
            attention_series(attended, pieces=pieces),
            head_highlights(attended, layer, head, pieces=pieces),
        ]

    def head(self, raw: Raw, layer: int, head: int, pieces: bool):
        """One head's self-attention from the last ``explain_internals`` result (no model pass)."""
        if not raw:
            return gr.skip()
        return head_highlights(loaded(raw)[0], layer, head, pieces=pieces)

    @staticmethod
    def save(text: str, *raws: Raw) -> tuple[str | None, str | None]:
        """Files of every explanation shown for ``text``: the shared JSON form (token level), and the
        attention in AttViz's."""
        current = [d for raw in raws for d in raw or [] if d["text"] == text]  # already in the shared JSON form
        if not current:
            return None, None
        folder = download_folder()
        path = folder / "explanations.json"
        path.write_text(json.dumps(current, ensure_ascii=False, indent=1), "utf-8")
        attended = [Explanation.from_dict(d) for d in current if d["head_scores"] is not None]
        if not attended:
            return str(path), None
        attviz_path = folder / "attention-attviz.json"
        attviz_path.write_text(json.dumps(attviz(attended), ensure_ascii=False), "utf-8")
        return str(path), str(attviz_path)


@contextmanager
def messages() -> Iterator[None]:
    """Turns the library's errors, and a device out of memory, into a message on the page (``gr.Error``);
    the server keeps serving."""
    try:
        yield
    except EmpexpError as error:
        raise gr.Error(str(error)) from error
    except torch.OutOfMemoryError as error:
        reason = out_of_memory_reason(error)
        raise gr.Error(f"Out of device memory ({reason}): a shorter text or fewer samples need less.") from error


def session_of(request: gr.Request | None) -> str:
    """The browser session a request comes from ("" for calls without one)."""
    return getattr(request, "session_hash", None) or ""


@dataclass
class Page:
    """The page's components, by what they show; filled in as the page is laid out."""

    text: gr.Textbox
    text_pair: gr.Textbox
    explain: gr.Button
    expensive: gr.Button
    stop: gr.Button
    expensive_cost: gr.Markdown
    probabilities: gr.Label
    notice: gr.Markdown
    pieces: gr.State
    controls: dict = field(default_factory=dict)
    empirical_views: list = field(default_factory=list)
    empirical_costs: list = field(default_factory=list)
    agreements: list = field(default_factory=list)
    empirical_faithfulness: list = field(default_factory=list)
    expensive_columns: list = field(default_factory=list)
    expensive_views: dict = field(default_factory=dict)
    internals: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    downloads: list = field(default_factory=list)


def build_app(classifier: Classifier | None = None, empirical: dict[str, str] | None = None) -> gr.Blocks:
    """The app's Blocks for ``classifier`` (loaded once, here; the embedded default when ``None``).

    ``empirical`` maps empirical explainer ids to Hub ids or folders (default: the embedded ones, for
    an embedded classifier; DiffMask probes too, under ``diffmask-input`` / ``diffmask-hidden``).
    Named endpoints, each with an optional last ``text_pair`` (a pair's second text): ``predict(text)``,
    ``explain_empirical(text)`` and ``explain_internals(text, variant="input", aggregation="mean")``
    (one pass each, shown at once), ``explain_fast(text, variant="input", aggregation="mean",
    faithfulness=False)`` (all of those in one call, as explanations in the shared JSON form) and
    ``explain(text, ig_samples=20, sv_samples=20, seed=0)`` (the expensive methods, behind a button that
    says their cost first, in a queue of their own so they never hold up the rest, with a Stop button).
    """
    service = ExplanationService(classifier or load_classifier(), empirical)
    handlers = Handlers(service)
    with gr.Blocks(
        title="empexp: explanations for text classifiers",
        analytics_enabled=False,
        delete_cache=(DOWNLOAD_LIFETIME, DOWNLOAD_LIFETIME),
    ) as app:
        page = input_panel(service)
        with gr.Tabs():
            with gr.Tab("Attributions"):
                attribution_rows(service, page)
                controls(page)
            with gr.Tab("Inside the model"):
                internals_panel(service, page)
            curves_panel(service)
            with gr.Tab("Downloads"):
                downloads_panel(page)
        examples = PAIR_EXAMPLES if service.takes_pairs else EXAMPLES
        gr.Examples(examples, inputs=[page.text, page.text_pair] if service.takes_pairs else page.text,
                    label="Examples")  # fmt: skip
        wire_cheap(handlers, page)
        wire_expensive(handlers, page)
        wire_switches(handlers, page)
        gr.api(handlers.predict, api_name="predict", concurrency_id="cheap")
        gr.api(handlers.explain_fast, api_name="explain_fast", concurrency_id="cheap")
    return app


def input_panel(service: ExplanationService) -> Page:
    """The header, the text box(es), the buttons and the prediction: what answers the first question."""
    pairs = service.takes_pairs
    gr.Markdown(
        f"## empexp\nWhat the classifier predicts, and which words drove it. Model: {model_name(service.classifier)}"
        + (f" It takes text pairs: {PAIR_HELP}" if pairs else "")
    )
    for problem in service.problems:
        gr.Markdown(f"⚠️ Not loaded: {html.escape(problem)}")
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label="Text", lines=2, placeholder="Type a sentence…", max_length=50_000)
            # A single-text classifier has no second box; one whose config does not say gets an optional one.
            text_pair = gr.Textbox(
                label="Second text" if pairs else "Second text (optional, for pair classifiers)",
                value="",  # a default: API calls without a second text keep working
                lines=2,
                max_length=50_000,
                visible=pairs is not False,
            )
            with gr.Row():
                explain = gr.Button("Explain", variant="primary", min_width=100)
                expensive = gr.Button("Run IG and SV too (slower)", min_width=100)
                stop = gr.Button("Stop IG and SV", variant="stop", visible=False, min_width=100)
            expensive_cost = gr.Markdown(elem_id="expensive-cost")
        with gr.Column(scale=2):
            probabilities = gr.Label(label="Prediction (class probabilities)", elem_id="prediction", num_top_classes=3)
    notice = gr.Markdown()
    return Page(text, text_pair, explain, expensive, stop, expensive_cost, probabilities, notice, gr.State(False))


def controls(page: Page) -> None:
    """How the views show scores (words or word pieces) and the settings of IG and SV."""
    with gr.Row():
        page.controls["granularity"] = gr.Radio(
            list(GRANULARITIES), value="words", label="Show scores per (every view)", elem_id="granularity"
        )
        with gr.Accordion("Settings of IG and SV", open=False):
            page.controls["ig_samples"] = gr.Slider(1, 100, value=20, step=1, label="Integrated Gradients steps")
            page.controls["sv_samples"] = gr.Slider(1, 100, value=20, step=1, label="Shapley permutations")
            page.controls["seed"] = gr.Number(0, precision=0, label="Shapley seed")


def attribution_rows(service: ExplanationService, page: Page) -> None:
    """One row per expensive method: its empirical explainers, then the method itself (absent until run)."""
    for method in EXPENSIVE:
        with gr.Row(equal_height=False):
            for name in (n for n, m in service.imitating.items() if m == method):
                with gr.Column(min_width=240):
                    page.empirical_views.append(
                        gr.HighlightedText(label=display_name(name), show_legend=True, elem_id=f"view-{name}")
                    )
                    gr.Markdown(explainer_class(name).description)
                    page.empirical_costs.append(gr.Markdown())
                    page.agreements.append(gr.Markdown())
                    page.empirical_faithfulness.append(gr.Markdown(elem_id=f"faithfulness-{name}"))
            with gr.Column(min_width=240, visible=False) as column:
                page.expensive_columns.append(column)
                page.expensive_views[method] = gr.HighlightedText(
                    label=display_name(method), show_legend=True, elem_id=f"view-{method}"
                )
                gr.Markdown(explainer_class(method).description)
                page.expensive_views[f"{method}-cost"] = gr.Markdown()
                page.expensive_views[f"{method}-faithfulness"] = gr.Markdown(elem_id=f"faithfulness-{method}")
    gr.Markdown(f"{LEGEND}\n\n{EXPLAINERS_HELP}\n\n{FAITHFULNESS_HELP}")


def internals_panel(service: ExplanationService, page: Page) -> None:
    """DiffMask keep probabilities and self-attention, from one pass."""
    config = service.classifier.model.config
    views = page.internals
    with gr.Row():
        views["variant"] = gr.Radio(["input", "hidden"], value="input", label="DiffMask variant")
        views["aggregation"] = gr.Dropdown(list(AGGREGATIONS), value="mean", label="Aggregation across heads")
        views["probabilities"] = gr.Label(label="Prediction (class probabilities)", elem_id="prediction-internals")
    gr.Markdown(DIFFMASK_HELP)
    views["keep"] = gr.HTML(label="DiffMask keep probabilities (tokens x layers)", elem_id="view-diffmask")
    views["diffmask-faithfulness"] = gr.Markdown(elem_id="faithfulness-diffmask")
    with gr.Accordion("What the probes reached per layer", open=False):
        views["table"] = gr.Markdown()
    gr.Markdown(ATTENTION_HELP)
    # No legend of its own: HighlightedText's is the attributions' -1..+1; the line below gives the scale.
    views["attention"] = gr.HighlightedText(
        label=display_name("attention"), show_legend=False, elem_id="view-attention"
    )
    views["attention-legend"] = gr.Markdown(elem_id="attention-legend")
    views["attention-faithfulness"] = gr.Markdown(elem_id="faithfulness-attention")
    views["series"] = gr.HTML(label="Self-attention aggregations over tokens", elem_id="view-aggregations")
    with gr.Row():
        views["layer"] = gr.Slider(1, config.num_hidden_layers, value=1, step=1, label="Layer")
        views["head"] = gr.Slider(1, config.num_attention_heads, value=1, step=1, label="Head")
    views["head-view"] = gr.HighlightedText(label="One head's self-attention", show_legend=False, elem_id="view-head")


def curves_panel(service: ExplanationService) -> None:
    """The convergence curves recorded with the empirical explainers, in a tab drawn when opened."""
    curves = {}
    for name, method in service.imitating.items():
        explainer = service.empirical[name]
        curves.setdefault(method, load_curve(explainer.source, explainer.revision))
    curves = {m: c for m, c in curves.items() if c is not None}
    if not curves:
        return
    with gr.Tab("Convergence") as tab:
        gr.Markdown(CURVE_HELP)
        with gr.Row():
            plots = [gr.Plot(label=f"{method.upper()} convergence") for method in curves]
    # Drawn when opened: matplotlib would otherwise add a second to every start-up.
    tab.select(lambda: [plot(c) for c in curves.values()], outputs=plots, api_visibility="private")


def downloads_panel(page: Page) -> None:
    """Download buttons and every explanation shown, as JSON."""
    with gr.Row():
        page.downloads.append(gr.DownloadButton("Download the explanations (JSON)", value=None, size="sm"))
        page.downloads.append(gr.DownloadButton("Download the attention (AttViz JSON)", value=None, size="sm"))
    page.raw["empirical"] = gr.JSON(label="Empirical explanations")
    page.raw["expensive"] = gr.JSON(label="IG and SV explanations")
    page.raw["internals"] = gr.JSON(label="Attention and DiffMask explanations")


def redraw_attributions(handlers: Handlers, page: Page) -> dict:
    """The event that redraws every attribution view from the last results (no model pass)."""
    return {"fn": handlers.attributions, "inputs": [page.raw["empirical"], page.raw["expensive"], page.pieces],
            "outputs": [*page.empirical_views, page.expensive_views["ig"], page.expensive_views["sv"],
                        *page.agreements], "api_visibility": "private"}  # fmt: skip


def redraw_internals(handlers: Handlers, page: Page) -> dict:
    """The event that redraws the internals' views from their last result (no model pass)."""
    views = page.internals
    return {"fn": handlers.internals, "inputs": [page.raw["internals"], views["layer"], views["head"], page.pieces],
            "outputs": [views["keep"], views["attention"], views["attention-legend"], views["series"],
                        views["head-view"]], "api_visibility": "private"}  # fmt: skip


def scoring(handlers: Handlers, raw: gr.JSON, outputs: list, queue: str) -> dict:
    """The event that writes the faithfulness of the explanations in ``raw`` under their views."""
    return {"fn": lambda r: handlers.score(r, len(outputs)), "inputs": raw, "outputs": outputs,
            "api_visibility": "private", "concurrency_id": queue}  # fmt: skip


def downloads(page: Page) -> dict:
    return {"fn": Handlers.save, "inputs": [page.text, *page.raw.values()], "outputs": page.downloads,
            "api_visibility": "private"}  # fmt: skip


def wire_cheap(handlers: Handlers, page: Page) -> None:
    """Explain: the empirical views and the internals, each one pass, then (separately, so the views never
    wait for them) their faithfulness, IG and SV's cost, and the downloads. The cheap views share one queue."""
    views = page.internals
    cards = [part for pair in zip(page.empirical_views, page.empirical_costs) for part in pair]
    empirical = gr.on(
        [page.explain.click, page.text.submit, page.text_pair.submit],
        handlers.explain_empirical,
        inputs=[page.text, page.text_pair, page.pieces],
        outputs=[page.probabilities, page.notice, *cards, page.raw["empirical"]],
        api_name="explain_empirical",
        concurrency_id="cheap",
    )
    empirical.success(
        handlers.expensive_cost,
        inputs=[page.text, page.text_pair, page.controls["ig_samples"], page.controls["sv_samples"]],
        outputs=page.expensive_cost,
        api_visibility="private",
        concurrency_id="cheap",
    ).success(**scoring(handlers, page.raw["empirical"], page.empirical_faithfulness, "cheap")).success(
        **downloads(page)
    )
    internal = gr.on(
        [page.explain.click, page.text.submit, page.text_pair.submit, views["variant"].change,
         views["aggregation"].change],
        handlers.explain_internals,
        inputs=[page.text, views["variant"], views["aggregation"], page.text_pair, page.pieces],
        outputs=[views["probabilities"], views["keep"], views["table"], views["attention"], views["series"],
                 page.raw["internals"]],
        api_name="explain_internals",
        concurrency_id="cheap",
    )  # fmt: skip
    internal.success(**redraw_internals(handlers, page))
    faithfulness = [views["attention-faithfulness"], views["diffmask-faithfulness"]]
    internal.success(**scoring(handlers, page.raw["internals"], faithfulness, "cheap")).success(**downloads(page))


def wire_expensive(handlers: Handlers, page: Page) -> None:
    """Run IG and SV: say the cost and show their (absent until now) views and the Stop button, run them in
    their own queue with a progress bar, then compare, score and offer the downloads."""
    expensive, settings = page.expensive_views, page.controls
    cost_inputs = [page.text, page.text_pair, settings["ig_samples"], settings["sv_samples"]]
    gr.on(
        [settings["ig_samples"].release, settings["sv_samples"].release],
        handlers.expensive_cost,
        inputs=cost_inputs,
        outputs=page.expensive_cost,
        api_visibility="private",
        concurrency_id="cheap",
    )
    start = page.expensive.click(
        lambda *a: [handlers.expensive_cost(*a), gr.Button(visible=True)] + [gr.Column(visible=True)] * 2,
        inputs=cost_inputs,
        outputs=[page.expensive_cost, page.stop, *page.expensive_columns],
        api_visibility="private",
        concurrency_id="cheap",
    )
    outputs = [page.probabilities, expensive["ig"], expensive["ig-cost"], expensive["sv"], expensive["sv-cost"],
               page.notice, page.raw["expensive"]]  # fmt: skip
    run = start.then(
        handlers.explain,
        inputs=[page.text, *cost_inputs[2:], settings["seed"], page.text_pair, page.pieces],
        outputs=outputs,
        api_name="explain",
        concurrency_limit=1,
        concurrency_id="expensive",
    )
    run.then(lambda: gr.Button(visible=False), outputs=page.stop, api_visibility="private")
    faithfulness = [expensive["ig-faithfulness"], expensive["sv-faithfulness"]]
    run.success(**redraw_attributions(handlers, page)).success(
        **scoring(handlers, page.raw["expensive"], faithfulness, "expensive")
    ).success(**downloads(page))
    page.stop.click(handlers.stop, cancels=[run], api_visibility="private").then(
        lambda: gr.Button(visible=False), outputs=page.stop, api_visibility="private"
    )


def wire_switches(handlers: Handlers, page: Page) -> None:
    """The words / word pieces switch and the head picker redraw from the last results: no model pass."""
    views = page.internals
    granularity = page.controls["granularity"]
    switched = granularity.change(
        lambda choice: choice == "word pieces", inputs=granularity, outputs=page.pieces, api_visibility="private"
    )
    switched.then(**redraw_attributions(handlers, page))
    switched.then(**redraw_internals(handlers, page))
    gr.on(
        [views["layer"].change, views["head"].change],
        handlers.head,
        inputs=[page.raw["internals"], views["layer"], views["head"], page.pieces],
        outputs=views["head-view"],
        api_visibility="private",
    )


def truncation_notice(classifier: Classifier, truncated: bool) -> str:
    if not truncated:
        return ""
    return (
        f"⚠️ The text is longer than the model's limit of {classifier.max_length} tokens: "
        "only its beginning was classified and explained."
    )


def download_folder() -> Path:
    """A fresh folder for one request's download files; folders older than an hour go (Gradio keeps its own copy)."""
    root = Path(tempfile.gettempdir()) / "empexp-downloads"
    root.mkdir(exist_ok=True)
    for old in root.iterdir():
        if time.time() - old.stat().st_mtime > DOWNLOAD_LIFETIME:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root))


def launch(app: gr.Blocks, **kwargs) -> None:
    """Launch with a request queue (two cheap requests at a time, IG and SV one at a time beside them), the
    offline theme and the page's styles."""
    app.queue(default_concurrency_limit=2).launch(theme=THEME, css=CSS, **kwargs)
