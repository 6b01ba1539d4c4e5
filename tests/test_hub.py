"""Publishing and loading through a Hub-compatible server on localhost (olah + an upload front, see local_hub).

Each client runs in its own process with ``HF_ENDPOINT`` pointing at the local Hub and a fresh cache,
as a user's shell would: huggingface_hub reads its endpoint when imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from gradio_client import Client
from huggingface_hub import ModelCard, SpaceCard

from empexp.imitator import EmpiricalModel
from empexp.probes import METRICS, DiffMaskModel
from empexp.publish import SPACE_APP, space_requirements
from tests.conftest import make_tiny
from tests.local_hub import free_port, metadata_errors, serve, wait_for

ROOT = Path(__file__).resolve().parent.parent
TEXT = "the movie was great"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("hub")) as hub:
        yield hub


@pytest.fixture(scope="module")
def artefacts(bert, bert_path, tmp_path_factory):
    """A tiny classifier, an empirical explainer and DiffMask probes for it, and a second classifier."""
    folder = tmp_path_factory.mktemp("artefacts")
    torch.manual_seed(0)
    EmpiricalModel(bert, explains=bert.identity(), imitates={"method": "ig", "samples": 20}).save_pretrained(
        folder / "explainer"
    )
    DiffMaskModel(bert, explains=bert.identity(), variant="input").save_pretrained(folder / "probes")
    validation = {"kl": [0.0, 0.1, 0.2, 0.3], "agreement": [1.0, 0.9, 0.8, 0.7], "kept": [1.0, 0.6, 0.5, 0.4]}
    validation |= {"sampled_kl": [0.0, 0.1, 0.2, 0.3], "l0": [1.0, 0.6, 0.5, 0.4], "l0_by_class": [None, None]}
    (folder / "probes" / METRICS).write_text(json.dumps({**validation, "texts": 3, "step": 10}))
    make_tiny("roberta", folder / "other")
    return {
        "classifier": bert_path,
        "explainer": folder / "explainer",
        "probes": folder / "probes",
        "other": folder / "other",
    }


def client_env(hub, cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {
        **env,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(cache),
        "HF_TOKEN": "hf_local_test_token",
        "GRADIO_ANALYTICS_ENABLED": "False",
        **extra,
    }


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{args[:3]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result


def empexp(env, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(env, sys.executable, "-m", "empexp.cli", *args, check=check)


def python(env, code: str) -> dict:
    """Run ``code`` in a client process; it prints one JSON object last."""
    return json.loads(run(env, sys.executable, "-c", code).stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def published(hub, artefacts, tmp_path_factory):
    env = client_env(hub, tmp_path_factory.mktemp("publisher-cache"))
    empexp(env, "push", str(artefacts["classifier"]), "me/tiny-classifier")
    empexp(env, "push", str(artefacts["explainer"]), "me/tiny-explainer", "--classifier", "me/tiny-classifier")
    empexp(env, "push", str(artefacts["probes"]), "me/tiny-probes", "--classifier", "me/tiny-classifier")
    return env


def test_pushed_artefacts_load_back_by_repo_id_with_identical_outputs(hub, artefacts, published, tmp_path):
    env = client_env(hub, tmp_path / "cache")
    code = f"""
import json, torch
from empexp import get_explainer, load_classifier
local = load_classifier({str(artefacts["classifier"])!r})
remote = load_classifier("me/tiny-classifier")
pairs = [
    (get_explainer("empirical-ig-head", local, explainer={str(artefacts["explainer"])!r}),
     get_explainer("empirical-ig-head", remote, explainer="me/tiny-explainer")),
    (get_explainer("diffmask-input", local, probes={str(artefacts["probes"])!r}),
     get_explainer("diffmask-input", remote, probes="me/tiny-probes")),
]
gaps = [max(abs(a - b) for a, b in zip(x.explain({TEXT!r})[0].scores, y.explain({TEXT!r})[0].scores))
        for x, y in pairs]
logits = (local.predict([{TEXT!r}])[0].probabilities, remote.predict([{TEXT!r}])[0].probabilities)
validation = [pairs[1][0].validation, pairs[1][1].validation]
print(json.dumps({{"gaps": gaps, "probabilities": logits, "validation": validation}}))
"""
    result = python(env, code)
    assert result["gaps"] == [0.0, 0.0]
    # The probes' validation metrics ride along from the Hub, for the app's per-layer table.
    assert result["validation"][0] is not None and result["validation"][0] == result["validation"][1]
    assert result["probabilities"][0] == result["probabilities"][1]


def test_explainer_config_names_the_classifier_by_repo_id_and_commit(hub, published):
    classifier_sha = hub.resolve("models", "me/tiny-classifier", "main")
    for repo in ("me/tiny-explainer", "me/tiny-probes"):
        config = json.loads((hub.repo("models", repo) / "config.json").read_text())
        assert config["explains"]["name_or_path"] == "me/tiny-classifier"
        assert config["explains"]["revision"] == classifier_sha


def test_model_cards_carry_metadata_and_pass_validation(hub, published):
    for repo, tag in [("me/tiny-classifier", "text-classification"), ("me/tiny-explainer", "empirical-explainer")]:
        content = (hub.repo("models", repo) / "README.md").read_text()
        assert metadata_errors(content, "model") == []
        data = ModelCard(content, ignore_metadata_errors=False).data
        assert data.library_name == "empexp" and data.license == "apache-2.0" and tag in data.tags
        assert data.datasets == ["stanfordnlp/sst2"]
    probes = ModelCard((hub.repo("models", "me/tiny-probes") / "README.md").read_text()).data
    assert probes.base_model == "me/tiny-classifier" and "diffmask" in probes.tags


def test_a_pair_classifier_and_its_explainer_push_and_load_back_as_pairs(hub, published, tmp_path):
    mrpc = ROOT / "empexp" / "default" / "mrpc"
    empexp(published, "push", str(mrpc / "classifier"), "me/mrpc-classifier")
    explainer = str(mrpc / "empirical-ig-head")
    empexp(published, "push", explainer, "me/mrpc-explainer", "--classifier", "me/mrpc-classifier")
    card = ModelCard((hub.repo("models", "me/mrpc-classifier") / "README.md").read_text())
    assert "text-pair classifier" in card.text and "text_pairs=" in card.text
    assert card.data.datasets == ["nyu-mll/glue"] and metadata_errors(str(card), "model") == []
    explainer_card = ModelCard((hub.repo("models", "me/mrpc-explainer") / "README.md").read_text())
    assert explainer_card.data.datasets == ["nyu-mll/glue"]
    code = f"""
import json
from empexp import InputError, get_explainer, load_classifier
pair = ("A man plays a guitar.", "Someone makes music.")
answers = []
for model, source in (("embedded:mrpc", {explainer!r}), ("me/mrpc-classifier", "me/mrpc-explainer")):
    classifier = load_classifier(model)
    explanation = get_explainer("empirical-ig-head", classifier, source=source).explain(*pair)[0]
    try:
        classifier.predict([pair[0]])
        refused = False
    except InputError:
        refused = True
    answers.append({{"scores": explanation.scores, "segment": explanation.segment, "refused": refused}})
print(json.dumps(answers))
"""
    local, remote = python(client_env(hub, tmp_path / "cache"), code)
    assert remote == local and set(remote["segment"]) == {0, 1} and remote["refused"]  # a pair model refuses one text


def test_card_with_invalid_metadata_is_refused_by_the_upload(hub, published, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "README.md").write_text("---\nbase_model: not a repo id!\n---\n# bad\n")
    code = f"""
import json
from huggingface_hub import HfApi
try:
    HfApi().upload_folder(repo_id="me/tiny-classifier", folder_path={str(folder)!r})
    print(json.dumps({{"refused": False}}))
except ValueError as error:
    print(json.dumps({{"refused": True, "message": str(error)}}))
"""
    result = python(published, code)
    assert result["refused"] and "invalid repo id" in result["message"]


def test_push_refuses_an_explainer_for_another_classifier(hub, artefacts, published):
    empexp(published, "push", str(artefacts["other"]), "me/other-classifier")
    result = empexp(
        published, "push", str(artefacts["explainer"]), "me/wrong", "--classifier", "me/other-classifier", check=False
    )
    assert result.returncode == 1
    assert "trained for" in result.stderr and "Traceback" not in result.stderr
    assert not hub.repo("models", "me/wrong").exists()


def test_loading_an_explainer_on_another_classifier_is_refused(hub, published, tmp_path):
    env = client_env(hub, tmp_path / "cache")
    result = empexp(
        env, "explain", TEXT, "--model", "me/other-classifier", "--method", "empirical-ig-head",
        "--explainer", "me/tiny-explainer", check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "trained for" in result.stderr and "Traceback" not in result.stderr


def test_cli_explains_with_hub_ids_and_a_pinned_revision(hub, published, tmp_path):
    env = client_env(hub, tmp_path / "cache")
    sha = hub.resolve("models", "me/tiny-explainer", "main")
    result = empexp(
        env, "explain", TEXT, "--model", "me/tiny-classifier", "--method", "empirical-ig-head",
        "--explainer", "me/tiny-explainer", "--explainer-revision", sha,
    )  # fmt: skip
    explanation = json.loads(result.stdout)
    assert explanation["method"] == "empirical-ig-head" and len(explanation["scores"]) == len(explanation["tokens"])


def test_offline_mode_uses_the_cache_and_fails_fast_when_not_cached(hub, published, tmp_path):
    cache = tmp_path / "cache"
    empexp(client_env(hub, cache), "predict", TEXT, "--model", "me/tiny-classifier")  # fills the cache
    offline = client_env(hub, cache, HF_HUB_OFFLINE="1")
    assert json.loads(empexp(offline, "predict", TEXT, "--model", "me/tiny-classifier").stdout)["label"]
    start = time.monotonic()
    result = empexp(offline, "predict", TEXT, "--model", "me/never-cached", check=False)
    assert result.returncode == 1 and "not in the Hugging Face cache" in result.stderr
    assert time.monotonic() - start < 60  # no retries against a Hub it may not contact


def test_wrong_model_id_stops_app_py_with_one_clear_line(hub, tmp_path):
    # Against the local Hub, which answers 404 as the real one would (with no Hub at all, huggingface_hub
    # retries for ~25 s before the offline message, which tests/test_classifier.py checks in-process).
    result = run(client_env(hub, tmp_path / "cache"), sys.executable, "app.py", "--model", "no-such-user/no-such-model",
                 check=False)  # fmt: skip
    assert result.returncode == 1
    assert "cannot start: could not load 'no-such-user/no-such-model' from the Hugging Face Hub" in result.stderr
    assert "Traceback" not in result.stderr


def test_space_is_uploaded_and_the_app_starts_from_its_snapshot(hub, published, tmp_path):
    empexp(
        published, "space", "push", "me/empexp-space", "--model", "me/tiny-classifier",
        "--explainer", "empirical-ig-head=me/tiny-explainer", "--no-weights",
    )  # fmt: skip
    env = client_env(hub, tmp_path / "cache")
    snapshot = tmp_path / "space"  # real files: python resolves a symlinked app.py to the cache's blobs
    python(
        env,
        "from huggingface_hub import snapshot_download\n"
        f"snapshot_download('me/empexp-space', repo_type='space', local_dir={str(snapshot)!r})\nprint('{{}}')",
    )
    card = SpaceCard.load(snapshot / "README.md").data
    assert card.sdk == "gradio" and card.app_file == "app.py"
    assert card.models == ["me/tiny-classifier", "me/tiny-explainer"]
    assert not (snapshot / "empexp" / "default").exists() and (snapshot / "empexp" / "app").is_dir()
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=snapshot,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "app.log", "w"),  # noqa: SIM115 - closed with the process
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/", seconds=120)
        client = Client(f"http://127.0.0.1:{port}/", analytics_enabled=False, verbose=False)
        probabilities = client.predict(TEXT, api_name="/predict")
        assert abs(sum(probabilities.values()) - 1) < 1e-5
    finally:
        app.terminate()
        app.wait(timeout=30)


@pytest.mark.skipif(
    not os.environ.get("HF_TOKEN"), reason="no HF_TOKEN in the environment, so the real Hub round trip does not run"
)
def test_round_trip_on_the_real_hub(artefacts, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HOME")}
    env["HF_HOME"] = str(tmp_path / "cache")
    code = f"""
import json, uuid
from huggingface_hub import HfApi
from empexp import load_classifier
from empexp.publish import push_artefact
api = HfApi()
repo = api.whoami()["name"] + "/empexp-test-" + uuid.uuid4().hex[:8]
try:
    push_artefact({str(artefacts["classifier"])!r}, repo, private=True)
    same = load_classifier(repo).predict([{TEXT!r}])[0].probabilities == (
        load_classifier({str(artefacts["classifier"])!r}).predict([{TEXT!r}])[0].probabilities)
    print(json.dumps({{"same": same}}))
finally:
    api.delete_repo(repo, missing_ok=True)
"""
    assert python(env, code)["same"]


def test_a_plain_install_pushes_artefacts_and_the_space(hub, artefacts, tmp_path):
    """``pip install .`` (no editable link to this checkout) carries everything the push commands read."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(ROOT)],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    env = client_env(hub, tmp_path / "cache", PYTHONPATH=str(site))

    def installed(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]
        return result

    where = installed("-c", "import empexp; print(empexp.__file__)").stdout.strip()
    assert where.startswith(str(site)), where
    installed("-m", "empexp.cli", "push", str(artefacts["classifier"]), "me/plain-classifier")
    installed(
        "-m", "empexp.cli", "push", str(artefacts["probes"]), "me/plain-probes", "--classifier", "me/plain-classifier"
    )
    installed("-m", "empexp.cli", "space", "push", "me/plain-space", "--model", "me/plain-classifier", "--no-weights")
    card = ModelCard((hub.repo("models", "me/plain-probes") / "README.md").read_text())
    assert "diffmask" in card.data.tags and card.data.base_model == "me/plain-classifier"
    space = hub.repo("spaces", "me/plain-space")
    assert (space / "app.py").read_text() == SPACE_APP
    assert (space / "requirements.txt").read_text() == space_requirements()
    assert SpaceCard.load(space / "README.md").data.sdk == "gradio"
    assert (space / "empexp" / "model_cards" / "diffmask.md").is_file()


def test_pushing_with_the_hub_unreachable_says_so(hub, artefacts, tmp_path):
    nobody = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on
    env = {**client_env(hub, tmp_path / "cache"), "HF_ENDPOINT": nobody}
    for args in (["push", str(artefacts["explainer"]), "me/x"], ["space", "push", "me/space"]):
        result = empexp(env, *args, check=False)
        assert result.returncode == 1
        assert f"the Hub ({nobody}) cannot be reached" in result.stderr
        assert "Traceback" not in result.stderr
