"""The training scripts (classifier, empirical explainers, DiffMask probes): exact resume after ``kill -9``,
exports, and the note on idle cores."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from empexp import get_explainer, load_classifier
from empexp.targets import CPU_SECONDS, load_targets
from empexp.training import note_cpu_threads
from tests.conftest import SENTENCES

SCRIPT = Path(__file__).parents[1] / "training" / "train_classifier.py"


def write_data(directory: Path) -> Path:
    directory.mkdir()
    rows = [("the movie was great", 1), ("awful", 0), ("not a good film", 0), ("a very good plot", 1)]
    for name, repeat in (("train.tsv", 12), ("dev.tsv", 2)):
        lines = ["label\tsentence"] + [f"{label}\t{text}" for text, label in rows * repeat]
        (directory / name).write_text("\n".join(lines) + "\n")
    return directory


def command(base: Path, data: Path, run_dir: Path, out: Path) -> list[str]:
    return [
        sys.executable, str(SCRIPT), "--data-dir", str(data), "--base-path", str(base), "--base", str(base),
        "--run-dir", str(run_dir), "--output-dir", str(out), "--epochs", "4", "--batch-size", "8",
        "--lora-r", "2", "--eval-every", "3", "--checkpoint-every", "1", "--seed", "3",
    ]  # fmt: skip


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    (checkpoint,) = (run_dir / "checkpoints").glob("step-*")
    assert checkpoint.name == "step-24"
    return load_file(checkpoint / "model.safetensors")


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(bert_path, tmp_path):
    data = write_data(tmp_path / "data")
    env = {**os.environ, "TQDM_DISABLE": "1"}
    straight = tmp_path / "straight"
    subprocess.run(command(bert_path, data, straight, tmp_path / "out-a"), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(command(bert_path, data, killed, tmp_path / "out-b"), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((killed / "checkpoints").glob("step-[3-9]")) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "checkpoints" / "step-24").exists(), "the run finished before it could be killed"
    subprocess.run(command(bert_path, data, killed, tmp_path / "out-b"), check=True, env=env, capture_output=True)

    expected, resumed = final_weights(straight), final_weights(killed)
    assert expected.keys() == resumed.keys()
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], atol=1e-6, rtol=1e-5)
    classifier = load_classifier(tmp_path / "out-b")  # the exported adapter loads as a classifier
    assert classifier.predict(["the movie was great"])[0].label in {"negative", "positive"}


@pytest.mark.slow
@pytest.mark.parametrize("labels", ["targets", "ig", "sv"])
def test_empirical_training_resumes_after_kill(bert_path, tmp_path, labels):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"{t} {w}" for t in SENTENCES for w in ("indeed", "really", "truly")) + "\n")
    held_out = tmp_path / "held-out.txt"
    held_out.write_text("\n".join(texts.read_text().splitlines()[:3]) + "\n")
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    targets = tmp_path / "targets"
    method = "sv" if labels == "sv" else "ig"
    subprocess.run([sys.executable, str(SCRIPT.parent / "generate_targets.py"), "--model", str(bert_path),
                    "--data", str(texts if labels == "targets" else held_out), "--method", method, "--samples", "20",
                    "--output-dir", str(targets)], check=True, env=env, capture_output=True)  # fmt: skip
    if labels == "targets":  # a second folder of long texts: training reads several
        subprocess.run([sys.executable, str(SCRIPT.parent / "generate_targets.py"), "--model", str(bert_path),
                        "--data", str(texts), "--method", "ig", "--samples", "20", "--limit", "0",
                        "--pseudo-documents", "1", "--output-dir", str(tmp_path / "long")],
                       check=True, env=env, capture_output=True)  # fmt: skip
    # On the fly: every step draws two Gauss-Legendre nodes (IG) or a permutation and its reverse (SV) per
    # text, texts of different lengths together; validation on the held-out targets. From targets, the
    # explainer is a branch: a copy of the last layer only.
    source = ["--targets", str(targets), str(tmp_path / "long"), "--branch", "1"] if labels == "targets" else [
        "--data", str(texts), "--val-targets", str(targets), "--nodes", "2", "--permutations", "2",
        "--pseudo-documents", "2"]  # fmt: skip

    def command(run_dir: Path) -> list[str]:
        return [sys.executable, str(SCRIPT.parent / "train_empirical.py"), "--model", str(bert_path), *source,
                "--run-dir", str(run_dir), "--output-dir", str(run_dir / "out"),
                "--variant", "encoder", "--lora-r", "2", "--head-size", "8", "--epochs", "8",
                "--batch-size", "4", "--eval-every", "2", "--checkpoint-every", "1", "--patience", "100"]  # fmt: skip

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(command(straight), check=True, env=env, capture_output=True)
    process = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((killed / "checkpoints").glob("step-[3-9]")) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "out").exists(), "the run finished before it could be killed"
    subprocess.run(command(killed), check=True, env=env, capture_output=True)

    expected = load_file(straight / "out" / "model.safetensors")
    resumed = load_file(killed / "out" / "model.safetensors")
    assert expected.keys() == resumed.keys() and any("lora_" in k for k in expected)
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], atol=1e-6, rtol=1e-5)
    assert (killed / "out" / "README.md").is_file() and (killed / "out" / "training_metrics.json").is_file()
    if labels == "targets":  # the newest weights on request, validated there, and "best" left as it was
        latest = tmp_path / "latest"
        subprocess.run([*command(straight), "--export-latest", "--output-dir", str(latest)], check=True, env=env,
                       capture_output=True)  # fmt: skip
        metrics = json.loads((latest / "training_metrics.json").read_text())
        last = json.loads((straight / "log.jsonl").read_text().splitlines()[-1])
        assert metrics["step"] == last["step"] and metrics["args"]["export_latest"] and metrics["train_loss"] is None
        assert metrics["val_mse"] == pytest.approx(last["val_mse"], rel=1e-5)
        checkpoint = load_file(straight / "checkpoints" / f"step-{last['step']}" / "model.safetensors")
        exported = load_file(latest / "model.safetensors")
        for name in exported:
            torch.testing.assert_close(exported[name], checkpoint[name])
        best = load_file(straight / "best" / "model.safetensors")
        for name in best:
            torch.testing.assert_close(best[name], expected[name])
    # What the labels cost: drawn on the fly, it grows with the steps; from targets, theirs, all of them.
    costs = [json.loads(line)[CPU_SECONDS] for line in (straight / "log.jsonl").read_text().splitlines()]
    if labels == "targets":
        assert set(costs) == {sum(load_targets(folder)[1][CPU_SECONDS] for folder in (targets, tmp_path / "long"))}
    else:
        assert costs[0] > 0 and costs == sorted(costs) and costs[-1] > costs[0]


@pytest.mark.slow
def test_diffmask_training_exports_the_kept_checkpoint(bert, bert_path, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(SENTENCES * 3) + "\n")
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = tmp_path / "probes"
    subprocess.run([sys.executable, str(SCRIPT.parent / "train_diffmask.py"), "--model", str(bert_path),
                    "--data", str(texts), "--output-dir", str(out), "--run-dir", str(tmp_path / "run"),
                    "--steps", "6", "--eval-every", "3", "--warmup", "2", "--batch-size", "4", "--margin", "10",
                    "--threads", "1"], check=True, env=env, capture_output=True)  # fmt: skip
    metrics = json.loads((out / "diffmask_metrics.json").read_text())
    assert metrics["step"] in (3, 6) and max(metrics["sampled_kl"]) <= 10 and (out / "README.md").is_file()
    assert metrics["aims"] == [[0, 10.0]]
    explanation = get_explainer("diffmask-input", bert, source=out).explain("the movie was great")[0]
    assert len(explanation.layer_scores) == bert.model.config.num_hidden_layers + 2

    # Resumed with another --aim: the card's command shows only the last, the metrics and card say when each held.
    subprocess.run([sys.executable, str(SCRIPT.parent / "train_diffmask.py"), "--model", str(bert_path),
                    "--data", str(texts), "--output-dir", str(out), "--run-dir", str(tmp_path / "run"),
                    "--steps", "8", "--eval-every", "3", "--warmup", "2", "--batch-size", "4", "--margin", "10",
                    "--aim", "5", "--threads", "1", "--export-latest"],
                   check=True, env=env, capture_output=True)  # fmt: skip
    metrics = json.loads((out / "diffmask_metrics.json").read_text())
    assert metrics["step"] == 8 and metrics["aims"] == [[0, 10.0], [6, 5.0]]
    assert "10 from step 0, 5 from step 6" in (out / "README.md").read_text()


@pytest.mark.slow
def test_diffmask_training_reads_pairs_and_exports_the_latest_probes_on_request(bert, bert_path, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    rows = [f"{i % 2}\t{a}\t{b}" for i, (a, b) in enumerate(zip(SENTENCES, reversed(SENTENCES)))]
    pairs.write_text("label\tsentence1\tsentence2\n" + "\n".join(rows * 2) + "\n")
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = tmp_path / "probes"
    subprocess.run([sys.executable, str(SCRIPT.parent / "train_diffmask.py"), "--model", str(bert_path),
                    "--data", str(pairs), "--output-dir", str(out), "--run-dir", str(tmp_path / "run"),
                    "--steps", "4", "--eval-every", "4", "--warmup", "2", "--batch-size", "4", "--margin", "0",
                    "--threads", "1", "--export-latest"], check=True, env=env, capture_output=True)  # fmt: skip
    metrics = json.loads((out / "diffmask_metrics.json").read_text())
    assert metrics["step"] == 4 and metrics["args"]["export_latest"]  # a margin of 0 keeps no checkpoint
    explanation = get_explainer("diffmask-input", bert, source=out).explain("the movie was great", "a fine film")[0]
    assert set(explanation.segment) == {0, 1}


@pytest.mark.slow
def test_diffmask_training_from_probes_trains_only_the_points_asked(bert_path, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(SENTENCES * 3) + "\n")
    env = {**os.environ, "TQDM_DISABLE": "1"}

    def train(out: str, *options: str) -> subprocess.CompletedProcess:
        script = [sys.executable, str(SCRIPT.parent / "train_diffmask.py"), "--model", str(bert_path)]
        return subprocess.run([*script, "--data", str(texts), "--output-dir", str(tmp_path / out), "--run-dir",
                               str(tmp_path / f"run-{out}"), "--eval-every", "3", "--warmup", "2", "--batch-size", "4",
                               "--threads", "1", "--export-latest", *options],
                              env=env, capture_output=True, text=True)  # fmt: skip

    assert train("start", "--variant", "hidden", "--steps", "3").returncode == 0
    assert train("point-1", "--variant", "hidden", "--steps", "3", "--init", str(tmp_path / "start"),
                 "--points", "1").returncode == 0  # fmt: skip
    start, trained = (load_file(tmp_path / name / "model.safetensors") for name in ("start", "point-1"))
    changed = {name.split(".")[1] for name in start if not torch.equal(start[name], trained[name])}
    assert changed == {"1"}  # probe 1 and its baseline; every other point kept its probe
    started = json.loads((tmp_path / "point-1" / "diffmask_metrics.json").read_text())["init"]
    assert started["step"] == 3 and started["args"]["output_dir"] == str(tmp_path / "start")
    card = (tmp_path / "point-1" / "README.md").read_text()
    assert "It started from probes (`--init`) trained with the command\nbelow (kept at step 3)" in card
    # A third stage: the card names both stages before it, latest first.
    assert train("point-2", "--variant", "hidden", "--steps", "3", "--init", str(tmp_path / "point-1"),
                 "--points", "2", "--leakage", "1").returncode == 0  # fmt: skip
    card = (tmp_path / "point-2" / "README.md").read_text()
    assert (
        card.index("--points 1")
        < card.index("Those started from probes")
        < card.index("--output-dir " + str(tmp_path / "start"))
    )
    assert "--leakage 1" in card
    wrong = train("wrong", "--variant", "input", "--steps", "1", "--init", str(tmp_path / "start"))
    assert wrong.returncode != 0 and "holds hidden probes, not input ones" in wrong.stderr
    outside = train("outside", "--variant", "hidden", "--steps", "1", "--points", "9")
    assert outside.returncode != 0 and "--points must be hook points 0.." in outside.stderr


@pytest.mark.parametrize(("threads", "processes", "says"), [(1, 1, True), (4, 1, False), (2, 2, False)])
def test_training_says_when_accelerate_left_cores_idle(monkeypatch, threads, processes, says):
    printed = []
    accelerator = SimpleNamespace(device=torch.device("cpu"), num_processes=processes, print=printed.append)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(4)), raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    note_cpu_threads(accelerator)
    assert bool(printed) == says
    if says:
        assert "--num_cpu_threads_per_process 4" in printed[0]
