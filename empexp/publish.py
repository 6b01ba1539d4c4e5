"""Publish trained artefacts and the app (as a Gradio Space) on the Hugging Face Hub.

One way for every artefact: :func:`push_artefact` (``empexp push DIR REPO_ID`` and the training
scripts' ``--push-to-hub``) stages the folder, writes its model card from the measured metrics, and
uploads it with ``HfApi.upload_folder`` (safetensors and JSON only). :func:`push_space` uploads the
app, the library and, where asked, the embedded default, with the Space's configuration.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from huggingface_hub import CommitInfo, HfApi, SpaceCard, constants
from huggingface_hub.errors import HfHubHTTPError

from empexp.artefact import check_identity
from empexp.cards import artefact_kind, write_card
from empexp.classifier import load_classifier
from empexp.errors import EmpexpError, ModelLoadError, PublishError
from empexp.hub import SPACE_CONFIG, hub_reachable, transport_errors

PACKAGE = Path(__file__).resolve().parent
# Weights travel as safetensors only: pickle-based files and training leftovers are never uploaded.
UPLOADED = ["*.json", "*.safetensors", "README.md", "*.txt", "*.model"]
SPACE_APP = '''"""empexp's Gradio app and the entry point of its Space: ``python app.py --help``."""

from pathlib import Path

from empexp.app.entry import main

if __name__ == "__main__":
    main(Path(__file__).parent)
'''
"""The Space's ``app.py``, the same as the repository's (a test keeps them equal): the package carries
everything a Space needs, so ``empexp space push`` works from a plain ``pip install``."""


def space_requirements() -> str:
    """The Space's ``requirements.txt``: the installed package's dependencies, with torch's CPU build."""
    needed = [r for r in metadata.requires("empexp") or [] if "extra ==" not in r]
    header = [
        "# The Space's dependencies: pyproject.toml's, with torch's CPU build (empexp.publish.space_requirements).",
        "--extra-index-url https://download.pytorch.org/whl/cpu",
    ]
    return "\n".join(header + needed) + "\n"


def space_card() -> SpaceCard:
    """The Space's card: the package's README (its long description), whose front matter configures the Space."""
    return SpaceCard(metadata.metadata("empexp").get_payload())


def push_artefact(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    classifier: str | None = None,
    classifier_revision: str | None = None,
    dataset: str | None = None,
    token: str | None = None,
) -> CommitInfo:
    """Upload a classifier, empirical explainer or DiffMask probes folder to ``repo_id`` with its model card.

    For an explainer or probes, ``classifier`` names the published classifier they belong to: it is
    loaded (at ``classifier_revision``, default its newest commit), checked to be the one they were
    trained for, and recorded in the uploaded ``config.json`` by repo id and commit sha. ``dataset``
    (the training data's Hub id) defaults to the one the folder's card names, else SST-2.

    Raises:
        ModelLoadError: not an empexp artefact, or ``classifier`` is not the one it was trained for.
        PublishError: the Hub refused the upload or could not be reached.
    """
    folder = Path(folder)
    kind = artefact_kind(folder)
    _check_reachable(repo_id)
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as staging:
        staged = Path(staging) / folder.name
        shutil.copytree(folder, staged, ignore=_not_uploaded)
        if classifier and kind != "classifier":
            with _hub_errors(classifier):
                _name_classifier(staged, classifier, classifier_revision, api)
        write_card(staged, repo_id=repo_id, dataset=dataset, classifier=classifier)
        message = f"Upload {kind} with empexp"
        with _hub_errors(repo_id):
            api.create_repo(repo_id, private=private, exist_ok=True)
            return api.upload_folder(
                repo_id=repo_id, folder_path=staged, commit_message=message, allow_patterns=UPLOADED
            )


def _check_reachable(repo_id: str) -> None:
    """Refuse at once, before anything is staged, when the Hub cannot be reached: one plain message
    whatever the HTTP client would raise."""
    if not hub_reachable():
        hub = f"the Hub ({constants.ENDPOINT})"
        why = (
            f"HF_HUB_OFFLINE is set, so {hub} is not contacted"
            if constants.HF_HUB_OFFLINE
            else f"{hub} cannot be reached"
        )
        raise PublishError(f"could not publish to {repo_id!r}: {why}")


@contextmanager
def _hub_errors(repo_id: str) -> Iterator[None]:
    """Hub refusals (no token or write access, invalid card metadata) and network failures, for users."""
    try:
        yield
    except (HfHubHTTPError, ValueError, OSError, *transport_errors()) as error:
        if isinstance(error, EmpexpError):
            raise
        raise PublishError(f"could not publish to {repo_id!r}: {error}") from error


def _not_uploaded(directory: str, names: list[str]) -> set[str]:
    return {name for name in names if (Path(directory) / name).is_dir() or name.endswith(".jsonl")}


def _name_classifier(staged: Path, classifier: str, revision: str | None, api: HfApi) -> None:
    sha = api.model_info(classifier, revision=revision).sha
    loaded = load_classifier(classifier, revision=sha)
    config_path = staged / "config.json"
    config = json.loads(config_path.read_text())
    check_identity(config["explains"], loaded)
    config["explains"] = {**config["explains"], "name_or_path": classifier, "revision": sha}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def push_space(
    repo_id: str,
    *,
    model: str | None = None,
    explainers: Mapping[str, str] | None = None,
    weights: bool = True,
    private: bool = False,
    token: str | None = None,
) -> CommitInfo:
    """Upload the app as a Gradio Space: ``app.py``, the library, ``requirements.txt`` and the README.

    ``model`` and ``explainers`` (registry id -> Hub id) are written to the Space's configuration
    (:data:`SPACE_CONFIG`) and listed under ``models:`` in its card; ``weights`` also uploads the
    embedded default (``empexp/default``), which the app uses when no ``model`` is configured.

    Raises:
        ModelLoadError: no ``model`` and no embedded weights, so the Space would have nothing to show.
        PublishError: the Hub refused the upload or could not be reached.
    """
    if not weights and model is None:
        raise ModelLoadError("a Space without the embedded weights needs a classifier's Hub id (model)")
    _check_reachable(repo_id)
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as staging:
        staged = Path(staging)
        (staged / "app.py").write_text(SPACE_APP)
        (staged / "requirements.txt").write_text(space_requirements())
        leftovers = ["__pycache__", "*.jsonl"] + ([] if weights else ["default"])
        shutil.copytree(PACKAGE, staged / "empexp", ignore=shutil.ignore_patterns(*leftovers))
        card = space_card()
        if model:
            space_config = {"model": model, "explainers": dict(explainers or {})}
            (staged / SPACE_CONFIG).write_text(json.dumps(space_config, indent=2) + "\n")
            card.data.models = [model, *space_config["explainers"].values()]
        card.save(staged / "README.md")
        with _hub_errors(repo_id):
            api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
            return api.upload_folder(
                repo_id=repo_id, repo_type="space", folder_path=staged, commit_message="Upload the empexp app"
            )
