"""What every trained explainer model (empirical explainer, DiffMask probes) shares on disk and on the Hub.

Each is an ``nn.Module`` with :class:`AddedWeights` (a ``huggingface_hub.ModelHubMixin``):
``config.json`` holds its constructor arguments, including the identity of the one classifier it was
trained for, and ``model.safetensors`` only the weights it adds to that classifier. Loading checks
both and says what is wrong.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelHubMixin, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from empexp.classifier import Classifier
from empexp.errors import ModelLoadError
from empexp.hub import hub_reachable

WEIGHTS_NAME = "model.safetensors"
IDENTITY_CHECKED = ("model_type", "hidden_size", "num_hidden_layers", "labels", "vocab_sha256")


def check_identity(explains: dict, classifier: Classifier) -> None:
    """Refuse a classifier other than the one an explainer was trained for.

    Raises:
        ModelLoadError: vocabulary, architecture, labels or the probe logits differ.
    """
    actual = classifier.identity()
    trained_for = explains.get("name_or_path", "another classifier")
    if explains.get("revision"):
        trained_for += f" (revision {explains['revision']})"
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


class AddedWeights(ModelHubMixin):
    """``ModelHubMixin`` for modules that save only the weights they add to their classifier.

    Subclasses say which in :meth:`trainable_state_dict` and may finish loading in :meth:`ready`;
    ``model.safetensors`` is written and read here, checked against the config on the way in.
    """

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors saved in ``model.safetensors``."""
        raise NotImplementedError

    def ready(self) -> AddedWeights:
        """The module after its weights are loaded, ready to explain (in eval mode)."""
        return self.eval()

    def _save_pretrained(self, save_directory: Path) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.trainable_state_dict().items()}
        save_file(tensors, save_directory / WEIGHTS_NAME, metadata={"format": "pt"})

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        **model_kwargs: Any,
    ) -> AddedWeights:
        if Path(model_id).is_dir():
            weights = Path(model_id) / WEIGHTS_NAME
        else:
            weights = hf_hub_download(
                model_id,
                WEIGHTS_NAME,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
            )
        model = cls(**model_kwargs)
        expected = model.trainable_state_dict()
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
        return model.ready()


def load_artefact(
    cls: type[AddedWeights], name_or_path: str | Path, classifier: Classifier, *, revision: str | None, what: str
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
        return cls.from_pretrained(source, revision=revision, classifier=classifier, local_files_only=not reachable)
    except ModelLoadError:
        raise
    except TypeError as error:  # config.json missing or lacking required fields
        raise ModelLoadError(f"{source}: not {what} (config.json missing or incomplete)") from error
    except (EntryNotFoundError, LocalEntryNotFoundError, HFValidationError, OSError, ValueError) as error:
        where = "" if reachable else " (the Hub is not reachable and it is not cached)"
        raise ModelLoadError(f"could not load {what} {source!r}{where}: {error}") from error
