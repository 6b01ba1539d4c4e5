"""Empirical explainers: training lowers the error, Hub-layout round trip, refusing other classifiers."""

import copy
import json

import pytest
import torch

from empexp import get_explainer, load_classifier
from empexp.cards import write_card
from empexp.errors import InputError, ModelLoadError
from empexp.imitator import EmpiricalModel, ScoreTotals, load_empirical, token_mse
from empexp.targets import Target, collate_targets
from tests.conftest import SENTENCES, make_tiny
from tests.test_cli import EXPLAIN_FIELDS, run

IMITATES = {"method": "ig", "samples": 4}
VARIANTS = {"encoder": {"r": 2, "alpha": 4}, "branch": {"r": 2, "alpha": 4}, "head": None}
"""LoRA settings per variant; ``branch`` copies only the last layer (``branch=1`` of the tiny models' 2)."""


def ig_targets(classifier) -> list[Target]:
    explanations = get_explainer("ig", classifier, samples=4).explain(SENTENCES)
    encoded = classifier.encode(SENTENCES)
    return [
        Target(i, torch.tensor(e.input_ids), torch.tensor(e.special), x.target, logits, torch.tensor(x.scores))
        for i, (e, x, logits) in enumerate(zip(encoded, explanations, logits_of(classifier)))
    ]


def logits_of(classifier) -> torch.Tensor:
    return torch.cat([classifier.logits(classifier.collate(classifier.encode([text]))) for text in SENTENCES])


def loss(model, classifier, batch) -> torch.Tensor:
    hidden = classifier.prediction_pass(batch, hidden_states=True).hidden_states if model.reads_hidden_states else None
    total, _ = ScoreTotals(classifier)(batch, batch.logits, batch.predicted)
    scores = model(batch, batch.predicted, hidden, total)
    return token_mse(scores, batch.attributions, batch.special_tokens_mask)


@pytest.fixture
def model_factory(tiny):
    def build(variant: str, int8: bool = False) -> EmpiricalModel:
        torch.manual_seed(0)
        branch = 1 if variant == "branch" else 0
        return EmpiricalModel(
            tiny, explains=tiny.identity(), imitates=IMITATES, adapter=VARIANTS[variant], branch=branch, int8=int8
        )

    return build


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_steps_reduce_the_error(tiny, model_factory, variant):
    model = model_factory(variant)
    batch = collate_targets(ig_targets(tiny), tiny.tokenizer.pad_token_id, tiny.tokenizer.padding_side)
    before = loss(model, tiny, batch).mean().item()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(40):
        optimizer.zero_grad()
        loss(model, tiny, batch).mean().backward()
        optimizer.step()
    assert loss(model, tiny, batch).mean().item() < 0.5 * before
    assert all(p.grad is None for p in tiny.model.parameters())  # the classifier itself stays frozen


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_and_load_give_identical_scores(tiny, model_factory, variant, tmp_path):
    model = model_factory(variant)
    with torch.no_grad():  # move LoRA off its zero init, so the round trip has something to lose
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.1)
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["explains"] == tiny.identity() and config["imitates"] == IMITATES

    name = "empirical-ig-head" if variant == "head" else "empirical-ig"
    loaded = get_explainer(name, tiny, source=tmp_path)
    batch = tiny.collate(tiny.encode(SENTENCES))
    prediction = tiny.prediction_pass(batch, hidden_states=True)
    logits, hidden = prediction.logits, prediction.hidden_states
    targets = logits.argmax(-1)
    with torch.no_grad():  # the inference form: LoRA merged into the copy
        expected = copy.deepcopy(model).ready()(batch, targets, hidden, ScoreTotals(tiny)(batch, logits, targets)[0])
    loaded.explain(SENTENCES)  # the first explanation of a length also runs the classifier on its baseline
    explanations = loaded.explain(SENTENCES)
    for row, keep, explanation in zip(expected, batch.attention_mask.bool(), explanations):
        torch.testing.assert_close(torch.tensor(explanation.scores), row[keep], atol=1e-5, rtol=1e-4)
    assert explanations[0].forward_passes == {"encoder": 2, "branch": 1.5, "head": 1}[variant]  # 1 of 2 layers
    if variant == "branch":
        card = write_card(tmp_path).read_text()
        assert "layers 2..2 that continues from the classifier's own layer 1" in card and "1/2 of an extra" in card
        assert f'source="{tmp_path}"' in card  # the option's current name
    assert explanations[0].details["imitates"] == IMITATES


@pytest.mark.parametrize("variant", ["encoder", "branch"])
def test_the_inference_form_keeps_the_scores_with_int8_weights(tiny, model_factory, variant, tmp_path):
    assert any(isinstance(m, torch.nn.Linear) for m in model_factory(variant).ready().encoder.modules())  # opt-in
    model = model_factory(variant, int8=True)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.1)
    batch = tiny.collate(tiny.encode(SENTENCES))
    prediction = tiny.prediction_pass(batch, hidden_states=True)
    targets, total = prediction.logits.argmax(-1), torch.zeros(len(SENTENCES))
    ready = copy.deepcopy(model).ready()
    assert not any(isinstance(m, torch.nn.Linear) for m in ready.encoder.modules())  # all int8 on a CPU
    with torch.no_grad():
        exact = model.eval()(batch, targets, prediction.hidden_states, total)
        quantised = ready(batch, targets, prediction.hidden_states, total)
    assert not torch.equal(quantised, exact)
    assert ((quantised - exact) ** 2).mean() < 0.01 * (exact**2).mean()
    model.save_pretrained(tmp_path)  # the setting travels in config.json
    with torch.no_grad():
        loaded = load_empirical(tmp_path, tiny)(batch, targets, prediction.hidden_states, total)
    torch.testing.assert_close(loaded, quantised, atol=1e-6, rtol=1e-5)


def test_a_branch_at_its_start_continues_the_classifiers_own_pass(tiny, model_factory):
    # LoRA starts at zero, so at the start every copy computes what the classifier computes: the scores of
    # a branch at each layer, of the whole copy and of the head on the classifier's states all agree.
    head = model_factory("head")
    batch = tiny.collate(tiny.encode(SENTENCES))
    prediction = tiny.prediction_pass(batch, hidden_states=True)
    targets = prediction.logits.argmax(-1)
    with torch.no_grad():
        expected = head(batch, targets, prediction.hidden_states, torch.zeros(len(targets)))
        for branch in range(tiny.model.config.num_hidden_layers):
            model = EmpiricalModel(tiny, explains=tiny.identity(), imitates=IMITATES, adapter=VARIANTS["branch"],
                                   branch=branch)  # fmt: skip
            model.head.load_state_dict(head.head.state_dict())
            scores = model.eval()(batch, targets, prediction.hidden_states, torch.zeros(len(targets)))
            torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="branch"):
        EmpiricalModel(tiny, explains=tiny.identity(), imitates=IMITATES, adapter=None, branch=1)


def test_explainer_for_another_classifier_is_refused(tiny, tiny_path, model_factory, tmp_path):
    model_factory("head").save_pretrained(tmp_path / "explainer")
    retrained = make_tiny(tiny.model.config.model_type, tmp_path / "other")
    with torch.no_grad():  # same architecture and vocabulary, other weights
        other = load_classifier(retrained)
        for parameter in other.model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)
    with pytest.raises(ModelLoadError, match="different weights"):
        load_empirical(tmp_path / "explainer", other)
    different_arch = load_classifier(
        make_tiny("bert" if tiny.model.config.model_type != "bert" else "roberta", tmp_path / "arch")
    )
    with pytest.raises(ModelLoadError, match=r"trained for .* not for"):
        load_empirical(tmp_path / "explainer", different_arch)


def test_bad_explainer_folders_get_clear_errors(bert, tmp_path):
    with pytest.raises(ModelLoadError, match=r"not an empirical explainer|could not load"):
        load_empirical(tmp_path, bert)  # empty folder
    EmpiricalModel(bert, explains=bert.identity(), imitates=IMITATES).save_pretrained(tmp_path / "ok")
    (tmp_path / "ok" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="unreadable"):
        load_empirical(tmp_path / "ok", bert)
    EmpiricalModel(bert, explains=bert.identity(), imitates=IMITATES, head_size=8).save_pretrained(tmp_path / "small")
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    (tmp_path / "small" / "config.json").write_text(json.dumps({**config, "head_size": 16}))
    with pytest.raises(ModelLoadError, match="does not match"):
        load_empirical(tmp_path / "small", bert)
    EmpiricalModel(bert, explains=bert.identity(), imitates=IMITATES).save_pretrained(tmp_path / "head")
    with pytest.raises(InputError, match="use it with method 'empirical-ig-head'"):
        get_explainer("empirical-ig", bert, source=tmp_path / "head")
    with pytest.raises(InputError, match="needs an empirical explainer"):
        get_explainer("empirical-sv", bert)


@pytest.mark.parametrize("method", ["empirical-ig", "empirical-ig-head"])
def test_cli_explain_with_an_empirical_explainer_prints_the_ig_schema(capsys, bert, bert_path, tmp_path, method):
    adapter = VARIANTS["encoder" if method == "empirical-ig" else "head"]
    EmpiricalModel(bert, explains=bert.identity(), imitates=IMITATES, adapter=adapter).save_pretrained(tmp_path)
    code, records, _ = run(capsys, "explain", "--model", bert_path, "--method", method, "--explainer", tmp_path,
                           *SENTENCES[:3])  # fmt: skip
    _, reference, _ = run(capsys, "explain", "--model", bert_path, "--method", "ig", "--samples", 2, SENTENCES[0])
    assert code == 0 and len(records) == 3
    assert records[0].keys() == reference[0].keys() and records[0].keys() >= EXPLAIN_FIELDS
    assert records[0]["method"] == method and records[0]["details"]["imitates"] == IMITATES
    assert len(records[0]["scores"]) == len(records[0]["tokens"])
    assert records[0]["label"] == reference[0]["label"]


def test_complete_scores_add_up_like_integrated_gradients(bert, tmp_path):
    EmpiricalModel(bert, explains=bert.identity(), imitates=IMITATES).save_pretrained(tmp_path)
    explainer = get_explainer("empirical-ig-head", bert, source=tmp_path)
    first, again = explainer.explain(SENTENCES[2]), explainer.explain(SENTENCES[2])
    ig = get_explainer("ig", bert, samples=20).explain(SENTENCES[2])[0]
    # IG's scores add up to f(input) - f(baseline) (completeness), and so do the empirical ones.
    assert sum(first[0].scores) == pytest.approx(sum(ig.scores), abs=1e-2)
    assert first[0].forward_passes == 2 and again[0].forward_passes == 1  # the baseline's logits are cached
