"""DiffMask: Hard Concrete statistics, hook points on four architectures, masking, Hub layout, toy ground truth."""

import math

import pytest
import torch

from empexp import get_explainer, layers, load_classifier, toy
from empexp.errors import InputError, ModelLoadError
from empexp.probes import (
    DiffMaskModel,
    HardConcrete,
    LookaheadRMSprop,
    better,
    class_auc,
    class_spread,
    keep_spread,
    load_diffmask,
    probe_optimisers,
)
from tests.conftest import SENTENCES, make_tiny
from tests.test_cli import EXPLAIN_FIELDS, run


def test_hard_concrete_keep_rate_matches_closed_form_expected_l0():
    torch.manual_seed(0)
    logits = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0])
    samples = HardConcrete(logits.expand(40000, -1)).rsample()
    # Stretched to (-0.2, 1.0) then clamped: exact zeros occur (r = 1 leaves no exact ones).
    assert samples.min() == 0.0 and samples.max() <= 1.0
    keep_rate = (samples > 0).float().mean(0)
    expected = HardConcrete(logits).log_expected_l0().exp()
    assert torch.allclose(keep_rate, expected, atol=0.01)
    assert expected.diff().gt(0).all()  # monotone in the logits


def test_hard_concrete_gradients_reach_the_logits():
    logits = torch.zeros(1000, requires_grad=True)
    HardConcrete(logits).rsample().sum().backward()
    assert logits.grad.abs().sum() > 0


def test_hook_points_are_found_by_structure(tiny):
    model = tiny.model
    assert len(layers.encoder_layers(model)) == model.config.num_hidden_layers
    probes = DiffMaskModel(tiny, explains=tiny.identity(), variant="hidden")
    batch = tiny.collate(tiny.encode(SENTENCES[:3]))
    hidden_states = tiny.prediction_pass(batch, hidden_states=True).hidden_states
    states = probes.states(tiny, batch, hidden_states)
    assert len(states) == model.config.num_hidden_layers + 2
    seen = {}

    def record(point):
        def replace(state):
            seen[point] = state.detach().clone()
            return state

        return replace

    with layers.replaced_states(model, {point: record(point) for point in range(len(states))}):
        tiny.logits(batch)
    for point, state in enumerate(states):
        assert seen[point].shape == state.shape, point
        assert torch.allclose(seen[point], state, atol=1e-5), point


@pytest.mark.parametrize("variant", ["input", "hidden"])
def test_open_gates_leave_the_output_unchanged_and_closed_ones_do_not(tiny, variant):
    probes = DiffMaskModel(tiny, explains=tiny.identity(), variant=variant)
    batch = tiny.collate(tiny.encode(SENTENCES[:4]))
    original = tiny.logits(batch)
    open_gates = torch.ones(batch.input_ids.shape)
    closed = torch.zeros(batch.input_ids.shape).masked_fill(batch.special_tokens_mask, 1.0)
    for point in range(probes.points):
        with torch.no_grad():
            assert torch.allclose(probes.masked_logits(tiny, batch, point, open_gates), original, atol=1e-5)
            if variant == "input" or point < probes.points - 1:  # the last output of XLNet/CLS-only heads may ignore it
                assert not torch.allclose(probes.masked_logits(tiny, batch, point, closed), original, atol=1e-6)


def test_probes_start_with_every_gate_open(bert):
    probes = DiffMaskModel(bert, explains=bert.identity(), variant="hidden")
    batch = bert.collate(bert.encode(SENTENCES))
    hidden = bert.prediction_pass(batch, hidden_states=True).hidden_states
    with torch.no_grad():
        logits = probes.gate_logits(probes.states(bert, batch, hidden))
        keep = probes.keep_probabilities(logits, probes.ungated(batch))
        gates = probes.gates(logits, probes.ungated(batch), sample=False)
    assert torch.allclose(logits, torch.full_like(logits, 5.0))
    assert keep.min() > 0.99 and gates.min() > 0.99


def test_training_step_moves_gates_and_multiplier_in_the_right_directions(bert):
    bert.model.requires_grad_(False)
    probes = DiffMaskModel(bert, explains=bert.identity(), variant="input", margin=10.0)
    batch = bert.collate(bert.encode(SENTENCES))
    loss, parts = probes(bert, batch, point=1)
    loss.backward()
    # A margin no masking can exceed: closing gates only helps, so every probe bias is pushed down...
    assert probes.probes[0].bias.grad > 0 and probes.probes[1].bias.grad > 0
    # ...points after 1 are not even in the graph, nor are their multipliers...
    assert all(p.grad is None for p in probes.probes[2].parameters())
    assert [m.grad is None for m in probes.multipliers] == [i != 1 for i in range(probes.points)]
    # ...and the multiplier's gradient is KL - margin < 0: ascent lowers it towards 0.
    assert probes.multipliers[1].grad == pytest.approx(parts["kl"] - 10.0, abs=1e-4)
    bert.model.requires_grad_(True)


def test_multipliers_aim_below_the_margin_when_asked(bert):
    bert.model.requires_grad_(False)
    assert DiffMaskModel(bert, explains=bert.identity(), margin=0.1).aim == 0.1
    probes = DiffMaskModel(bert, explains=bert.identity(), variant="hidden", margin=0.1, aim=0.07)
    loss, parts = probes(bert, bert.collate(bert.encode(SENTENCES)), point=2)
    loss.backward()
    assert probes.multipliers[2].grad == pytest.approx(parts["kl"] - 0.07, abs=1e-4)
    bert.model.requires_grad_(True)


def test_leakage_penalty_is_zero_for_equal_class_keep_rates_and_pulls_the_classes_together(bert):
    predicted = torch.tensor([0, 0, 1, 1])
    assert class_spread(torch.tensor([0.1, 0.1, 0.1, 0.1]), predicted) == pytest.approx(0.0, abs=1e-7)
    log_odds = math.log(0.2 / 0.8) - math.log(0.1 / 0.9)
    assert class_spread(torch.tensor([0.2, 0.2, 0.1, 0.1]), predicted) == pytest.approx((log_odds / 2) ** 2)
    # Unbiased: the halves (texts 0, 2 and 1, 3) disagree on which class keeps more, so their spreads cancel.
    assert class_spread(torch.tensor([0.1, 0.3, 0.2, 0.2]), predicted) < 0
    assert class_spread(torch.tensor([0.2, 0.1, 0.3, 0.4]), torch.tensor([1, 1, 0, 0])) > 0
    assert class_spread(torch.tensor([0.2, 0.1, 0.3, 0.4]), torch.tensor([1, 1, 1, 0])) == 0.0  # one class in a half
    bert.model.requires_grad_(False)
    batch = bert.collate(bert.encode(SENTENCES))
    plain = DiffMaskModel(bert, explains=bert.identity(), variant="hidden")
    penalised = DiffMaskModel(bert, explains=bert.identity(), variant="hidden", leakage=4.0)
    penalised.load_state_dict(plain.state_dict())
    with torch.no_grad():  # keep rates that differ from text to text, so that classes can differ too
        for probes in (plain, penalised):
            probes.probes[2].bias.fill_(-0.5)
    torch.manual_seed(0)
    loss, parts = plain(bert, batch, point=2)
    torch.manual_seed(0)
    penalised_loss, penalised_parts = penalised(bert, batch, point=2)
    assert "leakage" not in parts
    assert penalised_loss.item() == pytest.approx(loss.item() + 4.0 * penalised_parts["leakage"], abs=1e-5)
    bert.model.requires_grad_(True)


def test_class_auc_tells_how_well_values_separate_class_0_from_the_rest():
    values = torch.tensor([[0.9, 0.5], [0.8, 0.5], [0.1, 0.5], [0.2, 0.5]])
    assert class_auc(values, torch.tensor([0, 0, 1, 2])) == [1.0, 0.5]
    assert class_auc(values, torch.tensor([2, 2, 0, 0])) == [0.0, 0.5]
    assert class_auc(values, torch.tensor([1, 1, 1, 1])) is None


def test_keep_spread_across_runs_is_zero_for_equal_probes_and_seen_only_where_they_differ(bert):
    batches = [bert.collate(bert.encode(SENTENCES))]
    first = DiffMaskModel(bert, explains=bert.identity(), variant="hidden")
    second = DiffMaskModel(bert, explains=bert.identity(), variant="hidden")
    assert keep_spread([first, second], bert, batches) == [0.0] * first.points
    with torch.no_grad():
        second.probes[3].bias.fill_(-1.0)  # keep probability 0.995 -> ~0.3 at point 3 only
    spread = keep_spread([first, second], bert, batches)
    assert spread[3] > 0.3 and spread[:3] + spread[4:] == [0.0] * (first.points - 1)


@pytest.mark.parametrize("variant", ["input", "hidden"])
def test_a_step_moves_only_what_the_sampled_point_uses(bert, variant):
    bert.model.requires_grad_(False)
    probes = DiffMaskModel(bert, explains=bert.identity(), variant=variant)
    with torch.no_grad():  # half-open gates: with all gates open, as they start, no gradient reaches a baseline
        for probe in probes.probes:
            probe.bias.zero_()
    optimisers = probe_optimisers(probes, lr=1e-3, baseline_lr=1e-3, multiplier_lr=0.3, warmup_steps=1)
    before = {name: p.detach().clone() for name, p in probes.named_parameters()}
    batch = bert.collate(bert.encode(SENTENCES))
    for _ in range(3):
        loss, _ = probes(bert, batch, point=1)
        loss.backward()
        optimisers.step(probes)
    moved = {name.split(".")[0] + "." + name.split(".")[1] for name, p in probes.named_parameters()
             if not torch.equal(p, before[name])}  # fmt: skip
    used = {"probes.0", "probes.1"} if variant == "input" else {"probes.1"}
    assert moved == used | {"multipliers.1", "baselines.0" if variant == "input" else "baselines.1"}
    assert not any(state for p, state in optimisers.probes.state.items() if p is probes.probes[2].bias)
    bert.model.requires_grad_(True)


def test_lookahead_pulls_back_every_k_steps_and_skips_parameters_without_gradients():
    moving, idle = torch.nn.Parameter(torch.tensor(0.0)), torch.nn.Parameter(torch.tensor(0.0))
    plain = torch.nn.Parameter(torch.tensor(0.0))
    lookahead = LookaheadRMSprop([moving, idle], lr=0.1, k=3, alpha=0.5)
    rmsprop = torch.optim.RMSprop([plain], lr=0.1)
    for step in range(1, 4):
        for p, optimiser in ((moving, lookahead), (plain, rmsprop)):
            p.grad = torch.tensor(-1.0)
            optimiser.step()
        if step < 3:
            assert moving.item() == pytest.approx(plain.item())
    assert moving.item() == pytest.approx(plain.item() / 2)  # half-way back to the start
    assert idle.item() == 0.0 and idle not in lookahead.state


def test_special_tokens_are_gated_only_when_asked(bert):
    batch = bert.collate(bert.encode(SENTENCES[:2]))
    kept = DiffMaskModel(bert, explains=bert.identity())
    gated = DiffMaskModel(bert, explains=bert.identity(), gate_special=True)
    assert torch.equal(kept.ungated(batch), batch.special_tokens_mask)
    assert torch.equal(gated.ungated(batch), batch.attention_mask == 0)
    assert gated.ungated(batch)[:, 0].sum() == 0  # [CLS] is gated


def test_checkpoint_rule_needs_the_sampled_kl_within_the_margin_with_confidence():
    base = {"sampled_kl": [0.02, 0.04], "sampled_kl_se": [0.001, 0.002], "l0": [0.9, 0.5]}
    assert better(base, None, margin=0.05)
    assert not better({**base, "sampled_kl_se": [0.001, 0.006]}, None, margin=0.05)  # 0.04 + 2 x 0.006 > 0.05
    assert better({**base, "l0": [0.9, 0.4]}, base, margin=0.05)
    assert not better({**base, "l0": [0.9, 0.6]}, base, margin=0.05)


def test_measuring_neither_depends_on_nor_disturbs_the_random_state():
    model = toy.ToyModel()
    probes = toy.ToyDiffMask(model)
    data = toy.make_data(64, seed=3)
    torch.manual_seed(1)
    first = probes.evaluate(model, data)
    after = torch.rand(())
    torch.manual_seed(2)
    second = probes.evaluate(model, data)
    torch.manual_seed(1)
    assert torch.equal(first["sampled_kl"], second["sampled_kl"]) and torch.rand(()) == after


def test_toy_data_follows_the_paper():
    data = toy.make_data(20000, seed=0)
    real = ~data.padding
    assert data.lengths.min() == 1 and data.lengths.max() == toy.MAX_LENGTH
    assert (data.queries[:, 0] != data.queries[:, 1]).all()
    share = data.relevant.sum() / real.sum()
    assert share.item() == pytest.approx(0.5, abs=0.01)  # P(n) = P(m) = 0.25
    counts = [((data.digits == data.queries[:, i : i + 1]) & real).sum(-1) for i in (0, 1)]
    assert torch.equal(data.labels, (counts[0] > counts[1]).long())
    assert (counts[0] == counts[1]).float().mean() > 0.1  # ties happen, labelled "not more frequent"


def test_probes_round_trip_and_refuse_other_classifiers(bert, tmp_path):
    probes = DiffMaskModel(bert, explains=bert.identity(), variant="input")
    with torch.no_grad():
        probes.probes[1].bias.fill_(-2.0)
    probes.save_pretrained(tmp_path / "probes")
    loaded = load_diffmask(tmp_path / "probes", bert)
    batch = bert.collate(bert.encode(SENTENCES))
    hidden = bert.prediction_pass(batch, hidden_states=True).hidden_states
    with torch.no_grad():
        expected = probes.gate_logits(probes.states(bert, batch, hidden))
        assert torch.equal(loaded.gate_logits(loaded.states(bert, batch, hidden)), expected)
    other = load_classifier(make_tiny("electra", tmp_path / "electra"))
    with pytest.raises(ModelLoadError, match=r"trained for .* not for"):
        load_diffmask(tmp_path / "probes", other)
    (tmp_path / "probes" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="unreadable"):
        load_diffmask(tmp_path / "probes", bert)
    with pytest.raises(ModelLoadError, match=r"not DiffMask probes|could not load"):
        load_diffmask(tmp_path, bert)


def test_explainer_returns_keep_probabilities_per_layer(tiny, tmp_path):
    DiffMaskModel(tiny, explains=tiny.identity(), variant="hidden").save_pretrained(tmp_path / "hidden")
    explainer = get_explainer("diffmask-hidden", tiny, source=tmp_path / "hidden", point=1)
    for explanation in explainer.explain(SENTENCES[:3]):
        points = tiny.model.config.num_hidden_layers + 2
        assert len(explanation.layer_scores) == points == len(explanation.details["layer_names"])
        assert explanation.scores == explanation.layer_scores[1]
        assert all(0.0 <= v <= 1.0 for row in explanation.layer_scores for v in row)
        assert explanation.forward_passes == 1
    with pytest.raises(InputError, match="use them with method 'diffmask-hidden'"):
        get_explainer("diffmask-input", tiny, source=tmp_path / "hidden")
    with pytest.raises(InputError, match="needs DiffMask probes"):
        get_explainer("diffmask-input", tiny)
    with pytest.raises(InputError, match="point must be"):  # layer: the older name of point
        get_explainer("diffmask-hidden", tiny, source=tmp_path / "hidden", layer=99)


def test_cli_diffmask(capsys, bert, bert_path, tmp_path):
    DiffMaskModel(bert, explains=bert.identity(), variant="input").save_pretrained(tmp_path / "input")
    argv = ["explain", "--model", bert_path, "--method", "diffmask-input", "--explainer", tmp_path / "input"]
    code, records, _ = run(capsys, *argv, "the movie was great")
    assert code == 0
    (record,) = records
    assert set(record) >= EXPLAIN_FIELDS | {"layer_scores"}
    assert len(record["layer_scores"]) == bert.model.config.num_hidden_layers + 2


@pytest.mark.slow
def test_toy_task_probes_keep_exactly_the_query_digits():
    """The paper's ground truth (Table 1): at the feed-forward output only the n and m occurrences matter."""
    torch.set_num_threads(1)  # results depend on the thread count; one thread is the same everywhere
    model = toy.train_model(seed=0)
    test = toy.make_data(2000, seed=2)
    assert toy.accuracy(model, test) >= 0.99
    probes, info = toy.restarts(model, seeds=[0, 1, 2], steps=4000)
    assert info["selected"] is not None
    quality = toy.mask_quality(probes, model, test)
    point = toy.GATED_POINT
    # Goals, with the paper's Table 1 beside them (KL 0.01, JS 0.00); runs reach about 0.005 / 0.002.
    assert quality["table1_kl"][point] <= 0.05 and quality["table1_js"][point] <= 0.02, quality
    assert quality["precision"][point] >= 0.95 and quality["recall"][point] >= 0.95, quality
    assert quality["agreement"][point] >= 0.99, quality
    assert max(quality["sampled_kl"]) <= probes.margin, quality
    # The digit embeddings cannot tell which digits are queried: every digit is kept there.
    assert quality["recall"][0] >= 0.99, quality


def test_layer_lookup_uses_the_named_path_and_refuses_to_guess(bert, monkeypatch):
    model = bert.model
    assert layers.encoder_layers(model) is model.base_model.encoder.layer
    # An unknown architecture with two candidate lists of the right length: no guess, a message saying what to do.
    monkeypatch.setattr(model.config, "model_type", "unheard-of")
    model.base_model.extra = torch.nn.ModuleList(torch.nn.Identity() for _ in range(model.config.num_hidden_layers))
    try:
        with pytest.raises(ValueError, match=r"several lists .*encoder\.layer.*extra.*LAYER_PATHS\['unheard-of'\]"):
            layers.encoder_layers(model)
        monkeypatch.setitem(layers.LAYER_PATHS, "unheard-of", "encoder.layer")
        assert layers.encoder_layers(model) is model.base_model.encoder.layer
        monkeypatch.setitem(layers.LAYER_PATHS, "unheard-of", "extra.0")
        with pytest.raises(ValueError, match="not a list of"):
            layers.encoder_layers(model)
    finally:
        del model.base_model.extra
