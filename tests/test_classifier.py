import time

import pytest
import torch
from huggingface_hub import constants

from empexp import InputError, ModelLoadError, load_classifier


def test_loads_from_folder_in_eval_mode(tiny):
    assert not tiny.model.training
    assert len(tiny.labels) == 2


def test_offsets_point_into_the_text(tiny):
    text = "the movie was  great!"
    (encoded,) = tiny.encode([text])
    spans = [span for span in encoded.offsets if span is not None]
    assert spans and all(0 <= start <= end <= len(text) for start, end in spans)
    assert [s for s, span in zip(encoded.special, encoded.offsets) if span is None] == [True] * encoded.special.count(
        True
    )


def test_long_text_is_truncated_and_flagged(tiny):
    (encoded,) = tiny.encode(["good " * 500])
    assert encoded.truncated
    assert len(encoded) == tiny.max_length
    (short,) = tiny.encode(["good"])
    assert not short.truncated


def test_collate_matches_one_at_a_time_logits(tiny):
    texts = ["the movie was great", "not a good film and a boring plot", "awful"]
    batched = tiny.logits(tiny.collate(tiny.encode(texts)))
    alone = torch.cat([tiny.logits(tiny.collate(tiny.encode([t]))) for t in texts])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("text", ["", "   \n\t", None])
def test_blank_text_raises_input_error(bert, text):
    with pytest.raises(InputError):
        bert.predict([text])


def test_emoji_rtl_and_html_are_just_text(bert):
    predictions = bert.predict(["<script>alert(1)</script>", "😀 שלום עולם مرحبا", "good " * 10_000])
    assert [p.truncated for p in predictions] == [False, False, True]
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in predictions)


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="not a loadable"):
        load_classifier(tmp_path)


def test_unknown_hub_id_fails_fast_offline(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="offline"):
        load_classifier("nobody-here/no-such-model")
    assert time.perf_counter() - start < 10


def test_peft_adapter_folder_is_merged(bert_path, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(bert_path)
    peft_model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["query", "value"]))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()
    peft_model.save_pretrained(tmp_path)
    loaded = load_classifier(tmp_path)  # no tokenizer or config in the folder: both come from the base
    assert not isinstance(loaded.model, PeftModel)
    batch = loaded.collate(loaded.encode(["the movie was great"]))
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    torch.testing.assert_close(loaded.logits(batch), expected, atol=1e-5, rtol=1e-4)


def test_predict_refuses_a_batch_size_below_one(bert):
    with pytest.raises(InputError, match="batch_size must be a whole number of at least 1, got 0"):
        bert.predict(["good"], batch_size=0)


def test_a_device_out_of_memory_is_not_called_missing(bert_path, monkeypatch):
    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torch.nn.Module, "to", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError, match="out of memory"):
        load_classifier(bert_path, device="cuda")
