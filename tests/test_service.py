"""The app's service without Gradio: what IG and SV cost before they run, progress, Stop, pairs."""

from __future__ import annotations

import threading

import pytest

from empexp.app import ExplanationService, build_app
from empexp.app.service import Stopped
from empexp.app.views import PAIR_MARK
from empexp.classifier import INPUTS_KEY
from tests.conftest import serving

LONG = "the acting was fun but the plot was boring and " * 6


@pytest.fixture(scope="module")
def service(bert):
    return ExplanationService(bert, {})


@pytest.mark.parametrize(("text", "ig", "sv"), [("the movie was great", 20, 20), (LONG, 3, 2)])
def test_the_cost_said_before_a_run_is_the_passes_it_reports(service, text, ig, sv):
    estimate = service.expensive_cost(text, None, ig, sv)
    seen = []
    results = service.explain_expensive(text, None, ig, sv, 0, progress=lambda done, what: seen.append((done, what)))
    assert estimate.passes == sum(e.forward_passes for e in results) and estimate.seconds > 0
    assert "model passes" in estimate.line()
    assert seen[0][1] == "Integrated Gradients" and seen[-1][1] == "Shapley Value Sampling"
    assert seen[-1][0] == pytest.approx(1.0, abs=0.05)


@pytest.mark.timeout(60)
def test_stop_ends_a_run_at_its_next_pass_and_frees_the_worker(service):
    started, outcome = threading.Event(), {}

    def run() -> None:
        try:
            service.explain_expensive(LONG * 3, None, 100, 100, 0, session="a", progress=lambda *_: started.set())
        except Stopped as error:
            outcome["stopped"] = str(error)

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(30)
    service.stop("b")  # another session's Stop leaves this run alone
    assert worker.is_alive()
    service.stop("a")
    worker.join(5)
    assert not worker.is_alive() and "stopped" in outcome["stopped"]
    ig, sv = service.explain_expensive("awful", None, 2, 1, 0, session="a")  # a new run of that session runs
    assert (ig.method, sv.method) == ("ig", "sv")


def test_a_pair_classifier_gets_a_second_text_in_every_endpoint(bert, monkeypatch):
    from gradio_client import Client

    monkeypatch.setattr(bert.model.config, INPUTS_KEY, "pair", raising=False)
    with serving(build_app(bert, {})) as url:
        client = Client(url, analytics_enabled=False, verbose=False)
        with pytest.raises(Exception, match="takes text pairs"):
            client.predict("the movie was great", api_name="/predict")
        assert len(client.predict("the movie was great", "a fine film", api_name="/predict")) == 2
        probabilities, notice, raw = client.predict("the movie was great", "a fine film", api_name="/explain_empirical")
        assert probabilities["label"] and notice == "" and raw == []  # no empirical explainers given
        _, _, _, attention, _, raw = client.predict(
            "the movie was great", "input", "mean", "a fine film", api_name="/explain_internals"
        )
        assert "".join(span["token"] for span in attention) == f"the movie was great{PAIR_MARK}a fine film"
        assert raw[0]["text_pair"] == "a fine film" and set(raw[0]["segment"]) == {0, 1}
        fast = client.predict("the movie was great", "input", "mean", False, "a fine film", api_name="/explain_fast")
        assert fast["explanations"][0]["text_pair"] == "a fine film"
        *_, raw = client.predict("the movie was great", 2, 1, 0, "a fine film", api_name="/explain")
        assert [e["text_pair"] for e in raw] == ["a fine film"] * 2
        assert any(c.get("props", {}).get("label") == "Second text" for c in client.config["components"])
