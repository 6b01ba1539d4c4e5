"""Attention views: diagonals as read from the model, aggregations, result and AttViz schemas."""

import json
import math

import pytest
import torch

from empexp import get_explainer
from empexp.errors import InputError
from empexp.explainers.attention import aggregate, self_attention
from empexp.explanation import Explanation
from empexp.exports import attviz
from tests.conftest import SENTENCES
from tests.test_cli import EXPLAIN_FIELDS, run


def test_diagonal_equals_attentions_read_directly(tiny):
    explanations = get_explainer("attention", tiny).explain(SENTENCES[:3])
    for text, explanation in zip(SENTENCES[:3], explanations):
        batch = tiny.collate(tiny.encode([text]))
        with torch.no_grad():
            attentions = tiny.model(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_attentions=True
            ).attentions
        assert len(explanation.head_scores) == len(attentions) == tiny.model.config.num_hidden_layers
        for layer, weights in enumerate(attentions):
            for head in range(weights.shape[1]):
                direct = [weights[0, head, i, i].item() for i in range(weights.shape[-1])]
                assert explanation.head_scores[layer][head] == pytest.approx(direct, abs=1e-5)
        heads = torch.tensor(explanation.head_scores)
        assert explanation.scores == pytest.approx(heads.mean((0, 1)).tolist(), abs=1e-6)
        for got, want in zip(explanation.layer_scores, heads.mean(1).tolist(), strict=True):
            assert got == pytest.approx(want, abs=1e-6)
        assert explanation.forward_passes == 1


def test_batched_and_single_texts_agree(bert):
    explainer = get_explainer("attention", bert, aggregation="max")
    together = explainer.explain(SENTENCES)
    alone = [explainer.explain(text)[0] for text in SENTENCES]
    for a, b in zip(together, alone):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_aggregations_on_a_hand_made_tensor():
    # 1 text, 2 layers, 2 heads, 3 tokens
    values = torch.tensor([[[[0.5, 0.2, 0.0], [0.5, 0.6, 1.0]], [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]]]])
    assert aggregate(values, "mean", (1, 2))[0].tolist() == pytest.approx([0.35, 0.3, 0.35])
    assert torch.allclose(aggregate(values, "max", 2)[0], torch.tensor([[0.5, 0.6, 1.0], [0.3, 0.2, 0.3]]))
    assert torch.allclose(aggregate(values, "min", 2)[0], torch.tensor([[0.5, 0.2, 0.0], [0.1, 0.2, 0.1]]))
    assert aggregate(values, "std", 2)[0, 0].tolist() == pytest.approx([0.0, 0.2, 0.5])
    entropy = aggregate(values, "entropy", 2)[0, 0].tolist()
    # equal heads: log 2; one head carries everything: 0; 0.2 vs 0.6: -(1/4 log 1/4 + 3/4 log 3/4)
    assert entropy == pytest.approx([math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), 0.0], abs=1e-6)
    with pytest.raises(InputError, match="unknown aggregation"):
        aggregate(values, "median", 2)


def test_self_attention_takes_each_diagonal():
    weights = torch.arange(2 * 3 * 3, dtype=torch.float).view(1, 2, 3, 3)
    assert self_attention((weights,))[0, 0].tolist() == [[0, 4, 8], [9, 13, 17]]


def test_options_are_checked(bert):
    with pytest.raises(InputError, match="unknown aggregation"):
        get_explainer("attention", bert, aggregation="median")
    with pytest.raises(InputError, match="layer must be"):
        get_explainer("attention", bert, layer=7)
    explanation = get_explainer("attention", bert, layer=1, aggregation="entropy").explain("awful")[0]
    heads = torch.tensor(explanation.head_scores)
    assert explanation.scores == pytest.approx(aggregate(heads[1:2][None], "entropy", (1, 2))[0].tolist(), abs=1e-6)


def test_result_schema_round_trips_and_exports_to_attviz(capsys, bert_path, tmp_path):
    code, records, _ = run(
        capsys, "explain", "--model", bert_path, "--method", "attention", "--attviz", tmp_path / "a.json", "great"
    )
    assert code == 0
    (record,) = records
    assert set(record) >= EXPLAIN_FIELDS | {"layer_scores", "head_scores"}
    explanation = Explanation.from_dict(record)
    assert Explanation.from_json(explanation.to_json()) == explanation
    (exported,) = json.loads((tmp_path / "a.json").read_text())
    assert exported["sets"][0]["tokens"] == record["tokens"]
    vectors = exported["sets"][0]["attention_vectors"]
    assert len(vectors) == sum(len(layer) for layer in record["head_scores"])
    assert vectors[0]["name"] == "layer 1 head 1"
    assert [float(v) for v in vectors[0]["vectors"]] == pytest.approx(record["head_scores"][0][0])
    assert {a["name"] for a in exported["output_activations"]} == set(record["probabilities"])


def test_attviz_needs_attention(bert):
    explanation = get_explainer("ig", bert, samples=2).explain("great")[0]
    with pytest.raises(ValueError, match="per-head attention"):
        attviz([explanation])


def test_misaligned_layer_scores_are_rejected():
    with pytest.raises(ValueError, match="one value per token"):
        Explanation("a", ["a"], [(0, 1)], [0.0], "attention", None, 0, "x", {}, 1, 0.0, layer_scores=[[0.0, 1.0]])


def test_explained_together_equals_explained_alone(bert, tmp_path):
    from empexp.explainers import explain_together
    from empexp.probes import DiffMaskModel

    DiffMaskModel(bert, explains=bert.identity(), variant="hidden").save_pretrained(tmp_path / "hidden")
    explainers = [get_explainer("attention", bert), get_explainer("diffmask-hidden", bert, source=tmp_path / "hidden")]
    together = explain_together(explainers, "the movie was great")
    for explainer, shared in zip(explainers, together, strict=True):
        alone = explainer.explain("the movie was great")[0]
        assert shared.scores == pytest.approx(alone.scores, abs=1e-6)
        assert shared.forward_passes == alone.forward_passes == 1
