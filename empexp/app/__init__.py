"""The Gradio app: a sentence in, the prediction and IG / SV token heatmaps side by side out.

``app.py`` at the top level (what a Space runs) only calls :func:`build_app` and launches it.
"""

from __future__ import annotations

import os

# Read when gradio is imported: no analytics calls from a local, offline app.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from empexp.app.views import cost, highlights
from empexp.classifier import Classifier, load_classifier
from empexp.errors import EmpexpError
from empexp.explainers import get_explainer

EXAMPLES = [
    "A gorgeous, witty, seductive movie.",
    "The plot is nothing but boilerplate clichés from start to finish.",
    "Not bad at all, though the ending drags.",
]
LEGEND = (
    "Red tokens push towards the predicted label, purple ones against it; colour strength is each "
    "score divided by the largest magnitude in that explanation."
)

# System fonts only: a theme's default web fonts would be fetched from a CDN, which an offline app cannot reach.
THEME = gr.themes.Default(
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
)


def model_name(classifier: Classifier) -> str:
    """How the page names the model: its Hub id or folder, or what the embedded default is."""
    if classifier.is_default:
        return "the embedded default (all-MiniLM-L6-v2 with a LoRA adapter fine-tuned on SST-2)"
    return f"`{classifier.name_or_path}`"


def build_app(classifier: Classifier | None = None) -> gr.Blocks:
    """The app's Blocks for ``classifier`` (loaded once, here; the embedded default when ``None``).

    Named endpoints: ``predict(text)`` and ``explain(text, ig_samples=20, sv_samples=20, seed=0)``.
    """
    classifier = classifier or load_classifier()

    def predict(text: str) -> dict[str, float]:
        """Class probabilities of the classifier for ``text``."""
        try:
            return classifier.predict([text])[0].probabilities
        except EmpexpError as error:
            raise gr.Error(str(error)) from error

    def explain(text: str, ig_samples: int = 20, sv_samples: int = 20, seed: int = 0):
        """Prediction plus Integrated Gradients and Shapley Value Sampling heatmaps for ``text``."""
        try:
            ig = get_explainer("ig", classifier, samples=int(ig_samples)).explain(text)[0]
            sv = get_explainer("sv", classifier, samples=int(sv_samples), seed=int(seed)).explain(text)[0]
        except EmpexpError as error:
            raise gr.Error(str(error)) from error
        notice = ""
        if ig.truncated:
            notice = (
                f"⚠️ The text is longer than the model's limit of {classifier.max_length} tokens: "
                "only its beginning was classified and explained."
            )
        return (
            ig.probabilities,
            highlights(ig),
            cost(ig),
            highlights(sv),
            cost(sv),
            notice,
            [ig.to_dict(), sv.to_dict()],
        )

    with gr.Blocks(title="empexp: explanations for text classifiers", analytics_enabled=False) as app:
        gr.Markdown(
            "# empexp\nType a sentence: the classifier's prediction, and which tokens drove it according to "
            f"two attribution methods. Model: {model_name(classifier)}."
        )
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(label="Text", lines=3, placeholder="Type a sentence…", max_length=50_000)
                with gr.Accordion("Settings", open=False):
                    ig_samples = gr.Slider(1, 100, value=20, step=1, label="Integrated Gradients steps")
                    sv_samples = gr.Slider(1, 100, value=20, step=1, label="Shapley permutations")
                    seed = gr.Number(0, precision=0, label="Shapley seed")
                button = gr.Button("Explain", variant="primary")
                gr.Examples(EXAMPLES, inputs=text)
            with gr.Column(scale=2):
                probabilities = gr.Label(label="Prediction (class probabilities)")
        notice = gr.Markdown()
        gr.Markdown(LEGEND)
        with gr.Row():
            with gr.Column():
                ig_view = gr.HighlightedText(label="Integrated Gradients", show_legend=True)
                ig_cost = gr.Markdown()
            with gr.Column():
                sv_view = gr.HighlightedText(label="Shapley Value Sampling", show_legend=True)
                sv_cost = gr.Markdown()
        with gr.Accordion("Explanations as JSON", open=False):
            raw = gr.JSON(label="Explanation objects")

        gr.on(
            [button.click, text.submit],
            explain,
            inputs=[text, ig_samples, sv_samples, seed],
            outputs=[probabilities, ig_view, ig_cost, sv_view, sv_cost, notice, raw],
            api_name="explain",
        )
        gr.api(predict, api_name="predict")
    return app


def launch(app: gr.Blocks, **kwargs) -> None:
    """Launch with a request queue and the offline theme."""
    app.queue(default_concurrency_limit=2).launch(theme=THEME, **kwargs)
