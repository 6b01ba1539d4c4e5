"""Target generation: content, metadata, resume after ``kill -9``, sharding over processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from empexp import get_explainer
from empexp.data import select_texts
from empexp.targets import (
    CPU_SECONDS,
    chunk_metadata,
    chunks_for,
    collate_targets,
    load_targets,
    same_estimand,
)

SCRIPT = Path(__file__).parents[1] / "training" / "generate_targets.py"
TEXTS = [
    "the movie was great", "awful", "not a good film", "a very good plot", "the acting was boring",
    "great fun", "the film is not bad", "a bad movie and a boring plot", "very very good", "the plot",
]  # fmt: skip


def write_texts(path: Path, repeat: int = 1) -> Path:
    # Distinct lines: the script drops duplicates.
    lines = [text + " and fun" * i for i in range(repeat) for text in TEXTS]
    path.write_text("\n".join(lines) + "\n")
    return path


def command(model: Path, data: Path, out: Path, method: str = "sv", chunk_size: int = 3) -> list[str]:
    return [
        str(SCRIPT), "--model", str(model), "--data", str(data), "--output-dir", str(out), "--method", method,
        "--samples", "5", "--chunk-size", str(chunk_size), "--seed", "1",
    ]  # fmt: skip


def run(argv: list[str], launcher: list[str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    argv = [*(launcher or [sys.executable]), *argv]
    return subprocess.run(argv, check=check, env=env, capture_output=True, text=True)


def tensors(directory: Path) -> dict[str, torch.Tensor]:
    targets, _ = load_targets(directory)
    return {
        f"{t.index}.{field}": getattr(t, field)
        for t in targets
        for field in ("input_ids", "special_tokens_mask", "logits", "attributions")
    } | {f"{t.index}.predicted": torch.tensor(t.predicted) for t in targets}


def train(model: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``train_empirical.py`` on ``model``; ``check=False`` for the runs that must fail."""
    return run([str(SCRIPT.parent / "train_empirical.py"), "--model", str(model), *args], check=check)


@pytest.fixture(scope="module")
def bert_targets(bert_path, tmp_path_factory) -> dict[str, Path]:
    """IG targets of the 10 texts and IG and SV targets of 3 of them, for the tests that only read them."""
    folder = tmp_path_factory.mktemp("targets")
    data = write_texts(folder / "texts.txt")
    run(command(bert_path, data, folder / "ig", "ig"))
    run([*command(bert_path, data, folder / "ig-3", "ig"), "--limit", "3"])
    run([*command(bert_path, data, folder / "sv-3", "sv"), "--limit", "3"])
    return {name: folder / name for name in ("ig", "ig-3", "sv-3")}


def test_chunks_are_split_without_overlap_or_gaps():
    for processes in (1, 2, 3, 7):
        assigned = [k for p in range(processes) for k in chunks_for(p, processes, 20)]
        assert sorted(assigned) == list(range(20))


@pytest.mark.parametrize("method", ["ig", "sv"])
def test_targets_hold_the_explainers_scores_and_metadata(tiny_path, tiny, tmp_path, method):
    out = tmp_path / "targets"
    run(command(tiny_path, write_texts(tmp_path / "texts.txt"), out, method))
    targets, meta = load_targets(out)
    assert len(targets) == len(TEXTS) and meta["num_instances"] == len(TEXTS)
    assert meta["explainer"]["method"] == method and meta["explainer"]["samples"] == 5
    assert meta["classifier"] == tiny.identity() and meta["classifier"]["name_or_path"] == str(tiny_path)
    assert len(meta["chunks"]) == 4  # 10 texts in chunks of 3

    target = targets[4]
    text = select_texts(TEXTS, seed=1)[0][4]  # the script's order
    options = {"seed": 100_000 + target.index // 3} if method == "sv" else {}
    explanation = get_explainer(method, tiny, samples=5, batch_size=1, **options).explain(text)[0]
    assert target.predicted == explanation.target
    assert target.input_ids.tolist() == tiny.encode([text])[0].input_ids
    if method == "ig":  # SV permutations depend on which texts share a batch
        torch.testing.assert_close(target.attributions, torch.tensor(explanation.scores), atol=1e-4, rtol=1e-3)
    assert (target.attributions[target.special_tokens_mask] == 0).all()
    assert target.logits.argmax().item() == target.predicted

    batch = collate_targets(targets[:4], tiny.tokenizer.pad_token_id, tiny.tokenizer.padding_side)
    assert batch.attributions.shape == batch.input_ids.shape
    assert (batch.attributions[batch.special_tokens_mask] == 0).all()


def test_pseudo_documents_are_long_texts_of_the_data(bert_path, tmp_path):
    out = tmp_path / "long"
    run([*command(bert_path, write_texts(tmp_path / "texts.txt", repeat=2), out, "ig"),
         "--limit", "0", "--pseudo-documents", "2"])  # fmt: skip
    targets, meta = load_targets(out)
    assert len(targets) == 2 and meta["data"]["pseudo_documents"] == 2
    assert all(len(t.input_ids) > 50 for t in targets)


def test_sv_seed_redraws_the_permutations_of_the_same_texts(bert_path, tmp_path):
    # One architecture: the seed only picks the permutations (every architecture's SV targets are tested above).
    data = write_texts(tmp_path / "texts.txt")
    run(command(bert_path, data, tmp_path / "a"))
    run([*command(bert_path, data, tmp_path / "b"), "--sv-seed", "2"])
    (a, _), (b, meta) = load_targets(tmp_path / "a"), load_targets(tmp_path / "b")
    assert meta["data"]["seed"] == 1 and meta["data"]["sv_seed"] == 2
    assert [t.input_ids.tolist() for t in a] == [t.input_ids.tolist() for t in b]
    assert not all(torch.equal(x.attributions, y.attributions) for x, y in zip(a, b))


def test_training_refuses_targets_of_different_methods(bert_path, bert_targets, tmp_path):
    result = train(bert_path, "--targets", str(bert_targets["ig"]), str(bert_targets["sv-3"]),
                   "--output-dir", str(tmp_path / "out"), check=False)  # fmt: skip
    assert result.returncode != 0 and "differ from" in result.stderr and "explainer" in result.stderr
    assert not (tmp_path / "out").exists()


def test_targets_record_what_their_labels_cost(bert_targets):
    out = bert_targets["ig"]
    _, meta = load_targets(out)
    costs = [chunk_metadata(out / name)[CPU_SECONDS] for name in meta["chunks"]]
    assert all(cost > 0 for cost in costs) and meta[CPU_SECONDS] == pytest.approx(sum(costs))


def test_training_validates_on_held_out_targets_left_out_of_training(bert_path, bert_targets, tmp_path):
    run_dir = tmp_path / "run"
    result = train(bert_path, "--targets", str(bert_targets["ig"]), "--val-targets", str(bert_targets["ig-3"]),
                   "--variant", "head", "--epochs", "1", "--batch-size", "4", "--run-dir", str(run_dir),
                   "--output-dir", str(tmp_path / "out"))  # fmt: skip
    assert "7 train / 3 validation instances" in result.stdout
    record = json.loads((run_dir / "log.jsonl").read_text().splitlines()[-1])
    assert record[CPU_SECONDS] == load_targets(bert_targets["ig"])[1][CPU_SECONDS]  # the labels it trained on

    result = train(bert_path, "--targets", str(bert_targets["ig"]), "--val-targets", str(bert_targets["sv-3"]),
                   "--output-dir", str(tmp_path / "x"), check=False)  # another method  # fmt: skip
    assert result.returncode != 0 and "another classifier or method" in result.stderr


@pytest.mark.slow
def test_resume_after_kill_gives_every_instance_exactly_once(bert_path, tmp_path):
    data = write_texts(tmp_path / "texts.txt", repeat=6)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run(command(bert_path, data, straight, chunk_size=1))

    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, *command(bert_path, data, killed, chunk_size=1)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(killed.glob("chunk-*.safetensors"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "targets.json").exists(), "the run finished before it could be killed"
    assert len(list(killed.glob("chunk-*.safetensors"))) < 60

    run(command(bert_path, data, killed, chunk_size=1))
    expected, resumed = tensors(straight), tensors(killed)
    assert expected.keys() == resumed.keys() and len(load_targets(killed)[0]) == 60
    for key in expected:
        assert torch.equal(resumed[key], expected[key]), key
    assert not list(killed.glob("*.tmp"))


@pytest.mark.slow
def test_two_processes_share_the_chunks(bert_path, tmp_path):
    data = write_texts(tmp_path / "texts.txt")
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    run(command(bert_path, data, single, "ig", chunk_size=2))
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    os.environ["ACCELERATE_USE_CPU"] = "true"
    try:
        run(command(bert_path, data, sharded, "ig", chunk_size=2), launcher=accelerate)
    finally:
        del os.environ["ACCELERATE_USE_CPU"]
    writers = []
    for name in json.loads((sharded / "targets.json").read_text())["chunks"]:
        with safe_open(sharded / name, "pt") as chunk:
            writers.append(json.loads(chunk.metadata()["empexp"])["process"])
    assert writers == [k % 2 for k in range(5)]
    expected, got = tensors(single), tensors(sharded)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])


def test_sv_targets_of_any_permutation_count_train_together_but_ig_of_other_steps_do_not():
    sv20, sv1 = {"method": "sv", "samples": 20, "seed": 1}, {"method": "sv", "samples": 1, "seed": 2}
    ig20, ig5 = {"method": "ig", "samples": 20}, {"method": "ig", "samples": 5}
    assert same_estimand(sv20, sv1)  # every permutation is an unbiased estimate of the Shapley values
    assert same_estimand(ig20, dict(ig20))
    assert not same_estimand(ig20, ig5)  # a coarser quadrature is not an estimate of the finer one
    assert not same_estimand(sv20, {**sv20, "method": "ig"})
