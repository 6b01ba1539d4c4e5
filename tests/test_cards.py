"""Model cards: metadata and numbers come from the files the runs wrote, never typed by hand."""

import json

import pytest
from huggingface_hub import ModelCard

from empexp.cards import artefact_kind, command_line, write_card
from empexp.errors import ModelLoadError
from empexp.probes import METRICS, DiffMaskModel
from tests.local_hub import metadata_errors


def test_probe_card_reports_the_measured_metrics_per_layer(bert, tmp_path):
    folder = tmp_path / "probes"
    DiffMaskModel(bert, explains=bert.identity(), variant="hidden").save_pretrained(folder)
    points = bert.model.config.num_hidden_layers + 2
    metrics = {
        "step": 7,
        "texts": 12,
        "kl": [0.01 * (i + 1) for i in range(points)],
        "sampled_kl": [0.02 * (i + 1) for i in range(points)],
        "agreement": [1.0 - 0.1 * i for i in range(points)],
        "kept": [0.9 - 0.2 * i for i in range(points)],
        "l0": [0.95 - 0.2 * i for i in range(points)],
        "l0_by_class": [[0.9 - 0.2 * i for i in range(points)], None],
        "args": {"data": "train.tsv", "variant": "hidden", "steps": 7, "full": False, "labels": ["a", "b"]},
    }
    (folder / METRICS).write_text(json.dumps(metrics))
    card = ModelCard.load(write_card(folder, repo_id="me/probes", classifier="me/classifier"))
    assert metadata_errors(str(card), "model") == []
    assert card.data.base_model == "me/classifier" and "diffmask-hidden" in card.data.tags
    kl = {r.metric_name: r.metric_value for r in card.data.eval_results if r.metric_type == "kl_divergence"}
    assert list(kl.values()) == metrics["sampled_kl"] and "sampled KL (word embeddings)" in kl
    assert "| word embeddings | 0.0100 | 0.0200 | 1.000 | 0.900 | 0.950 | 0.900 / - |" in card.text
    assert (
        "accelerate launch training/train_diffmask.py --data train.tsv --variant hidden --steps 7 --labels a b"
        in card.text
    )
    assert "resumed with a different `--aim`" not in card.text  # one aim: the command says it all
    (folder / METRICS).write_text(json.dumps({**metrics, "aims": [[0, 0.07], [2000, 0.05]]}))
    assert "0.07 from step 0, 0.05 from step 2,000" in ModelCard.load(write_card(folder)).text


def test_card_without_metrics_says_so(bert, tmp_path):
    DiffMaskModel(bert, explains=bert.identity()).save_pretrained(tmp_path / "probes")
    card = ModelCard.load(write_card(tmp_path / "probes"))
    assert card.data.eval_results is None and "Nothing measured yet." in card.text


def test_command_line_quotes_and_skips_unset_options():
    line = command_line("training/x.py", {"data": "my data.tsv", "seed": 0, "model": None, "quiet": True})
    assert line == "accelerate launch training/x.py --data 'my data.tsv' --seed 0 --quiet"


def test_a_folder_that_is_no_artefact_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        artefact_kind(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="not that of an empexp"):
        artefact_kind(tmp_path)
