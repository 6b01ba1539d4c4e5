"""Text pairs as one input (transformers' ``text`` / ``text_pair``): encoding, segments, IG and SV, JSON."""

import pytest
import torch
from captum.attr import IntegratedGradients, LayerIntegratedGradients

from empexp import Explanation, get_explainer, layers
from empexp.classifier import INPUTS_KEY, pad_baseline
from empexp.cli import main
from empexp.data import classification_scores, read_tsv
from empexp.errors import InputError

PREMISE, HYPOTHESIS = "the movie was great", "the film is not bad"


def test_a_bare_tuple_is_refused_with_a_pointer_to_text_pair(bert):
    for call in (
        lambda: bert.predict([(PREMISE, HYPOTHESIS)]),
        lambda: get_explainer("ig", bert).explain([(PREMISE, HYPOTHESIS)]),
    ):
        with pytest.raises(InputError, match="text_pair"):
            call()
    with pytest.raises(InputError, match="one pair per text"):
        bert.encode([PREMISE, PREMISE], [HYPOTHESIS])


def test_a_pair_and_the_same_texts_alone_give_different_correct_segments(tiny):
    (pair,) = get_explainer("ig", tiny, samples=4).explain(PREMISE, HYPOTHESIS)
    alone = get_explainer("ig", tiny, samples=4).explain([PREMISE, HYPOTHESIS])
    assert pair.text == PREMISE and pair.text_pair == HYPOTHESIS and set(pair.segment) == {0, 1}
    assert all(e.text_pair is None and e.segment is None for e in alone)
    # Each token's offsets point into its own text, and each text's tokens come in order, first text first.
    words = {0: [], 1: []}
    for token_segment, span in zip(pair.segment, pair.offsets):
        if span is not None:
            words[token_segment].append((PREMISE, HYPOTHESIS)[token_segment][span[0] : span[1]])
    single = [[e.text[s[0] : s[1]] for s in e.offsets if s is not None] for e in alone]
    assert words[0] == single[0] and words[1] == single[1]
    assert pair.segment == sorted(pair.segment)  # 0s then 1s (XLNet's trailing <cls> stays with the 1s)
    assert len(pair.tokens) != len(alone[0].tokens) and pair.scores != alone[0].scores


def test_ig_on_a_pair_equals_an_independent_captum_run(tiny):
    (explanation,) = get_explainer("ig", tiny, samples=16).explain([PREMISE], [HYPOTHESIS])
    batch = tiny.collate(tiny.encode([PREMISE], [HYPOTHESIS]))
    if tiny.model.config.model_type == "bert":
        assert set(batch.token_type_ids[0].tolist()) == {0, 1}  # the second text's segment reaches the model
    inputs = tiny.model_inputs(batch)
    baseline = pad_baseline(batch.input_ids, batch.special_tokens_mask, tiny.tokenizer.pad_token_id)
    layer = layers.embedding_layer(tiny.model)
    if layer is tiny.model.get_input_embeddings():  # XLNet: its word embeddings, batch first
        embed = tiny.model.get_input_embeddings()
        ig = IntegratedGradients(tiny.forward_embeds)
        attributions = ig.attribute(embed(batch.input_ids).detach(), embed(baseline).detach(),
                                    target=explanation.target, additional_forward_args=inputs, n_steps=16)  # fmt: skip
    else:
        ig = LayerIntegratedGradients(tiny.forward, layer)
        attributions = ig.attribute(batch.input_ids, baseline, target=explanation.target,
                                    additional_forward_args=inputs, n_steps=16)  # fmt: skip
    torch.testing.assert_close(torch.tensor(explanation.scores), attributions.sum(-1)[0].detach(), atol=1e-5, rtol=1e-4)


def test_sv_on_a_pair_adds_up_to_the_change_from_the_baseline(tiny):
    (explanation,) = get_explainer("sv", tiny, samples=3).explain([PREMISE], [HYPOTHESIS])
    batch = tiny.collate(tiny.encode([PREMISE], [HYPOTHESIS]))
    baseline = pad_baseline(batch.input_ids, batch.special_tokens_mask, tiny.tokenizer.pad_token_id)
    with torch.no_grad():
        inputs = tiny.model_inputs(batch)
        delta = (
            tiny.forward(batch.input_ids, *inputs)[0, explanation.target]
            - tiny.forward(baseline, *inputs)[0, explanation.target]
        )
    assert sum(explanation.scores) == pytest.approx(float(delta), abs=1e-4)
    assert any(s != 0 for s, seg in zip(explanation.scores, explanation.segment) if seg == 1)  # both texts scored


def test_pair_explanations_round_trip_and_single_texts_keep_their_json(bert):
    (pair,) = get_explainer("ig", bert, samples=2).explain(PREMISE, HYPOTHESIS)
    assert Explanation.from_json(pair.to_json()) == pair
    (single,) = get_explainer("ig", bert, samples=2).explain(PREMISE)
    assert "text_pair" not in single.to_dict() and "segment" not in single.to_dict()
    assert Explanation.from_json(single.to_json()) == single
    prediction = bert.predict([PREMISE], [HYPOTHESIS])[0]
    assert prediction.to_dict()["text_pair"] == HYPOTHESIS and "text_pair" not in bert.predict([PREMISE])[0].to_dict()


def test_a_long_pair_is_truncated_longest_first(bert):
    long = " ".join(["the movie was great"] * 40)
    (encoded,) = bert.encode([long], ["awful"])
    assert encoded.truncated and len(encoded) == bert.max_length
    kept = [bert.tokenizer.convert_ids_to_tokens(i) for i, s in zip(encoded.input_ids, encoded.segments) if s == 1]
    assert "awful" in kept  # the short text survives; the long one gave way


def test_cli_pairs_come_two_by_two_or_tab_separated(capsys, bert_path, tmp_path):
    from tests.test_cli import run

    lines = tmp_path / "pairs.tsv"
    lines.write_text(f"{PREMISE}\t{HYPOTHESIS}\nawful\tgreat\n")
    code, records, _ = run(capsys, "explain", "--model", bert_path, "--method", "ig", "--samples", 2, "--pairs",
                           PREMISE, HYPOTHESIS, "--input-file", lines)  # fmt: skip
    assert code == 0
    assert [(r["text"], r["text_pair"]) for r in records] == [
        (PREMISE, HYPOTHESIS),
        (PREMISE, HYPOTHESIS),
        ("awful", "great"),
    ]
    assert all(len(r["segment"]) == len(r["tokens"]) for r in records)
    code, records, _ = run(capsys, "predict", "--model", bert_path, "--pairs", "awful", "great")
    assert code == 0 and records[0]["text_pair"] == "great"
    with pytest.raises(SystemExit):
        main(["predict", "--model", str(bert_path), "--pairs", "an odd number of texts"])
    lines.write_text("no tab here\n")
    with pytest.raises(SystemExit):
        main(["predict", "--model", str(bert_path), "--pairs", "--input-file", str(lines)])


def test_faithfulness_of_a_pair_perturbs_the_pair(tiny):
    from empexp.faithfulness import aopc

    pair = get_explainer("ig", tiny, samples=4).explain(PREMISE, HYPOTHESIS)
    single = get_explainer("ig", tiny, samples=4).explain(PREMISE)
    together = aopc(tiny, [*pair, *single])
    assert together == [*aopc(tiny, pair), *aopc(tiny, single)]  # one text, two instances: kept apart
    # Every token removed (k = 100%): the probability falls to the pad baseline's, with the pair's segments.
    full = aopc(tiny, pair, fractions=(1.0,))[0]["comprehensiveness"]
    batch = tiny.collate(tiny.encode([PREMISE], [HYPOTHESIS]))
    baseline = pad_baseline(batch.input_ids, batch.special_tokens_mask, tiny.tokenizer.pad_token_id)
    with torch.no_grad():
        inputs = tiny.model_inputs(batch)
        p = tiny.forward(batch.input_ids, *inputs).softmax(-1)[0, pair[0].target]
        p_baseline = tiny.forward(baseline, *inputs).softmax(-1)[0, pair[0].target]
    assert full == pytest.approx(float(p - p_baseline), abs=1e-5)


def test_a_classifier_that_says_what_it_takes_refuses_the_other(bert, monkeypatch):
    monkeypatch.setattr(bert.model.config, INPUTS_KEY, "pair", raising=False)
    with pytest.raises(InputError, match="takes text pairs"):
        bert.predict([PREMISE])
    assert bert.predict([PREMISE], [HYPOTHESIS])[0].text_pair == HYPOTHESIS
    monkeypatch.setattr(bert.model.config, INPUTS_KEY, "text")
    with pytest.raises(InputError, match="not pairs"):
        get_explainer("ig", bert).explain(PREMISE, HYPOTHESIS)


def test_labelled_pairs_are_read_with_both_texts(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("label\tsentence1\tsentence2\n1\ta b\tc d\n0\te\tf\n")
    data = read_tsv(path)
    assert data.texts == ["a b", "e"] and data.text_pairs == ["c d", "f"] and data.labels == [1, 0]
    assert data[:1].text_pairs == ["c d"]
    assert classification_scores([1, 1, 0, 0], [1, 0, 0, 1]) == {"accuracy": 0.5, "f1": 0.5}


def test_diffmask_attention_and_attviz_take_pairs(tiny, tmp_path):
    from empexp.exports import attviz
    from empexp.probes import DiffMaskModel

    DiffMaskModel(tiny, explains=tiny.identity(), variant="input").save_pretrained(tmp_path / "probes")
    masked = get_explainer("diffmask-input", tiny, source=tmp_path / "probes").explain(PREMISE, HYPOTHESIS)[0]
    attention = get_explainer("attention", tiny).explain(PREMISE, HYPOTHESIS)[0]
    for explanation in (masked, attention):
        assert explanation.text_pair == HYPOTHESIS and len(explanation.segment) == len(explanation.tokens)
        assert all(len(row) == len(explanation.tokens) for row in explanation.layer_scores)
    (record,) = attviz([attention])
    assert record["sets"][0]["tokens"] == attention.tokens  # both texts, separator included


def test_targets_of_pairs_keep_their_segments(bert, tmp_path):
    from empexp.targets import collate_targets, explain_chunk, finalize, load_targets, write_chunk

    chunk = explain_chunk(get_explainer("ig", bert, samples=2), [PREMISE, "awful"], 0, [HYPOTHESIS, "great"])
    write_chunk(tmp_path / "chunk-00000.safetensors", chunk, {})
    finalize(tmp_path, 2, 2, {})
    targets, _ = load_targets(tmp_path)
    batch = collate_targets(targets, bert.tokenizer.pad_token_id, bert.tokenizer.padding_side)
    expected = bert.collate(bert.encode([PREMISE, "awful"], [HYPOTHESIS, "great"]))
    assert torch.equal(batch.token_type_ids, expected.token_type_ids) and batch.token_type_ids.max() == 1
    assert torch.equal(batch.input_ids, expected.input_ids)
