"""Find the pieces of a Hugging Face encoder by structure, not by attribute names like ``model.bert``.

One place for BERT, RoBERTa, XLNet, ELECTRA and their relatives, used by every explainer that hooks
into the model.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn
from transformers import PreTrainedModel


def embedding_layer(model: PreTrainedModel) -> nn.Module:
    """The module whose output is the input representation attributed by Integrated Gradients.

    ``base_model.embeddings`` (word + position + type embeddings, normalised) where the architecture
    has one, as for BERT, RoBERTa and ELECTRA; otherwise the word embeddings, as for XLNet whose
    positions are relative and enter inside the attention.
    """
    embeddings = getattr(model.base_model, "embeddings", None)
    if isinstance(embeddings, nn.Module):
        return embeddings
    return model.get_input_embeddings()


def position_ids(model: PreTrainedModel, input_ids: torch.Tensor) -> torch.Tensor | None:
    """Position ids the model would derive from ``input_ids``, for models that derive them from the ids.

    RoBERTa-style embeddings number only non-pad tokens. A pad baseline would then move the special
    tokens to other positions, giving them attribution they do not deserve; passing the input's
    positions explicitly keeps baseline and input aligned. Other models return ``None`` (their
    positions do not depend on token identity).
    """
    embeddings = getattr(model.base_model, "embeddings", None)
    derive = getattr(embeddings, "create_position_ids_from_input_ids", None)
    if derive is None:
        return None
    return derive(input_ids, embeddings.padding_idx)


LAYER_PATHS: dict[str, str] = {
    "bert": "encoder.layer",
    "roberta": "encoder.layer",
    "electra": "encoder.layer",
    "xlnet": "layer",
}
"""Where each architecture (``config.model_type``) keeps its stack of layers, relative to ``base_model``.

Add an entry for an architecture the structural search cannot settle, as inseq's model config does:
``empexp.layers.LAYER_PATHS["my-model"] = "blocks"``."""


def encoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The stack of ``num_hidden_layers`` transformer layers.

    Taken from :data:`LAYER_PATHS` for known architectures; otherwise found as the one module list of
    that length in the base model.

    Raises:
        ValueError: the path in :data:`LAYER_PATHS` holds no such list, or the search finds none or
            several (then it names them: add the right one to :data:`LAYER_PATHS`).
    """
    count = model.config.num_hidden_layers
    kind = model.config.model_type
    base = model.base_model
    if kind in LAYER_PATHS:
        stack = base.get_submodule(LAYER_PATHS[kind])
        if not isinstance(stack, nn.ModuleList) or len(stack) != count:
            raise ValueError(f"{kind}: LAYER_PATHS says {LAYER_PATHS[kind]!r}, which is not a list of {count} layers")
        return stack
    found = {name: m for name, m in base.named_modules() if isinstance(m, nn.ModuleList) and len(m) == count}
    if len(found) != 1:
        what = f"several lists of {count} modules ({', '.join(found)})" if found else f"no list of {count} layers"
        raise ValueError(
            f"{kind}: {what} in {type(base).__name__}; name the layers in empexp.layers.LAYER_PATHS[{kind!r}]"
        )
    return next(iter(found.values()))


def sequence_first(model: PreTrainedModel) -> bool:
    """Whether the model's layers pass hidden states as ``(tokens, batch, hidden)`` (XLNet) rather than batch first.

    Found by running a batch of one two-token text and looking at what the word embeddings return,
    then cached on the model.
    """
    cached = getattr(model, "_empexp_sequence_first", None)
    if cached is not None:
        return cached
    shapes = []
    handle = model.get_input_embeddings().register_forward_hook(lambda _m, _i, out: shapes.append(out.shape))
    training = model.training
    model.eval()  # no dropout: a model being trained must not have its random stream shifted by this pass
    try:
        with torch.no_grad():
            model(input_ids=torch.zeros(1, 2, dtype=torch.long, device=model.device))
    finally:
        handle.remove()
        model.train(training)
    model._empexp_sequence_first = shapes[0][0] == 2
    return model._empexp_sequence_first


def hidden_sizes(model: PreTrainedModel) -> list[int]:
    """Widths of the ``num_hidden_layers + 2`` hook points of :func:`replaced_states`."""
    embedding = model.get_input_embeddings().embedding_dim
    return [embedding] + [model.config.hidden_size] * (model.config.num_hidden_layers + 1)


@contextmanager
def replaced_states(model: PreTrainedModel, replace: dict[int, Callable[[torch.Tensor], torch.Tensor]]):
    """Within the context, hook point ``i``'s state ``h`` (batch first) becomes ``replace[i](h)``.

    Point 0 is the word embeddings' output, point ``1 + j`` the input of layer ``j``, point ``L + 1``
    the last layer's output: the word embeddings followed by the model's ``hidden_states``.
    """
    stack = encoder_layers(model)
    flip = sequence_first(model)

    def swap(state: torch.Tensor, point: int) -> torch.Tensor:
        if flip:
            return replace[point](state.transpose(0, 1)).transpose(0, 1)
        return replace[point](state)

    def on_output(point: int):
        def hook(_module, _inputs, output):
            if isinstance(output, tuple):
                return (swap(output[0], point), *output[1:])
            return swap(output, point)

        return hook

    def on_input(point: int):
        def hook(_module, args, kwargs):
            if args:
                return (swap(args[0], point), *args[1:]), kwargs
            key = next(iter(kwargs))  # the hidden states are the first argument of every layer
            return args, {**kwargs, key: swap(kwargs[key], point)}

        return hook

    handles = []
    last = len(stack) + 1
    for point in replace:
        if point == 0:
            handles.append(model.get_input_embeddings().register_forward_hook(on_output(0)))
        elif point == last:
            handles.append(stack[-1].register_forward_hook(on_output(point)))
        else:
            handles.append(stack[point - 1].register_forward_pre_hook(on_input(point), with_kwargs=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
