"""The Gradio app: a sentence in, the prediction and IG / SV token heatmaps side by side out.

``app.py`` at the top level (what a Space runs) only calls :func:`build_app` and launches it.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

# Read when gradio is imported: no analytics calls from a local, offline app.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from empexp.app.views import (
    agreement_line,
    attention_series,
    cost,
    faithfulness_line,
    head_highlights,
    highlights,
    keep_heatmap,
    scale_of,
    validation_table,
)
from empexp.classifier import Classifier, load_classifier
from empexp.convergence import load_curve, plot
from empexp.errors import EmpexpError
from empexp.explainers import (
    Explainer,
    display_name,
    explain_together,
    explainer_class,
    get_explainer,
    list_explainers,
)
from empexp.explainers.attention import AGGREGATIONS
from empexp.explanation import Explanation
from empexp.exports import attviz
from empexp.faithfulness import aopc

DIFFMASK = ("diffmask-input", "diffmask-hidden")

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
LEGEND = (
    "Red tokens push towards the predicted label, purple ones against it; colour strength is each "
    "score divided by the largest magnitude in that explanation (once IG and SV have run, by the largest "
    "in the expensive explanation and its empirical counterparts together, so each pair shares one scale)."
)
DIFFMASK_HELP = (
    "DiffMask: per layer, the probability that a probe keeps each token (input variant: which input tokens the "
    "model still needs, as seen from that layer; hidden variant: which tokens' states that layer needs)."
)
ATTENTION_HELP = (
    "Self-attention (AttViz): how much each token attends to itself, per head; the heatmap aggregates all heads "
    "of all layers, the plot shows every aggregation over the tokens."
)
FAITHFULNESS_HELP = (
    "Under each view, once it has been scored: AOPC comprehensiveness (how much the predicted class's probability "
    "drops when the view's top 10%, 20%, ..., 100% tokens are replaced by the pad token; higher means the view "
    "found what the model relies on) and sufficiency (the drop when only those tokens are kept; lower is better)."
)
CSS = """
.empexp-heatmap { overflow-x: auto; }
.empexp-heatmap table { border-collapse: collapse; font-size: 12px; }
.empexp-heatmap caption { caption-side: top; text-align: left; padding-bottom: 4px; }
.empexp-heatmap th { font-weight: normal; padding: 2px 4px; }
.empexp-heatmap th.token { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
.empexp-heatmap th.row { text-align: right; white-space: nowrap; }
.empexp-heatmap td { min-width: 2.4em; text-align: center; border: 1px solid var(--block-background-fill); }
.empexp-heatmap .legend { display: flex; gap: 8px; align-items: center; font-size: 12px; margin-top: 6px; }
.empexp-heatmap .bar { display: inline-block; width: 160px; height: 10px; border-radius: 2px; }
"""
DOWNLOAD_LIFETIME = 3600
"""Seconds a download file is kept on the server."""
CURVE_HELP = (
    "MSE (log scale) of IG or SV with s samples against the same method with 20, on held-out SST-2 dev "
    "sentences; the horizontal lines are the empirical explainers. s* is the number of samples the "
    "expensive method needs to come closer to its 20-sample result than the one-pass empirical explainer."
)

# System fonts only: a theme's default web fonts would be fetched from a CDN, which an offline app cannot reach.
THEME = gr.themes.Default(
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
)


def imitated() -> dict[str, str]:
    """The registered empirical explainers, each with the expensive method it imitates (read when the app
    is built, so an explainer registered before then gets its views)."""
    classes = [explainer_class(name) for name in list_explainers()]
    return {cls.name: cls.imitates for cls in classes if cls.kind == "empirical"}


def model_name(classifier: Classifier) -> str:
    """How the page names the model: its Hub id or folder, or what the embedded default is."""
    if classifier.is_default:
        return "the embedded default (all-MiniLM-L6-v2 with a LoRA adapter fine-tuned on SST-2)"
    if classifier.embedded_name == "embedded:mrpc":
        return "the embedded paraphrase classifier (all-MiniLM-L6-v2 with a LoRA adapter fine-tuned on MRPC pairs)"
    return f"`{classifier.name_or_path}`"


def load_empirical_explainers(
    classifier: Classifier, sources: dict[str, str] | None = None
) -> tuple[dict[str, Explainer], list[str]]:
    """Empirical explainers and DiffMask probes for the app, by registry id, and a message for each that
    failed to load.

    ``sources`` maps ids (``empirical-ig``, ``diffmask-input``, ...) to Hub ids or folders; without it
    an embedded classifier gets its embedded ones and any other classifier none.
    """
    imitating = imitated()
    if sources is None:
        sources = {}
        folder = classifier.embedded_artefacts
        if folder is not None:
            sources = {name: str(folder / name) for name in (*imitating, *DIFFMASK) if (folder / name).is_dir()}
    explainers = {}
    problems = [
        f"{name}: no such explainer in the app (use {', '.join((*imitating, *DIFFMASK))})"
        for name in sources
        if name not in (*imitating, *DIFFMASK)
    ]
    for name in (*imitating, *DIFFMASK):
        if name in sources:
            option = "probes" if name in DIFFMASK else "explainer"
            try:
                explainers[name] = get_explainer(name, classifier, **{option: sources[name]})
            except EmpexpError as error:
                problems.append(f"{name}: {error}")
    return explainers, problems


def build_app(classifier: Classifier | None = None, empirical: dict[str, str] | None = None) -> gr.Blocks:
    """The app's Blocks for ``classifier`` (loaded once, here; the embedded default when ``None``).

    ``empirical`` maps empirical explainer ids to Hub ids or folders (default: the embedded ones, for
    the embedded classifier; DiffMask probes too, under ``diffmask-input`` / ``diffmask-hidden``).
    Named endpoints: ``predict(text)``, ``explain_empirical(text)`` and ``explain_internals(text,
    variant="input", aggregation="mean")`` (one pass each, shown at once), ``explain_fast(text,
    variant="input", aggregation="mean", faithfulness=False)`` (all of those in one call, as
    explanations in the shared JSON form) and ``explain(text, ig_samples=20, sv_samples=20, seed=0)``
    (the expensive methods, behind a button, in a queue of their own so they never hold up the rest).
    """
    classifier = classifier or load_classifier()
    imitating = imitated()
    loaded, problems = load_empirical_explainers(classifier, empirical)
    explainers = {name: e for name, e in loaded.items() if name in imitating}
    probes = {name: e for name, e in loaded.items() if name in DIFFMASK}
    attention = {how: get_explainer("attention", classifier, aggregation=how) for how in AGGREGATIONS}
    # IG hooks into the model it attributes: it gets its own copy (keeping the faster fused attention), so
    # the cheap views, served at the same time, never pass through its hooks. One expensive run at a time,
    # including one whose request was cancelled: its thread runs to the end.
    expensive_classifier, expensive_lock = classifier.replica(), threading.Lock()
    # Attention weights need eager attention: switched before serving, not by a first request while other
    # threads run the model.
    classifier.model.set_attn_implementation("eager")

    def predict(text: str) -> dict[str, float]:
        """Class probabilities of the classifier for ``text``."""
        try:
            return classifier.predict([text])[0].probabilities
        except EmpexpError as error:
            raise gr.Error(str(error)) from error

    def explain_empirical(text: str):
        """Prediction plus the empirical explainers' heatmaps for ``text`` (one pass each)."""
        try:
            results = explain_together(list(explainers.values()), text) if explainers else []
            probabilities = results[0].probabilities if results else classifier.predict([text])[0].probabilities
            truncated = results[0].truncated if results else classifier.encode([text])[0].truncated
        except EmpexpError as error:
            raise gr.Error(str(error)) from error
        views = [part for e in results for part in (highlights(e), cost(e))]
        return probabilities, truncation_notice(classifier, truncated), *views, [e.to_dict() for e in results]

    def explain(text: str, ig_samples: int = 20, sv_samples: int = 20, seed: int = 0, progress=gr.Progress()):  # noqa: B008 (how Gradio injects it)
        """Prediction plus Integrated Gradients and Shapley Value Sampling heatmaps for ``text``."""
        try:
            with expensive_lock:
                progress(0.0, desc=f"Integrated Gradients, {int(ig_samples)} steps")
                ig = get_explainer("ig", expensive_classifier, samples=int(ig_samples)).explain(text)[0]
                progress(0.3, desc=f"Shapley Value Sampling, {int(sv_samples)} permutations")
                sv = get_explainer("sv", expensive_classifier, samples=int(sv_samples), seed=int(seed)).explain(text)[0]
        except EmpexpError as error:
            raise gr.Error(str(error)) from error
        notice = truncation_notice(classifier, ig.truncated)
        return (
            ig.probabilities,
            highlights(ig),
            cost(ig),
            highlights(sv),
            cost(sv),
            notice,
            [ig.to_dict(), sv.to_dict()],
        )

    def internals(text: str, variant: str, aggregation: str, others: list[Explainer] = ()) -> list[Explanation]:
        """Attention (by ``aggregation``), the ``variant``'s DiffMask probes when loaded, and ``others``, from
        one shared prediction pass."""
        if aggregation not in attention:
            raise gr.Error(f"unknown aggregation {aggregation!r}: use one of {', '.join(AGGREGATIONS)}")
        name = f"diffmask-{variant}"
        try:
            return explain_together(
                [attention[aggregation], *([probes[name]] if name in probes else []), *others], text
            )
        except EmpexpError as error:
            raise gr.Error(str(error)) from error

    def explain_internals(text: str, variant: str = "input", aggregation: str = "mean"):
        """What the model keeps and attends to for ``text``: DiffMask keep probabilities per layer (the
        ``variant``'s probes, when loaded) and each head's self-attention, aggregated by ``aggregation``."""
        attended, *masked = internals(text, variant, aggregation)
        masked = masked[0] if masked else None
        keep = keep_heatmap(masked) if masked else None
        table = validation_table(masked) if masked else f"No diffmask-{variant} probes are loaded for this classifier."
        return (
            attended.probabilities,
            keep,
            table,
            highlights(attended),
            attention_series(attended),
            [attended.to_dict()] + ([masked.to_dict()] if masked else []),
        )

    def explain_fast(text: str, variant: str = "input", aggregation: str = "mean", faithfulness: bool = False) -> dict:
        """Everything that takes one model pass, in one call: the prediction and the explanations of the
        empirical explainers, the ``variant``'s DiffMask probes and self-attention (by ``aggregation``), in
        the shared JSON form; with ``faithfulness``, each explanation's AOPC scores too (more passes)."""
        results = internals(text, variant, aggregation, list(explainers.values()))
        answer = {"probabilities": results[0].probabilities, "explanations": [e.to_dict() for e in results]}
        if faithfulness:
            answer["faithfulness"] = aopc(classifier, results)
        return answer

    def score(raw: list[dict] | None, slots: int) -> list[str]:
        """A faithfulness line for each of the first ``slots`` explanations in ``raw`` ("" for missing ones)."""
        explanations = [Explanation.from_dict(d) for d in raw or []]
        lines = [faithfulness_line(scores) for scores in aopc(classifier, explanations)] if explanations else []
        return (lines + [""] * slots)[:slots]

    def save(text: str, *raws: list[dict] | None) -> tuple[str | None, str | None]:
        """Files of every explanation shown for ``text``: the shared JSON form, and the attention in AttViz's."""
        shown = [d for raw in raws for d in raw or [] if d["text"] == text]  # already in the shared JSON form
        if not shown:
            return None, None
        folder = download_folder()
        path = folder / "explanations.json"
        path.write_text(json.dumps(shown, ensure_ascii=False, indent=1), "utf-8")
        attended = [Explanation.from_dict(d) for d in shown if d["head_scores"] is not None]
        if not attended:
            return str(path), None
        attviz_path = folder / "attention-attviz.json"
        attviz_path.write_text(json.dumps(attviz(attended), ensure_ascii=False), "utf-8")
        return str(path), str(attviz_path)

    def show_head(raw: list[dict] | None, layer: int, head: int):
        """One head's self-attention from the last ``explain_internals`` result (no model pass)."""
        if not raw:
            return gr.skip()
        return head_highlights(Explanation.from_dict(raw[0]), layer, head)

    def compare(empirical_raw: list[dict] | None, expensive_raw: list[dict] | None):
        """Redraw each expensive heatmap and its empirical counterparts on one colour scale, with their agreement."""
        empirical = [Explanation.from_dict(d) for d in empirical_raw or []]
        expensive = {d["method"]: Explanation.from_dict(d) for d in expensive_raw or []}
        if not expensive or not empirical or empirical[0].text != next(iter(expensive.values())).text:
            return [gr.skip()] * (2 * len(explainers) + 2)  # the empirical views are of another text
        scales = {m: scale_of(e, *(x for x in empirical if imitating[x.method] == m)) for m, e in expensive.items()}
        empirical_views = [highlights(e, scales[imitating[e.method]]) for e in empirical]
        lines = [agreement_line(e, expensive[imitating[e.method]]) for e in empirical]
        return (
            *empirical_views,
            *lines,
            highlights(expensive["ig"], scales["ig"]),
            highlights(expensive["sv"], scales["sv"]),
        )

    with gr.Blocks(
        title="empexp: explanations for text classifiers",
        analytics_enabled=False,
        delete_cache=(DOWNLOAD_LIFETIME, DOWNLOAD_LIFETIME),
    ) as app:
        gr.Markdown(
            "# empexp\nType a sentence: the classifier's prediction, and which tokens drove it. Empirical "
            "explainers answer at once (one model pass or none); Integrated Gradients and Shapley Value "
            f"Sampling, which they imitate, take tens to hundreds of passes. Model: {model_name(classifier)}."
        )
        for problem in problems:
            gr.Markdown(f"⚠️ Not loaded: {html.escape(problem)}")
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(label="Text", lines=3, placeholder="Type a sentence…", max_length=50_000)
                with gr.Row():
                    button = gr.Button("Explain", variant="primary")
                    expensive_button = gr.Button("Run IG and SV too (slower)")
                with gr.Accordion("Settings of IG and SV", open=False):
                    ig_samples = gr.Slider(1, 100, value=20, step=1, label="Integrated Gradients steps")
                    sv_samples = gr.Slider(1, 100, value=20, step=1, label="Shapley permutations")
                    seed = gr.Number(0, precision=0, label="Shapley seed")
                gr.Examples(EXAMPLES, inputs=text, label="Examples: positive, negative, negated, long")
            with gr.Column(scale=2):
                probabilities = gr.Label(label="Prediction (class probabilities)", elem_id="prediction")
                download_json = gr.DownloadButton("Download the explanations (JSON)", value=None, size="sm")
                download_attviz = gr.DownloadButton("Download the attention (AttViz JSON)", value=None, size="sm")
        notice = gr.Markdown()
        gr.Markdown(LEGEND)
        gr.Markdown(FAITHFULNESS_HELP)
        empirical_views, empirical_costs, agreement_lines, empirical_faithfulness = [], [], [], []
        expensive_views = {}
        with gr.Row():
            for method in ("ig", "sv"):
                with gr.Column():
                    for name in (n for n in explainers if imitating[n] == method):
                        empirical_views.append(
                            gr.HighlightedText(label=display_name(name), show_legend=True, elem_id=f"view-{name}")
                        )
                        gr.Markdown(explainer_class(name).description)
                        empirical_costs.append(gr.Markdown())
                        agreement_lines.append(gr.Markdown())
                        empirical_faithfulness.append(gr.Markdown(elem_id=f"faithfulness-{name}"))
                    expensive_views[method] = gr.HighlightedText(
                        label=display_name(method), show_legend=True, elem_id=f"view-{method}"
                    )
                    gr.Markdown(explainer_class(method).description)
                    expensive_views[f"{method}-cost"] = gr.Markdown()
                    expensive_views[f"{method}-faithfulness"] = gr.Markdown(elem_id=f"faithfulness-{method}")
        curves = {
            m: load_curve(explainers[n].source, explainers[n].revision) for n, m in imitating.items() if n in explainers
        }
        curves = {m: c for m, c in curves.items() if c is not None}
        if curves:
            # Drawn when opened: matplotlib would otherwise add a second to every start-up.
            with gr.Accordion("How close are the empirical explainers? (convergence curves)", open=False) as panel:
                gr.Markdown(CURVE_HELP)
                with gr.Row():
                    curve_plots = [gr.Plot(label=f"{method.upper()} convergence") for method in curves]
            panel.expand(lambda: [plot(c) for c in curves.values()], outputs=curve_plots, api_visibility="private")
        config = classifier.model.config
        with gr.Accordion("Inside the model: DiffMask and attention (one pass)", open=True):
            with gr.Row():
                variant = gr.Radio(["input", "hidden"], value="input", label="DiffMask variant")
                aggregation = gr.Dropdown(list(AGGREGATIONS), value="mean", label="Aggregation across heads")
            with gr.Row():
                with gr.Column(scale=3):
                    gr.Markdown(DIFFMASK_HELP)
                    keep_plot = gr.HTML(label="DiffMask keep probabilities (tokens x layers)", elem_id="view-diffmask")
                    diffmask_faithfulness = gr.Markdown(elem_id="faithfulness-diffmask")
                    with gr.Accordion("What the probes reached per layer", open=False):
                        probe_table = gr.Markdown()
                with gr.Column(scale=1):
                    internal_probabilities = gr.Label(
                        label="Prediction (class probabilities)", elem_id="prediction-internals"
                    )
            gr.Markdown(ATTENTION_HELP)
            attention_view = gr.HighlightedText(
                label=display_name("attention"), show_legend=True, elem_id="view-attention"
            )
            attention_faithfulness = gr.Markdown(elem_id="faithfulness-attention")
            series_plot = gr.HTML(label="Self-attention aggregations over tokens", elem_id="view-aggregations")
            with gr.Row():
                layer_pick = gr.Slider(1, config.num_hidden_layers, value=1, step=1, label="Layer")
                head_pick = gr.Slider(1, config.num_attention_heads, value=1, step=1, label="Head")
            head_view = gr.HighlightedText(label="One head's self-attention", show_legend=True, elem_id="view-head")
        with gr.Accordion("Explanations as JSON", open=False):
            empirical_raw = gr.JSON(label="Empirical explanations")
            raw = gr.JSON(label="IG and SV explanations")
            internals_raw = gr.JSON(label="Attention and DiffMask explanations")

        # Views first, then (a separate step, so the views never wait for it) their faithfulness and the
        # downloads. Cheap views share one queue; IG and SV have their own, so they never hold the cheap ones up.
        downloads = {"fn": save, "inputs": [text, empirical_raw, raw, internals_raw], "outputs": [download_json,
                     download_attviz], "api_visibility": "private"}  # fmt: skip
        # Cards keep the order of ``explainers``: view and cost interleaved, as explain_empirical returns them.
        cards = [part for pair in zip(empirical_views, empirical_costs) for part in pair]
        gr.on(
            [button.click, text.submit],
            explain_empirical,
            inputs=text,
            outputs=[probabilities, notice, *cards, empirical_raw],
            api_name="explain_empirical",
            concurrency_id="cheap",
        ).success(
            lambda r: score(r, len(empirical_faithfulness)),
            inputs=empirical_raw,
            outputs=empirical_faithfulness,
            api_visibility="private",
            concurrency_id="cheap",
        ).success(**downloads)
        expensive_outputs = [
            probabilities, expensive_views["ig"], expensive_views["ig-cost"], expensive_views["sv"],
            expensive_views["sv-cost"], notice, raw,
        ]  # fmt: skip
        expensive_button.click(
            explain,
            inputs=[text, ig_samples, sv_samples, seed],
            outputs=expensive_outputs,
            api_name="explain",
            concurrency_limit=1,
            concurrency_id="expensive",
        ).success(
            compare,
            inputs=[empirical_raw, raw],
            outputs=[*empirical_views, *agreement_lines, expensive_views["ig"], expensive_views["sv"]],
            api_visibility="private",
        ).success(
            lambda r: score(r, 2),
            inputs=raw,
            outputs=[expensive_views["ig-faithfulness"], expensive_views["sv-faithfulness"]],
            api_visibility="private",
            concurrency_id="expensive",
        ).success(**downloads)
        internal_event = gr.on(
            [button.click, text.submit, variant.change, aggregation.change],
            explain_internals,
            inputs=[text, variant, aggregation],
            outputs=[internal_probabilities, keep_plot, probe_table, attention_view, series_plot, internals_raw],
            api_name="explain_internals",
            concurrency_id="cheap",
        )
        internal_event.success(show_head, inputs=[internals_raw, layer_pick, head_pick], outputs=head_view,
                               api_visibility="private")  # fmt: skip
        internal_event.success(
            lambda r: score(r, 2),
            inputs=internals_raw,
            outputs=[attention_faithfulness, diffmask_faithfulness],
            api_visibility="private",
            concurrency_id="cheap",
        ).success(**downloads)
        gr.on(
            [layer_pick.change, head_pick.change],
            show_head,
            inputs=[internals_raw, layer_pick, head_pick],
            outputs=head_view,
            api_visibility="private",
        )
        gr.api(predict, api_name="predict", concurrency_id="cheap")
        gr.api(explain_fast, api_name="explain_fast", concurrency_id="cheap")
    return app


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
