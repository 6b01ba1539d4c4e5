"""Convergence curves: the paper's evaluation on a tiny model."""

import io

import pytest

from empexp import get_explainer
from empexp.convergence import Curve, agreement, expensive_curve, load_cache, mse, plot, save_cache
from tests.conftest import SENTENCES


@pytest.mark.parametrize("method", ["ig", "sv"])
def test_curve_has_one_error_per_sample_count_below_the_target(bert, method):
    curve, targets = expensive_curve(bert, SENTENCES[:3], method, max_samples=4, seed=1)
    assert sorted(curve.mse) == [1, 2, 3] and sorted(curve.seconds) == [1, 2, 3]
    assert all(value >= 0 for value in curve.mse.values()) and curve.target_mean_square > 0
    assert [t.text for t in targets] == SENTENCES[:3]
    if method == "ig":  # the target is IG itself with max_samples
        reference = get_explainer("ig", bert, samples=4).explain(SENTENCES[:3])
        assert mse(reference, targets) < 1e-10
    again, _ = expensive_curve(bert, SENTENCES[:3], method, max_samples=4, seed=1)
    assert again.mse == pytest.approx(curve.mse)  # reproducible with a seed


def test_crossover_is_the_first_sample_count_below_the_empirical_error():
    curve = Curve("ig", 5, 10, 0, mse={1: 1.0, 2: 0.5, 3: 0.2, 4: 0.1}, seconds=dict.fromkeys(range(1, 5), 0.1),
                  target_mean_square=1.0)  # fmt: skip
    assert curve.crossover(0.3) == 3
    assert curve.crossover(2.0) == 1
    assert curve.crossover(0.05) == 5  # below every s < max_samples
    curve.add_empirical("empirical-ig", 0.3, 0.01)
    restored = Curve.from_json(curve.to_json())
    assert restored == curve and restored.empirical["empirical-ig"]["crossover"] == 3
    plot(restored).savefig(io.BytesIO(), format="png")


def test_a_cached_curve_comes_back_with_its_key_and_targets(bert, tmp_path):
    curve, targets = expensive_curve(bert, SENTENCES[:2], "ig", max_samples=3)
    save_cache(tmp_path / "runs" / "cache.json", {"method": "ig"}, curve, targets)
    key, again, kept = load_cache(tmp_path / "runs" / "cache.json")
    assert key == {"method": "ig"} and again == curve and kept == targets


def test_agreement_of_an_explanation_with_itself(bert):
    explanation = get_explainer("ig", bert, samples=3).explain("the plot was boring but the acting was fun")[0]
    numbers = agreement(explanation, explanation)
    assert numbers["mse"] == 0 and numbers["spearman"] == pytest.approx(1.0)
