"""What every trained explainer model (empirical explainer, DiffMask probes) shares on disk and on the Hub.

Each is an ``nn.Module`` with ``huggingface_hub.ModelHubMixin``: ``config.json`` holds its constructor
arguments, including the identity of the one classifier it was trained for, and ``model.safetensors``
only the weights it adds to that classifier. Loading checks both and says what is wrong.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TypeVar

from huggingface_hub import ModelHubMixin, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from empexp.classifier import Classifier
from empexp.errors import ModelLoadError
from empexp.hub import cache_only_unless_reachable, hub_reachable

WEIGHTS_NAME = "model.safetensors"
IDENTITY_CHECKED = ("model_type", "hidden_size", "num_hidden_layers", "labels", "vocab_sha256")

Artefact = TypeVar("Artefact", bound=nn.Module)


def check_identity(explains: dict, classifier: Classifier) -> None:
    """Refuse a classifier other than the one an explainer was trained for.

    Raises:
        ModelLoadError: vocabulary, architecture, labels or the probe logits differ.
    """
    actual = classifier.identity()
    trained_for = explains.get("name_or_path", "another classifier")
    for key in IDENTITY_CHECKED:
        if explains.get(key) != actual[key]:
            raise ModelLoadError(
                f"this explainer was trained for {trained_for}, not for {actual['name_or_path']}: "
                f"their {key.replace('_', ' ')} differ"
            )
    # Probe logits agree to rounding across devices and dtypes; other weights move them far more.
    expected = explains.get("fingerprint", [])
    if not all(math.isclose(a, b, abs_tol=0.02) for a, b in zip(expected, actual["fingerprint"], strict=True)):
        raise ModelLoadError(
            f"this explainer was trained for {trained_for}, not for {actual['name_or_path']}: "
            "same architecture and vocabulary, but different weights (their outputs on a probe text differ)"
        )


def save_weights(state: dict, directory: Path) -> None:
    """Write ``state`` as ``model.safetensors`` in ``directory``."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    save_file(tensors, directory / WEIGHTS_NAME, metadata={"format": "pt"})


def weights_file(model_id: str, **download: object) -> str | Path:
    """``model.safetensors`` of a folder or Hub repo (``download`` goes to ``hf_hub_download``)."""
    if Path(model_id).is_dir():
        return Path(model_id) / WEIGHTS_NAME
    return hf_hub_download(model_id, WEIGHTS_NAME, **download)


def load_weights(model: Artefact, model_id: str, weights: str | Path, expected: dict) -> Artefact:
    """Load ``weights`` into ``model`` after checking they hold exactly the tensors in ``expected``.

    Raises:
        ModelLoadError: the file is unreadable or does not match the config.
    """
    device = next(iter(expected.values())).device
    try:
        state = load_file(weights, device=str(device))
    except (OSError, SafetensorError) as error:
        raise ModelLoadError(f"{model_id}: unreadable {WEIGHTS_NAME} ({error})") from error
    wrong = sorted(k for k in expected.keys() | state.keys() if k not in state or k not in expected)
    wrong += sorted(k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape)
    if wrong:
        raise ModelLoadError(f"{model_id}: {WEIGHTS_NAME} does not match its config.json (e.g. {wrong[0]})")
    model.load_state_dict(state, strict=False)
    return model


def load_artefact(
    cls: type[ModelHubMixin], name_or_path: str | Path, classifier: Classifier, *, revision: str | None, what: str
):
    """``cls.from_pretrained`` from a Hub id or a folder, on ``classifier``, with errors meant for users.

    ``what`` names the kind of artefact with its article, e.g. ``"an empirical explainer"``.

    Raises:
        ModelLoadError: nothing loadable there, a corrupt file, or another classifier's artefact.
    """
    source = str(name_or_path)
    local = Path(source).is_dir()
    reachable = local or hub_reachable()
    try:
        with cache_only_unless_reachable(reachable):
            return cls.from_pretrained(source, revision=revision, classifier=classifier)
    except ModelLoadError:
        raise
    except TypeError as error:  # config.json missing or lacking required fields
        raise ModelLoadError(f"{source}: not {what} (config.json missing or incomplete)") from error
    except (EntryNotFoundError, LocalEntryNotFoundError, HFValidationError, OSError, ValueError) as error:
        where = "" if reachable else " (the Hub is not reachable and it is not cached)"
        raise ModelLoadError(f"could not load {what} {source!r}{where}: {error}") from error
