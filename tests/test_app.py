"""The app served for real on localhost and called through gradio_client, as a user's script would."""

import pytest
from gradio_client import Client

from empexp.app import build_app


@pytest.fixture(scope="module")
def client(bert):
    app = build_app(bert)
    app.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(app.local_url, analytics_enabled=False, verbose=False)
    finally:
        app.close()


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
