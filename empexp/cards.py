"""Model cards (the Hub's ``README.md``) for what the training scripts export, from ``empexp/model_cards/`` templates.

Every number in a card comes from the files the training and evaluation runs wrote next to the
weights (``training_metrics.json``, ``convergence.json``, ``diffmask_metrics.json``), and the command
that trained it is rebuilt from the arguments those files record. Metadata (``library_name``,
``base_model``, ``datasets``, ``tags``, ``license``, ``model-index``) goes through
``huggingface_hub.ModelCardData``, so a card that loads back with ``ModelCard.load`` parses as the Hub does.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from empexp.classifier import DEFAULT_NAME, INPUTS_KEY
from empexp.convergence import load_curve
from empexp.errors import ModelLoadError
from empexp.imitator import METHOD_LONG, TRAINING_METRICS
from empexp.probes import METRICS as DIFFMASK_METRICS
from empexp.probes import point_names, validation_markdown

TEMPLATES = Path(__file__).resolve().parent / "model_cards"
KINDS = ("classifier", "empirical-explainer", "diffmask")
TRAINING_SCRIPTS = {
    "classifier": "training/train_classifier.py",
    "empirical-explainer": "training/train_empirical.py",
    "diffmask": "training/train_diffmask.py",
}
DEFAULT_DATASET = "stanfordnlp/sst2"
"""The data the project's scripts train on (GLUE SST-2); ``write_card(dataset=...)`` names another."""
MRPC_DATASET = "nyu-mll/glue"
"""GLUE on the Hub; its ``mrpc`` configuration is the paraphrase task (text pairs)."""
DATASET_NAMES = {"stanfordnlp/sst2": "SST-2", MRPC_DATASET: "GLUE (MRPC)"}
LICENSE = "apache-2.0"


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def artefact_kind(folder: str | Path) -> str:
    """Which of :data:`KINDS` a folder in Hub layout holds, from its config files.

    Raises:
        ModelLoadError: no ``config.json``, or one that none of empexp's artefacts writes.
    """
    folder = Path(folder)
    config = read_json(folder / "config.json")
    if config is None:
        raise ModelLoadError(f"{folder}: no config.json, so not a classifier, explainer or probes in Hub layout")
    if (folder / "adapter_config.json").is_file() or "architectures" in config:
        return "classifier"
    if "imitates" in config:
        return "empirical-explainer"
    if "variant" in config and "margin" in config:
        return "diffmask"
    raise ModelLoadError(f"{folder}: config.json is not that of an empexp classifier, explainer or probes")


def command_line(script: str, args: dict[str, Any]) -> str:
    """The ``accelerate launch`` command that reproduces a run, from the arguments its metrics record."""
    words = ["accelerate", "launch", script]
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def hub_id(name: str | None) -> str | None:
    """``name`` if it is a Hub repo id (not a local path or the embedded default), else ``None``."""
    if not name or Path(name).exists():
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name if name.count("/") == 1 else None


def recorded_dataset(folder: str | Path) -> str | None:
    """The training data ``folder``'s model card names (its first ``datasets`` entry), if it has a card."""
    path = Path(folder) / "README.md"
    if not path.is_file():
        return None
    datasets = ModelCard(path.read_text(encoding="utf-8")).data.datasets or []
    return datasets[0] if datasets else None


def shown_path(folder: Path) -> str:
    """``folder`` as a card names it: relative to the working directory when inside it, so that a card
    written for a local folder does not carry this machine's absolute path."""
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


def write_card(
    folder: str | Path,
    *,
    repo_id: str | None = None,
    dataset: str | None = None,
    classifier: str | None = None,
) -> Path:
    """Render ``folder``'s model card from its template and measured metrics into ``folder/README.md``.

    ``repo_id`` is where it is (to be) published, ``classifier`` the Hub id of the classifier an
    explainer or probes were trained for, when it is published (else the name their config holds);
    ``dataset`` (the training data's Hub id) defaults to the one the folder's card names, else SST-2.
    """
    folder = Path(folder)
    dataset = dataset or recorded_dataset(folder) or DEFAULT_DATASET
    kind = artefact_kind(folder)
    config = read_json(folder / "config.json")
    context, results, extra = _CONTEXTS[kind](folder, config, dataset, classifier)
    model_name = repo_id or folder.name
    data = ModelCardData(
        library_name="empexp",
        license=LICENSE,
        base_model=hub_id(context.get("base_model")),
        datasets=[dataset],
        tags=["empexp", "explainability", *extra["tags"]],
        pipeline_tag=extra.get("pipeline_tag"),
        model_name=model_name,
        eval_results=results or None,
    )
    card = ModelCard.from_template(
        data,
        template_path=str(TEMPLATES / f"{kind}.md"),
        repo_id=repo_id or shown_path(folder),
        dataset_name=DATASET_NAMES.get(dataset, dataset),
        **context,
    )
    path = folder / "README.md"
    card.save(path)
    return path


def _result(dataset: str, task: str, metric: str, value: float, name: str) -> EvalResult:
    return EvalResult(
        task_type=task,
        dataset_type=dataset,
        dataset_name=DATASET_NAMES.get(dataset, dataset),
        dataset_split="validation",
        metric_type=metric,
        metric_value=value,
        metric_name=name,
    )


def _classifier_context(folder: Path, config: dict, dataset: str, _classifier: str | None):
    adapter = read_json(folder / "adapter_config.json")
    training = read_json(folder / TRAINING_METRICS) or {}
    args = training.get("args", {})
    labels = [config["id2label"][key] for key in sorted(config.get("id2label", {}), key=int)]
    accuracy, f1 = training.get("dev_accuracy"), training.get("dev_f1")
    results = [_result(dataset, "text-classification", "accuracy", accuracy, "accuracy")] if accuracy else []
    if f1 is not None and config.get(INPUTS_KEY) == "pair":  # GLUE reports F1 for the paraphrase tasks
        results.append(_result(dataset, "text-classification", "f1", f1, "F1"))
    context = {
        "title": f"{folder.name}: a {'/'.join(labels)} text classifier",
        "labels": labels,
        "adapter": {"r": adapter.get("r")} if adapter else None,
        "base_model": adapter["base_model_name_or_path"] if adapter else args.get("base"),
        "model_type": config.get("model_type"),
        "accuracy": accuracy,
        "f1": f1 if config.get(INPUTS_KEY) == "pair" else None,
        "pairs": config.get(INPUTS_KEY) == "pair",
        "step": training.get("step"),
        "max_length": args.get("max_length", config.get("max_position_embeddings")),
        "command": command_line(TRAINING_SCRIPTS["classifier"], args) if args else "(not recorded)",
    }
    return context, results, {"tags": ["text-classification"], "pipeline_tag": "text-classification"}


def _explained(config: dict, classifier: str | None) -> dict[str, Any]:
    explains = config["explains"]
    name = classifier or explains["name_or_path"]
    return {
        "classifier": name,
        "classifier_revision": explains.get("revision"),
        "base_model": name,
        "load_argument": "" if name == DEFAULT_NAME else f'"{name}"',
    }


def _empirical_context(folder: Path, config: dict, dataset: str, classifier: str | None):
    training = read_json(folder / TRAINING_METRICS) or {}
    curve = load_curve(folder)
    method = config["imitates"]["method"]
    name = f"empirical-{method}" + ("" if config.get("adapter") else "-head")
    point = curve.empirical.get(name) if curve else None
    results = []
    if point:
        task = "token-attribution"
        results = [
            _result(dataset, task, "mse", point["mse"], f"MSE vs {method.upper()} s={curve.max_samples}"),
            _result(dataset, task, "crossover", point["crossover"], f"crossover s* vs {method.upper()}"),
        ]
    context = {
        "title": f"{name}: an empirical explainer",
        "name": name,
        "method": method,
        "method_long": METHOD_LONG[method],
        "samples": config["imitates"]["samples"],
        "imitates": json.dumps(config["imitates"]),
        "adapter": config.get("adapter"),
        "branch": config.get("branch", 0),
        "int8": config.get("int8", False),
        "layers": config["explains"]["num_hidden_layers"],
        "val_mse": training.get("val_mse"),
        "targets": training.get("targets"),
        "step": training.get("step"),
        "curve": curve if point else None,
        "curve_rows": sorted(curve.mse.items()) if point else [],
        "mse": point and point["mse"],
        "crossover": point and point["crossover"],
        "seconds": point and point["seconds"],
        "command": command_line(TRAINING_SCRIPTS["empirical-explainer"], training["args"])
        if "args" in training
        else "(not recorded)",
        **_explained(config, classifier),
    }
    return context, results, {"tags": ["empirical-explainer", f"empirical-{method}"]}


def _diffmask_context(folder: Path, config: dict, dataset: str, classifier: str | None):
    metrics = read_json(folder / DIFFMASK_METRICS)
    results = []
    if metrics:
        measured = [("kl_divergence", "sampled_kl", "sampled KL"), ("agreement", "agreement", "agreement")]
        measured.append(("fraction_kept", "kept", "fraction kept"))
        for i, name in enumerate(point_names(len(metrics["kl"]))):
            results += [
                _result(dataset, "token-attribution", kind, metrics[key][i], f"{label} ({name})")
                for kind, key, label in measured
            ]
    variant = config["variant"]
    aims = metrics.get("aims", []) if metrics else []
    context = {
        "title": f"diffmask-{variant}: DiffMask probes",
        "variant": variant,
        "margin": config["margin"],
        "table": metrics and validation_markdown(metrics),
        "texts": metrics and metrics["texts"],
        "step": metrics and metrics["step"],
        "latest": bool(metrics and metrics.get("args", {}).get("export_latest")),
        # Set when a resumed run changed --aim: the command below shows only the last.
        "aims": _aims_text(aims),
        "command": command_line(TRAINING_SCRIPTS["diffmask"], metrics["args"])
        if metrics and "args" in metrics
        else "(not recorded)",
        "starts": _diffmask_starts(metrics.get("init")) if metrics else [],
        **_explained(config, classifier),
    }
    return context, results, {"tags": ["diffmask", f"diffmask-{variant}"]}


def _aims_text(aims: list[list]) -> str:
    """The ``--aim`` values a run held and from which step, when it changed them (else empty)."""
    return ", ".join(f"{aim:g} from step {start:,}" for start, aim in aims) if len(aims) > 1 else ""


def _diffmask_starts(init: dict | None) -> list[dict[str, str]]:
    """The probes a run started from (``--init``), and those they started from in turn, latest first, as
    their own metrics recorded them: step, aims, command."""
    starts = []
    while init and "args" in init:
        starts.append(
            {
                "step": f"{init['step']:,}" if "step" in init else "?",
                "aims": _aims_text(init.get("aims", [])),
                "command": command_line(TRAINING_SCRIPTS["diffmask"], init["args"]),
            }
        )
        init = init.get("init")
    return starts


_CONTEXTS = {
    "classifier": _classifier_context,
    "empirical-explainer": _empirical_context,
    "diffmask": _diffmask_context,
}
