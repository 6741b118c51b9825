"""Text generation: temperature, top-k, top-p, a seed, and a streaming form.

Temperature 0 means greedy decoding (the most likely token every time), not a division by
zero. The GPT decodes with its KV cache and the LSTM carries its hidden state, so each new token
costs one position of work instead of a pass over the whole context.

Context rule (the same with and without the cache, so both give the same tokens): a model with a
context limit C sees the tokens from a window start onward. When the window would grow past C,
the start jumps forward so that the last 3C/4 tokens remain; the cache is rebuilt from those.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence

import torch

from .device import check_seed
from .models.base import LanguageModel
from .tokenizers import StreamDecoder

# The most tokens one call may generate; the CLI's --max-new-tokens and the dashboard's slider read
# it. 10,000 tokens is 10,000 characters with a char tokenizer (a few pages; more with BPE), longer
# than any lesson needs yet only seconds of work for the CPU presets' GPTs, while a slip of the
# finger (100000, or a million) is refused instead of holding a shared CPU or the dashboard for
# minutes. Streamed text costs the same per token however long it grows, so the cap is about time.
MAX_NEW_TOKENS = 10_000


def _whole_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # bool is an int to Python
        raise TypeError(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")


def _real_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 200  # tokens to generate, at most MAX_NEW_TOKENS
    temperature: float = 1.0  # 0: greedy; < 1 sharper, > 1 flatter
    top_k: int | None = None  # keep only the k most likely tokens
    top_p: float | None = None  # keep the smallest set of tokens whose probability reaches p
    seed: int | None = None  # same seed, same text
    use_cache: bool = True  # KV cache / carried state where the model has one
    # a GPT decodes each token through one CUDA graph (a fixed-size cache, one launch per token instead of
    # hundreds); on a CPU the same fixed-size path runs without a graph. Greedy output is unchanged.
    cuda_graph: bool = False

    def __post_init__(self):
        # checked here so a bad value is named, not met later as a NaN probability inside torch
        _whole_number("max_new_tokens", self.max_new_tokens)
        if not 0 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise ValueError(f"max_new_tokens must be at least 0 and at most {MAX_NEW_TOKENS} (the package's "
                             f"cap, sampling.MAX_NEW_TOKENS), got {self.max_new_tokens}: for longer text, "
                             "generate again with the end of this text as the prompt")
        _real_number("temperature", self.temperature)
        if not math.isfinite(self.temperature):  # nan would pass the check below: nan < 0 is False
            raise ValueError(f"temperature must be a finite number >= 0 (0 means greedy), "
                             f"got {self.temperature}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 means greedy), got {self.temperature}")
        if self.top_k is not None:
            _whole_number("top_k", self.top_k)
            if self.top_k < 1:
                raise ValueError(f"top_k must be at least 1 (or None for no limit), got {self.top_k}")
        if self.top_p is not None:
            _real_number("top_p", self.top_p)
            if not 0 < self.top_p <= 1:  # nan fails this comparison too
                raise ValueError(f"top_p must be in (0, 1] (or None for no limit), got {self.top_p}")
        if self.seed is not None:
            _whole_number("seed", self.seed)
            check_seed(int(self.seed))


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


class _GraphDecoder(_Decoder):
    """A GPT's decoding with a cache of fixed size (`GPT.forward_static`): on a CUDA device the one-token
    step is captured once as a CUDA graph and replayed for every token.

    Generating on a GPU is launch-bound: a small model's step is hundreds of tiny kernels, each
    launched by Python. A graph records them once and replays them with one launch. The prompt (and
    each window jump of the context rule) is still a plain `forward_cached` pass, whose keys and
    values are copied into the fixed cache.
    """

    def __init__(self, model: LanguageModel, ids: list[int]):
        self.graph, self.buffers = None, None
        super().__init__(model, ids, use_cache=True)

    def _prefill(self) -> torch.Tensor:
        logits, present = self.model.forward_cached(self._tensor(self.ids[self.start:]), None)
        if self.buffers is None:
            self._allocate(present[0][0])
        n = present[0][0].size(2)
        for (keys, values), (k, v) in zip(self.buffers, present):
            keys[:, :, :n], values[:, :, :n] = k, v
        return logits[:, -1]

    def _allocate(self, like: torch.Tensor) -> None:
        B, H, _, D = like.shape
        size = (B, H, self.model.config.block_size, D)
        self.buffers = [(like.new_zeros(size), like.new_zeros(size)) for _ in self.model.blocks]
        self.token = torch.zeros((B, 1), dtype=torch.long, device=self.device)  # the graph's inputs
        self.position = torch.zeros(1, dtype=torch.long, device=self.device)
        if self.device.type == "cuda":
            # warm up on a side stream (the first calls allocate and choose kernels), then record one step;
            # what the warm-up writes at position 0 is overwritten by the prefill that follows
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    self.model.forward_static(self.token, self.position, self.buffers)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.logits_out = self.model.forward_static(self.token, self.position, self.buffers)

    def push(self, token: int) -> torch.Tensor:
        self.ids.append(token)
        if self._advance_start():
            self.logits = self._prefill()
            return self.logits
        self.token.fill_(token)
        self.position.fill_(len(self.ids) - 1 - self.start)
        if self.graph is not None:
            self.graph.replay()
            self.logits = self.logits_out[:, -1].clone()  # the graph's output is overwritten by the next replay
        else:
            self.logits = self.model.forward_static(self.token, self.position, self.buffers)[:, -1]
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
        if config.cuda_graph and hasattr(model, "forward_static"):
            decoder = _GraphDecoder(model, prompt_ids)
        else:
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
    character over several tokens), so the pieces are always valid text. Joined, they are exactly
    the decoding of prompt and new tokens together, after the prompt's text (word tokens get their
    spaces), and decoding a token does not cost more as the text grows (see `StreamDecoder`).
    """
    config = config or SamplingConfig(**options)
    ids = list(tokenizer.encode(prompt))
    text = StreamDecoder(tokenizer, ids)
    for i, step in enumerate(generate_steps(model, ids, config)):
        piece = text.push(step.token)
        if i + 1 == config.max_new_tokens:  # the end: an unfinished character is shown as it is
            piece += text.flush()
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
