from empexp.app.views import agreement_line, cost, highlights, scale_of
from tests.test_explanation import make


def test_highlights_cover_the_users_text_with_scaled_scores():
    explanation = make(text="not  bad!", offsets=[None, (0, 3), (5, 8), None], scores=[0.0, 0.5, -1.0, 0.0])
    spans = highlights(explanation)
    assert "".join(text for text, _ in spans) == "not  bad!"
    assert spans == [("not", 0.5), ("  ", None), ("bad", -1.0), ("!", None)]


def test_truncated_text_ends_with_a_marker():
    spans = highlights(make(truncated=True))
    assert "".join(text for text, _ in spans).startswith("not bad")
    assert "not explained" in spans[-1][0]


def test_cost_line():
    assert cost(make()) == "**Integrated Gradients** · 20 steps · 23 model passes · 100 ms"


def test_pairs_share_a_colour_scale_and_report_their_agreement():
    expensive = make(offsets=[None, (0, 3), (4, 7), None], scores=[0.0, 2.0, -1.0, 0.0])
    empirical = make(method="empirical-ig", offsets=expensive.offsets, scores=[0.0, 1.0, -0.5, 0.0])
    scale = scale_of(expensive, empirical)
    assert [score for _, score in highlights(empirical, scale) if score is not None] == [0.5, -0.25]
    assert agreement_line(empirical, expensive) == (
        "vs Integrated Gradients: MSE 0.6250 · Spearman rank correlation 1.00"
    )
