import json

import pytest
import torch

from empexp.cli import main

EXPLAIN_FIELDS = {
    "text",
    "tokens",
    "scores",
    "method",
    "samples",
    "target",
    "label",
    "probabilities",
    "forward_passes",
    "seconds",
}


def run(capsys, *argv) -> tuple[int, list[dict], str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


@pytest.mark.parametrize("method", ["ig", "sv"])
def test_explain_prints_one_json_object_per_text(capsys, bert_path, method):
    code, records, _ = run(
        capsys, "explain", "--model", bert_path, "--method", method, "--samples", 4, "the movie was great", "awful"
    )
    assert code == 0
    assert [r["text"] for r in records] == ["the movie was great", "awful"]
    for record in records:
        assert set(record) >= EXPLAIN_FIELDS
        assert record["method"] == method and record["samples"] == 4
        assert len(record["tokens"]) == len(record["scores"])
        assert record["label"] in record["probabilities"]
        assert isinstance(record["target"], int) and record["forward_passes"] > 0


def test_predict_reads_an_input_file(capsys, bert_path, tmp_path):
    lines = tmp_path / "texts.txt"
    lines.write_text("the movie was great\n\nnot a good film\n", encoding="utf-8")
    code, records, _ = run(capsys, "predict", "--model", bert_path, "--input-file", lines)
    assert code == 0
    assert [r["text"] for r in records] == ["the movie was great", "not a good film"]
    assert all(set(r) == {"text", "label", "probabilities"} for r in records)


def test_integration_method_option(capsys, bert_path):
    code, (record,), _ = run(
        capsys,
        "explain",
        "--model",
        bert_path,
        "--method",
        "ig",
        "--integration-method",
        "riemann_trapezoid",
        "--samples",
        3,
        "awful",
    )
    assert code == 0 and record["details"]["integration_method"] == "riemann_trapezoid"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "   "], "empty"),
        (["explain", "--method", "ig", "--seed", "1", "good"], "does not take seed"),
        (["predict", "--model", "/nonexistent/folder", "good"], "could not load"),
        (["predict", "--device", "no-such-device", "good"], "device 'no-such-device' is not available here"),
        (["explain", "--method", "ig", "--samples", "0", "good"], "samples must be a whole number of at least 1"),
        (["explain", "--method", "sv", "--batch-size", "-1", "good"], "batch_size must be a whole number"),
        (["explain", "--method", "ig", "--integration-method", "riemann_left", "--samples", "1", "good"], "at least 2"),
    ],
)
def test_bad_input_gets_a_clear_message(capsys, bert_path, argv, message):
    if "--model" not in argv:
        argv = [argv[0], "--model", str(bert_path), *argv[1:]]
    code, records, err = run(capsys, *argv)
    assert code == 1 and not records
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("detail", "shown"),
    [
        (
            "CUDA out of memory. Tried to allocate 2 GiB\nallocator detail",
            "(CUDA out of memory. Tried to allocate 2 GiB)",
        ),
        ("", "()"),
    ],
)
def test_a_device_out_of_memory_gets_a_message_not_a_traceback(capsys, bert_path, monkeypatch, detail, shown):
    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError(detail)

    monkeypatch.setattr(torch.nn.Module, "to", out_of_memory)
    code, records, err = run(capsys, "predict", "--model", bert_path, "--device", "cuda", "good")
    assert code == 1 and not records and "Traceback" not in err
    assert f"out of device memory {shown}" in err and "allocator detail" not in err


def test_no_text_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict"])
    assert exit_info.value.code == 2
