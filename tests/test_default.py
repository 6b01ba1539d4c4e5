"""The real embedded default: all-MiniLM-L6-v2 from its PyPI package with the committed SST-2 adapter."""

import pytest

from empexp import get_explainer, load_classifier
from empexp.app import EMPIRICAL
from empexp.classifier import DEFAULT_CLASSIFIER
from empexp.convergence import agreement, load_curve
from empexp.explainers.empirical import DEFAULT_EXPLAINERS

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


@pytest.fixture(scope="module")
def default_classifier():
    return load_classifier()


def test_default_weights_fit_the_cap():
    size = sum(p.stat().st_size for p in DEFAULT_CLASSIFIER.parent.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    assert 0 < size <= 25 * 1024 * 1024


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
@pytest.mark.parametrize("name", EMPIRICAL)
def test_embedded_explainers_load_offline_and_agree_with_their_method(default_classifier, name):
    text = "A wonderful, moving film with superb acting."
    explainer = get_explainer(name, default_classifier)
    explainer.explain(text)  # the first text of a length also runs the classifier on its baseline
    explanation = explainer.explain(text)[0]
    assert explanation.method == name and explanation.label == "positive"
    assert explanation.forward_passes == (1 if name.endswith("-head") else 2)
    assert (DEFAULT_EXPLAINERS / name / "README.md").is_file() and load_curve(DEFAULT_EXPLAINERS / name)
    method = EMPIRICAL[name]
    expensive = get_explainer(method, default_classifier).explain(text)[0]
    # A trained explainer ranks the tokens much as the method it imitates does.
    assert agreement(explanation, expensive)["spearman"] > 0.5
