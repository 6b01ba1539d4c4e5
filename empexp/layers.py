"""Find the pieces of a Hugging Face encoder by structure, not by attribute names like ``model.bert``.

One place for BERT, RoBERTa, XLNet, ELECTRA and their relatives, used by every explainer that hooks
into the model.
"""

from __future__ import annotations

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
