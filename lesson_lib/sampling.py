"""Text generation: temperature, top-k, top-p, a seed, and a streaming form.

Temperature 0 means greedy decoding (the most likely token every time), not a division by
zero. The GPT decodes with its KV cache and the LSTM carries its hidden state, so each new token
costs one position of work instead of a pass over the whole context.

Context rule (the same with and without the cache, so both give the same tokens): a model with a
context limit C sees the tokens from a window start onward. When the window would grow past C,
the start jumps forward so that the last 3C/4 tokens remain; the cache is rebuilt from those.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence

import torch

from .models.base import LanguageModel

MAX_NEW_TOKENS = 10_000  # (placeholder until the sampling change lands)


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 200  # tokens to generate
    temperature: float = 1.0  # 0: greedy; < 1 sharper, > 1 flatter
    top_k: int | None = None  # keep only the k most likely tokens
    top_p: float | None = None  # keep the smallest set of tokens whose probability reaches p
    seed: int | None = None  # same seed, same text
    use_cache: bool = True  # KV cache / carried state where the model has one

    def __post_init__(self):
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 means greedy), got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1 (or None for no limit), got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (or None for no limit), got {self.top_p}")


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> torch.Tensor:
    """The distribution the next token is drawn from, after temperature, top-k and top-p (B, V)."""
    logits = logits.float()
    if temperature == 0:
        probs = torch.zeros_like(logits)
        probs.scatter_(-1, logits.argmax(-1, keepdim=True), 1.0)
        return probs
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # probability mass ranked above each token
        sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)  # the top token always stays
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


class _Decoder:
    """Feeds a growing token sequence to a model and returns next-token logits (1, V)."""

    def __init__(self, model: LanguageModel, ids: list[int], use_cache: bool):
        self.model, self.ids = model, list(ids)
        self.device = next(model.parameters()).device
        self.limit = getattr(model, "context_limit", None)
        self.crop = getattr(model, "receptive_field", None)
        self.use_cache = use_cache and getattr(model, "supports_cache", False)
        self.start, self.cache = 0, None
        self._advance_start()
        self.logits = self._prefill() if self.use_cache else self._recompute()

    def _advance_start(self) -> bool:
        if self.limit is None or len(self.ids) - self.start <= self.limit:
            return False
        self.start = len(self.ids) - (self.limit - self.limit // 4)
        return True

    def _tensor(self, ids: Sequence[int]) -> torch.Tensor:
        return torch.tensor([list(ids)], dtype=torch.long, device=self.device)

    def _prefill(self) -> torch.Tensor:
        logits, self.cache = self.model.forward_cached(self._tensor(self.ids[self.start:]), None)
        return logits[:, -1]

    def _recompute(self) -> torch.Tensor:
        window = self.ids[self.start:]
        if self.crop is not None:
            window = window[-self.crop:]
        logits, _ = self.model(self._tensor(window))
        return logits[:, -1]

    def push(self, token: int) -> torch.Tensor:
        self.ids.append(token)
        jumped = self._advance_start()
        if not self.use_cache:
            self.logits = self._recompute()
        elif jumped:
            self.logits = self._prefill()
        else:
            logits, self.cache = self.model.forward_cached(self._tensor([token]), self.cache)
            self.logits = logits[:, -1]
        return self.logits


class Step(NamedTuple):
    """One generated token and the distributions around it."""

    token: int
    probs: torch.Tensor  # (V,) what the token was drawn from: after temperature, top-k, top-p
    model_probs: torch.Tensor  # (V,) the model's own softmax (temperature 1, nothing cut)


@torch.no_grad()
def generate_steps(model: LanguageModel, prompt_ids: Sequence[int], config: SamplingConfig | None = None,
                   **options) -> Iterator[Step]:
    """Yield a Step for each new token."""
    config = config or SamplingConfig(**options)
    if not prompt_ids:
        raise ValueError("the prompt is empty: give at least one character or token to start from")
    was_training = model.training
    model.eval()
    generator = None
    if config.seed is not None:
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(config.seed)
    try:
        decoder = _Decoder(model, prompt_ids, config.use_cache)
        logits = decoder.logits
        for i in range(config.max_new_tokens):
            probs = next_token_probs(logits, config.temperature, config.top_k, config.top_p)
            if config.temperature == 0:
                token = int(probs.argmax(-1))
            else:
                token = int(torch.multinomial(probs, 1, generator=generator))
            yield Step(token, probs[0], torch.softmax(logits[0].float(), dim=-1))
            if i + 1 < config.max_new_tokens:  # no forward pass for a token nobody will draw
                logits = decoder.push(token)
    finally:
        model.train(was_training)


def generate_ids(model: LanguageModel, prompt_ids: Sequence[int], config: SamplingConfig | None = None,
                 **options) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (token id, the distribution it was drawn from) for each new token."""
    for step in generate_steps(model, prompt_ids, config, **options):
        yield step.token, step.probs


@dataclass(frozen=True)
class GeneratedToken:
    token: int
    text: str  # the text this token completes ('' while it is part of an unfinished character)
    prob: float  # the model's probability of this token (temperature 1)
    top: list[tuple[int, float]]  # the model's most likely tokens at this position, with probabilities


def stream_tokens(model: LanguageModel, tokenizer, prompt: str, config: SamplingConfig | None = None,
                  top: int = 10, **options) -> Iterator[GeneratedToken]:
    """Yield each generated token with its text and probabilities, as it is produced.

    Text is held back while it ends in an incomplete UTF-8 sequence (byte-level BPE can split one
    character over several tokens), so the pieces are always valid text.
    """
    config = config or SamplingConfig(**options)
    ids = list(tokenizer.encode(prompt))
    base = len(tokenizer.decode(ids))  # decode the whole so word tokens get their spaces
    shown = 0
    for i, step in enumerate(generate_steps(model, ids, config)):
        ids.append(step.token)
        text = tokenizer.decode(ids)[base:]
        piece = ""
        if i + 1 == config.max_new_tokens or not text.endswith("\ufffd"):
            piece, shown = text[shown:], len(text)
        values, indices = torch.topk(step.model_probs, min(top, step.model_probs.numel()))
        yield GeneratedToken(step.token, piece, float(step.model_probs[step.token]),
                             list(zip(indices.tolist(), values.tolist())))


def stream(model: LanguageModel, tokenizer, prompt: str, config: SamplingConfig | None = None,
           **options) -> Iterator[str]:
    """Yield generated text piece by piece as tokens are produced (the prompt not included)."""
    for generated in stream_tokens(model, tokenizer, prompt, config, top=1, **options):
        if generated.text:
            yield generated.text


def generate(model: LanguageModel, tokenizer, prompt: str, config: SamplingConfig | None = None,
             **options) -> str:
    """The prompt followed by the generated text."""
    return prompt + "".join(stream(model, tokenizer, prompt, config, **options))
