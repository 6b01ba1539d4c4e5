"""The app served for real on localhost and called through gradio_client, as a user's script would."""

import pytest
import torch
from gradio_client import Client

from empexp.app import build_app
from empexp.classifier import Classifier
from empexp.imitator import EmpiricalModel
from empexp.probes import DiffMaskModel
from tests.conftest import serving


@pytest.fixture(scope="module")
def client(bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("explainers")
    imitates = {"ig": {"method": "ig", "samples": 20}, "sv": {"method": "sv", "samples": 20}}
    for method in ("ig", "sv"):
        torch.manual_seed(0)
        model = EmpiricalModel(bert, explains=bert.identity(), imitates=imitates[method], adapter={"r": 2, "alpha": 4})
        model.save_pretrained(folder / f"empirical-{method}")
    torch.manual_seed(0)
    EmpiricalModel(bert, explains=bert.identity(), imitates=imitates["ig"]).save_pretrained(folder / "head")
    DiffMaskModel(bert, explains=bert.identity(), variant="input").save_pretrained(folder / "diffmask-input")
    empirical = {
        "diffmask-input": folder / "diffmask-input",
        "empirical-ig": folder / "empirical-ig",
        "empirical-sv": folder / "empirical-sv",
        "empirical-ig-head": folder / "head",
        "empirical-sv-head": folder / "head",  # an IG head: refused with a message, the app still starts
    }
    with serving(build_app(bert, {name: str(path) for name, path in empirical.items()})) as url:
        yield Client(url, analytics_enabled=False, verbose=False)


def test_empirical_views_come_from_one_pass_each(client):
    client.predict("the movie was great", api_name="/explain_empirical")  # caches the baseline's logits
    probabilities, notice, *cards, raw = client.predict("the movie was great", api_name="/explain_empirical")
    assert probabilities["label"] in {"LABEL_0", "LABEL_1"} and notice == ""
    assert [e["method"] for e in raw] == ["empirical-ig", "empirical-ig-head", "empirical-sv"]
    views, costs = cards[0::2], cards[1::2]
    assert all("".join(span["token"] for span in view) == "the movie was great" for view in views)
    assert "2 model passes" in costs[0] and "1 model passes" in costs[1]


def test_explain_endpoint_with_defaults(client):
    probabilities, ig, ig_cost, sv, sv_cost, notice, raw = client.predict("the movie was great", api_name="/explain")
    assert probabilities["label"] in {"LABEL_0", "LABEL_1"}
    assert "".join(span["token"] for span in ig) == "the movie was great"
    assert "".join(span["token"] for span in sv) == "the movie was great"
    assert "Integrated Gradients" in ig_cost and "model passes" in ig_cost
    assert "Shapley" in sv_cost
    assert notice == ""
    assert [e["method"] for e in raw] == ["ig", "sv"] and raw[0]["samples"] == 20


def test_predict_endpoint(client):
    probabilities = client.predict("awful", api_name="/predict")
    assert abs(sum(probabilities.values()) - 1) < 1e-5


def test_long_text_gets_a_notice(client):
    *_, notice, raw = client.predict("good " * 200, 2, 1, 0, api_name="/explain")
    assert "limit" in notice and raw[0]["truncated"]


def test_blank_text_is_a_clear_error_and_the_app_keeps_serving(client):
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", api_name="/explain")
    assert client.predict("fun", api_name="/predict")


def test_a_device_out_of_memory_is_a_message_and_the_app_keeps_serving(client, monkeypatch):
    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with monkeypatch.context() as patched:
        patched.setattr(Classifier, "prediction_pass", out_of_memory)
        with pytest.raises(Exception, match="Out of device memory"):
            client.predict("fun", api_name="/predict")
    assert client.predict("fun", api_name="/predict")


def test_an_explainer_of_the_wrong_kind_is_reported_on_the_page(client):
    texts = [c.get("props", {}).get("value") for c in client.config["components"]]
    assert any(isinstance(t, str) and "Not loaded: empirical-sv-head" in t and "empirical-ig-head" in t for t in texts)


def test_internals_endpoint_shows_diffmask_and_attention(client):
    probabilities, keep, table, attention, series, raw = client.predict(
        "the movie was great", "input", "entropy", api_name="/explain_internals"
    )
    assert probabilities["label"] in {"LABEL_0", "LABEL_1"}
    assert keep is not None and series is not None
    assert "No validation metrics" in table  # these probes were never trained
    assert "".join(span["token"] for span in attention) == "the movie was great"
    assert [e["method"] for e in raw] == ["attention", "diffmask-input"]
    assert raw[0]["details"]["aggregation"] == "entropy" and len(raw[1]["layer_scores"]) == 4


def test_internals_without_probes_still_show_attention(client):
    _, keep, table, attention, _, raw = client.predict("awful", "hidden", "mean", api_name="/explain_internals")
    assert keep is None and "No diffmask-hidden probes" in table
    assert "".join(span["token"] for span in attention) == "awful"
    assert [e["method"] for e in raw] == ["attention"]
    with pytest.raises(Exception, match="not in the list of choices"):  # Gradio checks the dropdown's choices
        client.predict("awful", "input", "median", api_name="/explain_internals")
