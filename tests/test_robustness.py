"""The served app under bad input, broken artefacts, cancelled requests and 20 concurrent callers."""

from __future__ import annotations

import math
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from gradio_client import Client

from empexp import Explanation
from empexp.app import build_app
from empexp.app.views import word_groups
from empexp.imitator import EmpiricalModel
from empexp.probes import DiffMaskModel
from tests.conftest import make_tiny, serving

IMITATES = {"ig": {"method": "ig", "samples": 20}, "sv": {"method": "sv", "samples": 20}}
LONG = "the acting was fun but the plot was boring and " * 30


@pytest.fixture(scope="module")
def served(bert, tmp_path_factory):
    """The app on the tiny BERT with working explainers, and beside them a corrupt one, another
    classifier's, a wrong Hub id and an unknown explainer id (each must be reported, not fatal)."""
    folder = tmp_path_factory.mktemp("robust")
    torch.manual_seed(0)
    for method in ("ig", "sv"):
        adapter = {"r": 2, "alpha": 4}
        EmpiricalModel(bert, explains=bert.identity(), imitates=IMITATES[method], adapter=adapter).save_pretrained(
            folder / method
        )
    DiffMaskModel(bert, explains=bert.identity(), variant="input").save_pretrained(folder / "probes")
    shutil.copytree(folder / "ig", folder / "corrupt")
    (folder / "corrupt" / "model.safetensors").write_bytes(b"\x00not a safetensors file" * 10)
    from empexp.classifier import load_classifier

    other = load_classifier(make_tiny("roberta", folder / "roberta"))
    EmpiricalModel(other, explains=other.identity(), imitates=IMITATES["sv"]).save_pretrained(folder / "other")
    sources = {
        "empirical-ig": folder / "ig",
        "empirical-sv": folder / "sv",
        "diffmask-input": folder / "probes",
        "empirical-ig-head": folder / "corrupt",
        "empirical-sv-head": folder / "other",
        "diffmask-hidden": "no-such-user/no-such-probes",
        "empirical-xl": folder / "ig",
    }
    with serving(build_app(bert, {name: str(path) for name, path in sources.items()})) as url:
        yield url


@pytest.fixture(scope="module")
def client(served):
    return Client(served, analytics_enabled=False, verbose=False)


def page_texts(client: Client) -> list[str]:
    return [
        c["props"]["value"] for c in client.config["components"] if isinstance(c.get("props", {}).get("value"), str)
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("empirical-ig-head", "corrupt"),
        ("empirical-sv-head", "trained for"),
        ("diffmask-hidden", "could not load"),
        ("empirical-xl", "no such explainer"),
    ],
    ids=["corrupt safetensors", "another classifier's explainer", "wrong explainer id", "unknown explainer name"],
)
def test_broken_artefacts_are_reported_on_the_page_and_the_app_serves(client, source, message):
    problems = [t for t in page_texts(client) if t.startswith("⚠️ Not loaded")]
    assert len(problems) == 4, problems  # the working explainers loaded
    assert any(f"{source}:" in t and message in t.lower() for t in problems), problems
    assert client.predict("the movie was great", api_name="/predict")


TEXTS = {
    "emoji": "the movie was great 😍🎬👍🏽",
    "right-to-left": "הסרט היה נהדר and مذهل film",
    "combining characters": "cafe\u0301 re\u0301sume\u0301 a great film",
    "NUL and control characters": "the movie\x00 was\x07 great\x1b[31m \u200b fun",
    "script tag": "<script>alert(1)</script> a good movie",
    "img onerror": '<img src=x onerror="alert(1)"> a bad film',
    "50,000 characters": ("the plot was boring but the acting was fun " * 1200)[:50_000],
}


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_odd_text_is_explained_by_every_endpoint_and_nothing_is_rendered_unescaped(client, text):
    probabilities, notice, *cards, raw = client.predict(text, api_name="/explain_empirical")
    assert set(probabilities) == {"label", "confidences"}
    assert ("limit" in notice) == (len(text) == 50_000)
    for view in cards[0::2]:  # the user's text comes back whole, as text, in the highlighted spans
        spans = "".join(span["token"] for span in view)
        assert spans == text if len(text) < 50_000 else spans.startswith(text[:100])
    _, keep, _, _, series, raw = client.predict(text, "input", "mean", api_name="/explain_internals")
    for markup in (keep, series):
        assert "<script" not in markup and "<img" not in markup and "onerror=" not in markup.replace("&quot;", "")
        assert markup.count('<th class="token') == len(word_groups(Explanation.from_dict(raw[0])))  # words
    fast = client.predict(text, "hidden", "max", True, api_name="/explain_fast")
    assert [e["method"] for e in fast["explanations"]] == ["attention", "empirical-ig", "empirical-sv"]
    assert all(-1.0 <= f["comprehensiveness"] <= 1.0 for f in fast["faithfulness"])
    *_, raw = client.predict(text, 2, 1, 0, api_name="/explain")
    assert [e["text"] for e in raw] == [text, text]


BLANK = {"empty": "", "whitespace": " \n\t\u3000 "}


@pytest.mark.parametrize("text", BLANK.values(), ids=BLANK.keys())
@pytest.mark.parametrize("endpoint", ["predict", "explain_empirical", "explain_internals", "explain_fast", "explain"])
def test_blank_text_is_a_clear_error_from_every_endpoint(client, endpoint, text):
    with pytest.raises(Exception, match="the text is empty"):
        client.predict(text, api_name=f"/{endpoint}")
    assert client.predict("fun", api_name="/predict")


def test_unknown_choices_are_refused_with_a_message(client):
    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict("fun", "input", "median", api_name="/explain_internals")
    with pytest.raises(Exception, match="unknown aggregation"):
        client.predict("fun", "input", "median", api_name="/explain_fast")


@pytest.mark.timeout(120)
def test_a_cancelled_request_leaves_the_app_serving(client):
    job = client.submit(LONG, 100, 100, 0, api_name="/explain")
    time.sleep(0.5)
    job.cancel()
    assert client.predict("the movie was great", api_name="/predict")
    *_, raw = client.predict("awful", 2, 1, 0, api_name="/explain")
    assert [e["method"] for e in raw] == ["ig", "sv"]


@pytest.mark.timeout(120)
def test_expensive_requests_do_not_hold_up_cheap_ones(client):
    # Two of the most expensive requests the page allows, run one after the other: some seconds.
    expensive = [client.submit(LONG, 100, 100, seed, api_name="/explain") for seed in (1, 2)]
    time.sleep(0.3)  # the first is running, the second queued
    cheap = [client.predict("the movie was great", api_name="/explain_empirical") for _ in range(3)]
    assert not expensive[1].done(), "the expensive requests ended before the cheap ones: make them slower"
    assert all(c[-1] for c in cheap)
    assert all(job.result(timeout=100)[-1][0]["method"] == "ig" for job in expensive)


def stable(answer):
    """An answer without what differs between identical runs: timings."""
    if isinstance(answer, dict):
        return {k: stable(v) for k, v in answer.items() if k != "seconds"}
    if isinstance(answer, (list, tuple)):
        return [stable(v) for v in answer]
    if isinstance(answer, str) and answer.endswith(" ms"):
        return answer.rsplit("·", 1)[0]  # a cost line: its time
    return answer


def same(a, b) -> bool:
    """Equal, floats to 1e-5: matrix products split their sums differently when threads share the cores."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


MIXED = [
    ("predict", ("the movie was great",)),
    ("explain_empirical", ("not a good film",)),
    ("explain_internals", (LONG, "input", "entropy")),
    ("explain_fast", ("awful", "hidden", "std", True)),
    ("explain", ("the film is not bad", 4, 2, 1)),
    ("predict", (LONG,)),
    ("explain_empirical", (LONG,)),
    ("explain_internals", ("a very very good movie", "hidden", "min")),
    ("explain_fast", (LONG, "input", "mean", False)),
    ("explain", (LONG, 2, 1, 0)),
]


@pytest.mark.timeout(300)
def test_twenty_concurrent_callers_get_what_one_caller_gets(served, client):
    # Twice: the first run fills the caches (baseline logits per length) that the reported pass counts reflect.
    for _ in range(2):
        alone = [stable(client.predict(*args, api_name=f"/{endpoint}")) for endpoint, args in MIXED]
    callers = [Client(served, analytics_enabled=False, verbose=False) for _ in range(20)]

    def call(index: int) -> list:
        # Each caller starts at another point of the mix, so every kind of request meets every other.
        order = [(index + k) % len(MIXED) for k in range(len(MIXED))]
        answers = {}
        for k in order:
            endpoint, args = MIXED[k]
            answers[k] = stable(callers[index].predict(*args, api_name=f"/{endpoint}"))
        return [answers[k] for k in range(len(MIXED))]

    with ThreadPoolExecutor(20) as pool:
        together = list(pool.map(call, range(20)))
    for answers in together:
        for k, (answer, expected) in enumerate(zip(answers, alone)):
            assert same(answer, expected), MIXED[k][0]
