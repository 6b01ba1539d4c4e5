"""Empirical explainers: models that predict an expensive explainer's token scores in one pass.

As in "Efficient Explanations from Empirical Explainers" (Schwarzenberg et al., 2021), with two
differences. The paper puts a linear layer over the flattened sequence on a copy of the classifier's
encoder, tying the explainer to one sequence length; here a per-token head scores each token from its
own hidden states, so any length works. And besides that copy (``adapter`` set: a LoRA-adapted copy
of the classifier's encoder runs one extra pass) there is a head-only variant (``adapter=None``) that
reads the hidden states of the classifier's own prediction pass: the explanation comes with the
prediction at almost no added cost.

Either way the head reads every layer's hidden state at each token and outputs one score per class;
the explained class (the prediction) picks its score. Only the head and the LoRA weights are saved
(``model.safetensors`` plus ``config.json``, Hub layout), so an explainer for a 22M-parameter
classifier takes a few MB; the rest is the classifier it was trained for, checked when loaded.
"""

from __future__ import annotations

import copy
import warnings
import weakref
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from empexp import layers
from empexp.artefact import AddedWeights, check_identity, load_artefact
from empexp.classifier import Batch, Classifier, pad_baseline

if TYPE_CHECKING:  # empexp.targets imports the explainers, which import this module
    from empexp.targets import TargetBatch

TRAINING_METRICS = "training_metrics.json"
METHOD_LONG = {"ig": "Integrated Gradients", "sv": "Shapley Value Sampling"}


class EmpiricalModel(
    nn.Module,
    AddedWeights,
    library_name="empexp",
    tags=["empexp", "empirical-explainer", "explainability", "text-classification"],
):
    """Predicts the scores an expensive explainer gives the predicted class, for one classifier.

    Args:
        classifier: the classifier explained; its identity must match ``explains``.
        explains: :meth:`Classifier.identity` of the classifier it was trained for.
        imitates: the expensive explainer and its settings, e.g. ``{"method": "ig", "samples": 20}``.
        adapter: LoRA settings (``r``, ``alpha``) of the encoder copy; ``None`` reads the classifier's
            own hidden states (no extra pass).
        branch: with an adapter, the layer the copy branches off at: ``0`` copies the whole encoder
            (its own pass from the input ids); ``k > 0`` copies only layers ``k + 1 .. L``, which
            continue from the classifier's hidden states after layer ``k`` (the prediction pass's),
            so explaining costs ``(L - k) / L`` of a pass.
        head_size: width of the per-token head's hidden layer.
        complete: make the scores add up to ``f(input) - f(baseline)`` for the explained logit, as IG's
            (completeness) and SV's (efficiency) do, by spreading the difference evenly over the real
            tokens; :meth:`forward` then needs that ``total``.
        int8: on a CPU, run the copy's linear layers with int8 weights (:func:`int8_linears`). Set it
            where the convergence benchmark shows no loss: on the embedded SST-2 branches it moved dev
            MSE by under 1%, on the embedded MRPC whole copy it cost one step of s*.

    Raises:
        ModelLoadError: ``classifier`` is not the one in ``explains``.
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        explains: dict,
        imitates: dict,
        adapter: dict | None = None,
        branch: int = 0,
        head_size: int = 128,
        complete: bool = True,
        int8: bool = False,
    ):
        super().__init__()
        check_identity(explains, classifier)
        config = classifier.model.config
        if not 0 <= branch < config.num_hidden_layers or (branch and adapter is None):
            raise ValueError(f"branch must be in 0..{config.num_hidden_layers - 1}, and needs an adapter")
        self.explains = explains
        self.imitates = imitates
        self.adapter = adapter
        self.branch = branch
        self.complete = complete
        self.int8 = int8
        features = config.hidden_size * (config.num_hidden_layers + 1)
        self.head = nn.Sequential(
            nn.LayerNorm(features),
            nn.Linear(features, head_size),
            nn.GELU(),
            nn.Linear(head_size, config.num_labels),
        )
        self.encoder: nn.Module | None = None
        if adapter is not None:
            from peft import LoraConfig, inject_adapter_in_model

            lora = LoraConfig(
                r=adapter["r"], lora_alpha=adapter["alpha"], target_modules="all-linear", lora_dropout=0.0
            )
            # A copy, so the classifier's own weights stay untouched by training and by merging.
            encoder = copy.deepcopy(classifier.model.base_model)
            del layers.encoder_layers(encoder)[:branch]  # the classifier's own layers run those
            encoder.config.num_hidden_layers -= branch  # the copy's own config (copied with it)
            self.encoder = inject_adapter_in_model(lora, encoder)
            for name, parameter in self.encoder.named_parameters():
                parameter.requires_grad = "lora_" in name
        self.to(classifier.device)

    @property
    def own_pass(self) -> bool:
        """Whether explaining costs a pass of the encoder copy, whole or from :attr:`branch` (else only the
        tiny head runs)."""
        return self.encoder is not None

    @property
    def pass_share(self) -> float:
        """The share of an encoder pass that explaining adds per text: 1 for the whole copy, ``(L - k) / L``
        for a branch at ``k``, 0 for the head alone."""
        if self.encoder is None:
            return 0.0
        layers = self.explains["num_hidden_layers"]
        return (layers - self.branch) / layers

    @property
    def reads_hidden_states(self) -> bool:
        """Whether :meth:`forward` needs the prediction pass's hidden states (the head alone, or a branch)."""
        return self.encoder is None or self.branch > 0

    def forward(
        self,
        batch: Batch,
        targets: torch.Tensor,
        hidden_states: tuple[torch.Tensor, ...] | None = None,
        total: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores ``(batch, tokens)`` for the ``targets`` classes; 0 at special and pad positions.

        ``batch`` is a :meth:`Classifier.collate` batch; ``hidden_states`` (every layer, from the
        classifier's prediction pass) are needed by the head-only variant and ignored by the other;
        ``total`` (``(batch,)``, from :class:`ScoreTotals`) is needed when :attr:`complete`.
        """
        if self.reads_hidden_states and hidden_states is None:
            raise ValueError("this empirical explainer reads the classifier's hidden states: pass hidden_states")
        if self.encoder is not None:
            hidden_states = self._copy_states(batch, hidden_states)
        scores = self.head(torch.cat(hidden_states, dim=-1))
        picked = scores.gather(-1, targets.view(-1, 1, 1).expand(-1, scores.shape[1], 1)).squeeze(-1)
        picked = picked.masked_fill(batch.special_tokens_mask, 0.0)
        if not self.complete:
            return picked
        if total is None:
            raise ValueError("this empirical explainer makes its scores complete: pass total")
        real = (~batch.special_tokens_mask).to(picked.dtype)
        missing = total.to(picked.dtype) - picked.sum(-1)
        return picked + real * (missing / real.sum(-1).clamp(min=1.0)).unsqueeze(-1)

    def _copy_states(self, batch: Batch, hidden_states: tuple[torch.Tensor, ...] | None) -> tuple[torch.Tensor, ...]:
        """Every layer's hidden states: the classifier's up to :attr:`branch`, then the copy's."""
        run = partial(self.encoder, attention_mask=batch.attention_mask, output_hidden_states=True)
        if not self.branch:
            return run(input_ids=batch.input_ids, token_type_ids=batch.token_type_ids).hidden_states
        start = hidden_states[self.branch]
        # The copy's first layer is the classifier's layer k + 1: it continues from the classifier's state there.
        with layers.replaced_states(self.encoder, {1: lambda _state: start}):
            own = run(input_ids=batch.input_ids, token_type_ids=batch.token_type_ids).hidden_states
        return (*hidden_states[: self.branch + 1], *own[1:])

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What is saved: the head and the LoRA weights (the rest is the classifier's)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith("head.") or "lora_" in k}

    def ready(self) -> EmpiricalModel:
        """The inference form: the LoRA weights folded into the copy's linear layers, which then replace
        peft's wrappers and, on a CPU with :attr:`int8` set, hold int8 weights (the head stays float: int8
        saves it ~0.1 ms and moved ``empirical-ig-head``'s dev MSE from 0.0627 to 0.0631). Not trainable
        or savable afterwards: training and saving use the model as built.
        """
        from peft.tuners.lora import LoraLayer

        if self.encoder is not None:
            for name, module in list(self.encoder.named_modules()):
                if isinstance(module, LoraLayer):
                    module.merge()
                    self.encoder.set_submodule(name, module.get_base_layer())
            if self.int8 and self.head[1].weight.device.type == "cpu":
                int8_linears(self.encoder)
        return super().ready()


def int8_linears(module: nn.Module) -> None:
    """Give ``module``'s linear layers int8 weights, in place (dynamic quantisation: activations are
    quantised per call; weights per output channel, which halves the error of one scale per matrix at
    the same speed), for inference on a CPU.

    A pass over one sentence is bound by reading the weights, not by arithmetic, and int8 weights are a
    quarter of the bytes: the embedded ``empirical-ig``'s branch (3 layers) takes 3.8-4.3 ms per SST-2 dev
    sentence instead of 8.6 (``benchmarks/explainer_cost.py``), while its scores move far less than their
    distance to the method they imitate (``benchmarks/convergence.py`` measures the int8 form, as the app
    runs it). torch.ao's dynamic quantisation is deprecated in favour of torchao, whose tensor subclasses
    add dispatch overhead per call in eager mode (pytorch/ao#1930): one call per sentence is the cost here.
    """
    with warnings.catch_warnings():  # torch's deprecation notices for torch.ao and quantised tensors
        warnings.simplefilter("ignore")
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        torch.ao.quantization.quantize_dynamic(module, {nn.Linear: qconfig}, dtype=torch.qint8, inplace=True)


class ScoreTotals:
    """What complete scores add up to: ``f_t(input) - f_t(baseline)`` for the explained class ``t``.

    The baseline (every non-special token replaced by the pad token) depends only on a text's length
    and special-token layout, so its logits are computed once per layout and cached: after warm-up
    this costs no model pass.
    """

    _shared: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, classifier: Classifier) -> ScoreTotals:
        """The instance shared by everything that explains ``classifier`` (one cache per classifier)."""
        if classifier not in cls._shared:
            cls._shared[classifier] = cls(classifier)
        return cls._shared[classifier]

    def __init__(self, classifier: Classifier, max_entries: int = 4096):
        self.classifier = classifier
        self.max_entries = max_entries
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, batch: Batch, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The totals ``(batch,)`` and the baseline passes it took (layouts not in the cache)."""
        pad = self.classifier.tokenizer.pad_token_id
        baseline = Batch(
            input_ids=pad_baseline(batch.input_ids, batch.special_tokens_mask, pad),
            attention_mask=batch.attention_mask,
            special_tokens_mask=batch.special_tokens_mask,
            token_type_ids=batch.token_type_ids,
        )
        rows, computed = [], 0
        for row, real in enumerate(batch.attention_mask.bool()):
            # Each layout runs alone, unpadded: its logits then do not depend on which batch met it first.
            single = baseline.map(lambda value, row=row, real=real: value[row : row + 1, real])
            key = tuple(tuple(v[0].tolist()) for v in (single.input_ids, single.token_type_ids) if v is not None)
            cached = self._cache.get(key)
            if cached is None:
                cached = self.classifier.logits(single)[0].float()
                computed += 1
                if len(self._cache) >= self.max_entries:
                    self._cache.clear()
                self._cache[key] = cached
            rows.append(cached)  # held here: a full cache is cleared without losing this batch's rows
        baseline_logits = torch.stack(rows).to(logits.device)
        picked = targets.view(-1, 1)
        return (logits.float().gather(1, picked) - baseline_logits.gather(1, picked)).squeeze(1), computed


def load_empirical(name_or_path: str | Path, classifier: Classifier, *, revision: str | None = None) -> EmpiricalModel:
    """An empirical explainer from a Hub id or a local folder, on ``classifier`` (which must be its own).

    Raises:
        ModelLoadError: nothing loadable there, a corrupt file, or another classifier's explainer.
    """
    return load_artefact(EmpiricalModel, name_or_path, classifier, revision=revision, what="an empirical explainer")


def target_mse(
    model: nn.Module,
    classifier: Classifier,
    batch: TargetBatch,
    *,
    reads_hidden_states: bool,
    totals: ScoreTotals | None,
) -> torch.Tensor:
    """Per-instance token MSE ``(batch,)`` of an explainer on a target batch (``collate_targets``).

    ``model`` is an :class:`EmpiricalModel`, possibly wrapped for training (hence ``reads_hidden_states``,
    its :attr:`~EmpiricalModel.reads_hidden_states`); ``totals`` is needed when it makes its scores complete.
    """
    hidden_states = classifier.prediction_pass(batch, hidden_states=True).hidden_states if reads_hidden_states else None
    total = totals(batch, batch.logits, batch.predicted)[0] if totals else None
    scores = model(batch, batch.predicted, hidden_states, total)
    return token_mse(scores, batch.attributions, batch.special_tokens_mask)


def token_mse(scores: torch.Tensor, targets: torch.Tensor, special_tokens_mask: torch.Tensor) -> torch.Tensor:
    """Per-instance mean squared error over real tokens (special and pad positions left out), shape ``(batch,)``."""
    real = (~special_tokens_mask).float()
    return ((scores - targets) ** 2 * real).sum(-1) / real.sum(-1).clamp(min=1.0)
