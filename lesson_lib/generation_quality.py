"""How good, how varied, how repetitive: numbers for generated text.

Decoding settings trade one thing for another. Greedy decoding writes what the model finds most
likely, and loops; a high temperature writes varied text the model itself finds unlikely. Three
measures make the trade-off visible:

- `distinct_n`: unique n-grams / all n-grams of a text (Li et al., 2016, "A Diversity-Promoting
  Objective Function for Neural Conversation Models"). 1.0: no n-gram occurs twice.
- `repetition`: the fraction of n-grams in the last part of a text that already occurred earlier
  in it. A model stuck in a loop scores near 1.
- `mean_log_prob`: the mean log-probability per token that the model (at temperature 1, nothing
  cut) gave the tokens it wrote. Higher means the text is more typical *for the model*; it is not
  a measure of quality on its own (a loop is very probable).
- `non_word_share`: the fraction of the words written that a vocabulary (the training text's words,
  say) does not hold: how much of a character model's text is letters that spell no word.

`words` splits text into lowercase words, the unit distinct-n and repetition are usually counted
in; `generate_scored` generates with any `SamplingConfig` and keeps the model's probability of
each token; `score_continuation` recomputes those probabilities with one teacher-forced pass, an
independent check of what the sampler reported.
"""
from __future__ import annotations

import math
import re
from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass

import torch

from .models.base import LanguageModel
from .sampling import SamplingConfig, stream_tokens

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")  # letters, with inner apostrophes kept: "o'er", "'tis" -> "tis"


def words(text: str) -> list[str]:
    """Lowercase words of `text`, punctuation and numbers dropped: "Ay, my lord!" -> ["ay", "my", "lord"]."""
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[Hashable], n: int) -> list[tuple]:
    """All n-grams of `tokens` in order (len(tokens) - n + 1 of them; none if the text is shorter)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1, got {n!r}")
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(tokens: Sequence[Hashable], n: int) -> float:
    """Unique n-grams / all n-grams. A string counts in characters; pass `words(text)` for words."""
    grams = ngrams(tokens, n)
    if not grams:
        raise ValueError(f"{len(tokens)} tokens hold no {n}-gram: generate more text, or use a smaller n")
    return len(set(grams)) / len(grams)


def repetition(tokens: Sequence[Hashable], n: int = 3, tail: float = 0.5) -> float:
    """The fraction of n-grams in the last `tail` of the text that already occurred before them.

    An n-gram counts as repeated when the same n-gram starts at any earlier position (the earlier
    one may overlap it). 0: the end of the text says only new things; 1: it repeats itself.
    """
    if not 0 < tail <= 1:
        raise ValueError(f"tail must be in (0, 1], got {tail}: it is the fraction of the text to look at")
    grams = ngrams(tokens, n)
    start = len(grams) - math.ceil(tail * len(grams))
    if start < 1:
        raise ValueError(f"{len(tokens)} tokens are too few to have n-grams both before and in the last "
                         f"{tail:.0%}: generate more text, or use a smaller n")
    seen = set(grams[:start])
    repeated = 0
    for gram in grams[start:]:
        repeated += gram in seen
        seen.add(gram)
    return repeated / (len(grams) - start)


def mean_log_prob(probs: Sequence[float]) -> float:
    """Mean natural-log probability per token (nats; 0 is the maximum, for text the model was sure of)."""
    if not len(probs):
        raise ValueError("no token probabilities: generate at least one token")
    if min(probs) <= 0:
        raise ValueError("a probability of 0 has log-probability -inf: was the text drawn from this model?")
    return sum(math.log(p) for p in probs) / len(probs)


def non_word_share(texts: Sequence[str], vocabulary: Collection[str]) -> float:
    """The fraction of the words of `texts` (split by `words`, all texts together) not in `vocabulary`."""
    if isinstance(texts, str):
        raise TypeError("non_word_share() takes a list of texts: wrap one text in []")
    written = [w for t in texts for w in words(t)]
    if not written:
        raise ValueError("the texts hold no word: generate more text")
    return sum(w not in vocabulary for w in written) / len(written)


@dataclass(frozen=True)
class ScoredText:
    prompt: str
    text: str  # the generated text, without the prompt
    token_ids: list[int]  # the generated tokens
    probs: list[float]  # the model's probability of each generated token (temperature 1, nothing cut)


def generate_scored(model: LanguageModel, tokenizer, prompt: str, config: SamplingConfig) -> ScoredText:
    """Generate after `prompt` with `config`, keeping the model's own probability of every token."""
    pieces, ids, probs = [], [], []
    for token in stream_tokens(model, tokenizer, prompt, config, top=1):
        pieces.append(token.text)
        ids.append(token.token)
        probs.append(token.prob)
    return ScoredText(prompt, "".join(pieces), ids, probs)


@torch.no_grad()
def score_continuation(model: LanguageModel, prompt_ids: Sequence[int], ids: Sequence[int]) -> list[float]:
    """The model's probability of each of `ids` after `prompt_ids`, from one teacher-forced forward pass.

    Prompt and continuation must fit in the model's context together (no sliding window here).
    """
    sequence = list(prompt_ids) + list(ids)
    limit = getattr(model, "context_limit", None)
    if limit is not None and len(sequence) - 1 > limit:
        raise ValueError(f"{len(sequence) - 1} input tokens exceed the model's context of {limit}: score a "
                         "shorter continuation")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits, _ = model(torch.tensor([sequence[:-1]], device=device))  # (1, T - 1, V)
    finally:
        model.train(was_training)
    probs = torch.softmax(logits[0, len(prompt_ids) - 1:].float(), dim=-1)  # (len(ids), V)
    return probs.gather(1, torch.tensor(ids, device=device).unsqueeze(1)).squeeze(1).tolist()


def quality(texts: Sequence[str], probs: Sequence[Sequence[float]], ns: Sequence[int] = (1, 2, 3),
            repeat_n: int = 3, vocabulary: Collection[str] | None = None) -> dict[str, float]:
    """One row of a comparison table for a set of generated texts (say, one decoding setting over
    several prompts): distinct-n over the words of all texts together (n-grams never cross from one
    text into the next; Li et al. count over all responses too), the mean repetition of word
    `repeat_n`-grams in each text's second half, the mean log-probability over all tokens, and, when
    a `vocabulary` is given, the share of non-words (`non_word_share`)."""
    if isinstance(texts, str):
        raise TypeError("quality() takes a list of texts (and a list of probability lists): wrap one text in []")
    if len(texts) != len(probs) or not texts:
        raise ValueError(f"need one probability list per text, and at least one text: {len(texts)}, {len(probs)}")
    tokens = [words(t) for t in texts]
    row = {}
    for n in ns:
        grams = [g for t in tokens for g in ngrams(t, n)]
        if not grams:
            raise ValueError(f"the texts hold no word {n}-gram: generate more text, or use a smaller n")
        row[f"distinct-{n}"] = len(set(grams)) / len(grams)
    row[f"repeated {repeat_n}-grams"] = sum(repetition(t, repeat_n) for t in tokens) / len(tokens)
    row["mean log-prob"] = mean_log_prob([p for ps in probs for p in ps])
    if vocabulary is not None:
        row["non-words"] = non_word_share(texts, vocabulary)
    return row
