import pytest

from empexp.app.views import (
    PAIR_MARK,
    agreement_line,
    attention_legend,
    cost,
    highlights,
    keep_heatmap,
    scale_of,
    word_groups,
    words,
)
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
    assert "· 1.5 model passes ·" in cost(make(forward_passes=1.5))


def test_pairs_share_a_colour_scale_and_report_their_agreement():
    expensive = make(offsets=[None, (0, 3), (4, 7), None], scores=[0.0, 2.0, -1.0, 0.0])
    empirical = make(method="empirical-ig", offsets=expensive.offsets, scores=[0.0, 1.0, -0.5, 0.0])
    scale = scale_of(expensive, empirical)
    assert [score for _, score in highlights(empirical, scale) if score is not None] == [0.5, -0.25]
    assert agreement_line(empirical, expensive) == (
        "vs Integrated Gradients: MSE 0.6250 · Spearman rank correlation 1.00"
    )


PWNED = make(
    text="it pwned.",
    tokens=["[CLS]", "it", "p", "##wn", "##ed", ".", "[SEP]"],
    offsets=[None, (0, 2), (3, 4), (4, 6), (6, 8), (8, 9), None],
    scores=[0.0, 0.1, 0.2, 0.3, -0.1, 0.05, 0.0],
    layer_scores=[[1.0, 0.5, 0.2, 0.4, 0.6, 1.0, 1.0]],
)


def test_words_sum_their_pieces_scores_and_average_their_rates():
    assert word_groups(PWNED) == [[0], [1], [2, 3, 4], [5], [6]]
    merged = words(PWNED)
    assert merged.tokens == ["[CLS]", "it", "pwned", ".", "[SEP]"] and merged.offsets[2] == (3, 8)
    assert merged.scores == pytest.approx([0.0, 0.1, 0.4, 0.05, 0.0])
    assert merged.layer_scores[0] == pytest.approx([1.0, 0.5, 0.4, 1.0, 1.0])
    assert highlights(PWNED) == [("it", 0.25), (" ", None), ("pwned", 1.0), (".", 0.125)]
    assert [text for text, _ in highlights(PWNED, pieces=True)] == ["it", " ", "p", "wn", "ed", "."]


def test_a_pair_shows_both_texts_with_a_mark_between_in_every_view():
    pair = make(
        text="not bad",
        text_pair="fine",
        tokens=["[CLS]", "not", "bad", "[SEP]", "fine", "[SEP]"],
        offsets=[None, (0, 3), (4, 7), None, (0, 4), None],
        scores=[0.0, 0.5, -0.25, 0.0, 1.0, 0.0],
        segment=[0, 0, 0, 0, 1, 1],
        layer_scores=[[1.0] * 6],
        details={"layer_names": ["word embeddings"]},
    )
    assert highlights(pair) == [("not", 0.5), (" ", None), ("bad", -0.25), (PAIR_MARK, None), ("fine", 1.0)]
    table = keep_heatmap(pair)
    assert table.count("second") == 2 and table.index("second") < table.index("fine")  # header and cell


def test_attention_has_its_own_sequential_scale():
    assert "uncoloured = 0" in attention_legend(PWNED) and "(0.400)" in attention_legend(PWNED)
    assert "(0.300)" in attention_legend(PWNED, pieces=True)
