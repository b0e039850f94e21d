"""A small word-level text encoder for teachers with a closed vocabulary (the shapes world).

Prompts are lower-cased and split on whitespace; each word must be in the vocabulary, so a
typo is an error rather than a silently unknown token. A start token is always present, so
the empty prompt (the unconditional one) is a valid, learnable sequence.
"""

from __future__ import annotations

import torch
from torch import nn

PAD, START = "<pad>", "<s>"


class WordTokenizer:
    def __init__(self, vocabulary: list[str], max_length: int):
        self.tokens = [PAD, START] + sorted(set(vocabulary))
        self.index = {w: i for i, w in enumerate(self.tokens)}
        self.max_length = max_length

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        ids = torch.full((len(prompts), self.max_length), self.index[PAD], dtype=torch.long)
        for row, prompt in enumerate(prompts):
            words = prompt.lower().split()
            unknown = [w for w in words if w not in self.index]
            if unknown:
                raise ValueError(
                    f"prompt {prompt!r} has words outside this teacher's vocabulary: {unknown}; "
                    f"known words: {' '.join(self.tokens[2:])}"
                )
            if len(words) + 1 > self.max_length:
                raise ValueError(f"prompt {prompt!r} is longer than {self.max_length - 1} words")
            seq = [self.index[START]] + [self.index[w] for w in words]
            ids[row, : len(seq)] = torch.tensor(seq)
        return ids


class WordTextEncoder(nn.Module):
    """Token embeddings + positions -> a few transformer layers -> per-token states and a
    pooled vector (mean over non-padding tokens)."""

    def __init__(self, vocab_size: int, max_length: int, dim: int, layers: int, heads: int):
        super().__init__()
        self.token = nn.Embedding(vocab_size, dim)
        self.position = nn.Parameter(torch.zeros(1, max_length, dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padding = ids == 0
        h = self.token(ids) + self.position[:, : ids.shape[1]]
        h = self.norm(self.encoder(h, src_key_padding_mask=padding))
        keep = (~padding).unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(1) / keep.sum(1)
        return h, pooled
