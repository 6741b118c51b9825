"""Is it Tang verse? A checker of regular form, and an approximate rhyme check.

A poem of regular form (近体诗 in its simplest shape), as checked here:
- 4 lines (绝句, jueju) or 8 lines (律诗, lüshi), a line being a verse ended by `，` or `。`;
- every line of the same length, 5 characters (五言) or 7 (七言), the punctuation not counted;
- the lines end in `，` and `。` alternately, starting with `，`.
Measured on the corpus itself, 63.8% of the 57,607 poems pass (the rest are longer 古体诗, irregular
lines, other punctuation, or damaged text): that is the rate a model's poems are compared with.

Rhyme is reported apart and is only an approximation: the even lines of regular verse rhyme in
the rhyme groups of 平水韵, read in Middle Chinese; here the last characters of the even lines are
compared by the rhyme group of their *modern* Mandarin finals (pypinyin's finals sorted into the
十三辙, the thirteen rhyme groups of modern Mandarin verse), so many true rhymes of the Tang read as
non-rhymes today, and the reverse.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_VERSE = re.compile(r"[^，。！？；、\s]+[，。！？；]")  # a run of characters and the mark that ends it
LINE_COUNTS = {4: "绝句", 8: "律诗"}
LINE_LENGTHS = {5: "五言", 7: "七言"}


@dataclass(frozen=True)
class Form:
    regular: bool  # all the rules above hold
    lines: int  # verses found
    length: int | None  # characters per verse, when all verses have the same length
    reason: str  # why not regular ("" when it is)

    @property
    def name(self) -> str:
        """五言绝句, 七言律诗, ... for a regular poem; "" otherwise."""
        return LINE_LENGTHS[self.length] + LINE_COUNTS[self.lines] if self.regular else ""


def verses(body: str) -> list[str]:
    """The verses of a poem's body (its lines without the title), each with its end mark."""
    return _VERSE.findall(body)


def form(body: str) -> Form:
    """The form of a poem's body: the text after its title line (line breaks are ignored)."""
    text = "".join(body.split())
    found = verses(text)
    if not text:
        return Form(False, 0, None, "empty")
    if "".join(found) != text:
        return Form(False, len(found), None, "text outside verses ended by ， or 。")
    lengths = {len(v) - 1 for v in found}
    length = lengths.pop() if len(lengths) == 1 else None
    if len(found) not in LINE_COUNTS:
        return Form(False, len(found), length, f"{len(found)} lines, not 4 or 8")
    if length is None:
        return Form(False, len(found), None, "lines of different lengths")
    if length not in LINE_LENGTHS:
        return Form(False, len(found), length, f"{length} characters a line, not 5 or 7")
    if any(v[-1] != ("，" if i % 2 == 0 else "。") for i, v in enumerate(found)):
        return Form(False, len(found), length, "lines do not end in ， and 。 alternately")
    return Form(True, len(found), length, "")


def split_poem(block: str) -> tuple[str, str]:
    """(title, body) of a poem block as the corpus writes it: the title on the first line."""
    title, _, body = block.strip("\n").partition("\n")
    return title.strip(), body


# 十三辙: pypinyin's finals (ü written v) -> rhyme group
THIRTEEN_RHYMES = {
    **dict.fromkeys(["a", "ia", "ua"], "发花"), **dict.fromkeys(["o", "e", "uo"], "梭波"),
    **dict.fromkeys(["ie", "ve", "ue"], "乜斜"), **dict.fromkeys(["i", "v", "er"], "一七"), "u": "姑苏",
    **dict.fromkeys(["ai", "uai"], "怀来"), **dict.fromkeys(["ei", "ui", "uei"], "灰堆"),
    **dict.fromkeys(["ao", "iao"], "遥条"), **dict.fromkeys(["ou", "iu", "iou"], "油求"),
    **dict.fromkeys(["an", "ian", "uan", "van"], "言前"), **dict.fromkeys(["en", "in", "un", "uen", "vn"], "人辰"),
    **dict.fromkeys(["ang", "iang", "uang"], "江阳"), **dict.fromkeys(["eng", "ing", "ong", "iong", "ueng"], "中东"),
}


def rhyme_group(char: str) -> str | None:
    """The modern rhyme group (十三辙) of a character's Mandarin reading; None if it has none known."""
    from pypinyin import Style, lazy_pinyin

    return THIRTEEN_RHYMES.get(lazy_pinyin(char, style=Style.FINALS, strict=False)[0])


def rhymes(body: str) -> bool | None:
    """Do the even lines end in characters of one modern rhyme group? None when the poem is not of
    regular form. An approximation of 平水韵: see the module's docstring."""
    if not form(body).regular:
        return None
    ends = [v[-2] for v in verses("".join(body.split()))[1::2]]  # the character before each 。
    groups = {rhyme_group(char) for char in ends}
    return len(groups) == 1 and None not in groups


def form_rate(bodies: list[str]) -> float:
    """The fraction of these poem bodies that are of regular form."""
    if not bodies:
        raise ValueError("no poems to check")
    return sum(form(b).regular for b in bodies) / len(bodies)


def write_poem(model, tokenizer, title: str, config) -> str:
    """A poem's body written by `model` after the prompt "TITLE\\n" (the corpus's layout), up to the
    blank line that ends a poem or `config.max_new_tokens` tokens (a `sampling.SamplingConfig`)."""
    from .sampling import stream

    text = ""
    for piece in stream(model, tokenizer, f"{title}\n", config):
        text += piece
        if "\n\n" in text:
            break
    return text.split("\n\n")[0]


def prompt_poems(corpus, n: int, seed: int = 0) -> list:
    """`n` poems (`data.Work`s) drawn at random, without replacement, from the whole of `corpus`: their
    titles are the prompts a model writes after, their bodies the real poems to compare with. The whole
    corpus, not its last 10% (the validation text): the corpus is in the order of its source files, and
    its last tenth holds few poems of regular form (15% against 64% overall)."""
    import numpy as np

    if not 0 < n <= len(corpus.works):
        raise ValueError(f"n must be between 1 and the corpus's {len(corpus.works):,} poems, got {n}")
    picked = np.random.default_rng(seed).choice(len(corpus.works), size=n, replace=False)
    return [corpus.works[i] for i in picked]


def write_poems(model, tokenizer, titles: list[str], config) -> list[str]:
    """`write_poem` for each title; with a seed in `config`, poem i is drawn with seed + i, so each poem is
    the same however many are written and in whatever order."""
    import dataclasses

    return [write_poem(model, tokenizer, title,
                       config if config.seed is None else dataclasses.replace(config, seed=config.seed + i))
            for i, title in enumerate(titles)]


def counted_bigram(ids, vocab_size: int):
    """The bigram model that maximum-likelihood training on the token ids `ids` converges to, by counting:
    the logits of the token after `a` are the log counts of the pairs (a, b), a pair never seen gets a
    logit of -1e9 (probability 0, without a NaN), and a token never followed by any gets the uniform
    distribution. A vocabulary of 9,269 characters makes a table of 86 million entries; training it by
    gradient steps would take far longer than counting it."""
    import numpy as np
    import torch

    from .models import build_model

    ids = np.asarray(ids, dtype=np.int64)
    pairs, counts = np.unique(ids[:-1] * vocab_size + ids[1:], return_counts=True)
    model = build_model({"family": "bigram", "vocab_size": vocab_size})
    with torch.no_grad():
        table = model.logits_table.weight  # (V, V): row = current token
        table.fill_(-1e9)
        table.view(-1)[torch.from_numpy(pairs)] = torch.from_numpy(np.log(counts)).to(table.dtype)
    return model.eval()


def poem_table(poems: dict[str, list[str]]):
    """One row per source of poems (the corpus, a model, ...): how many, the share of regular form,
    each form's share, and the share of the regular ones that rhyme by modern rhyme groups."""
    import pandas as pd

    rows = []
    for source, bodies in poems.items():
        forms = [form(b) for b in bodies]
        regular = [b for b, f in zip(bodies, forms) if f.regular]
        row = {"source": source, "poems": len(bodies), "regular form": form_rate(bodies)}
        for length in LINE_LENGTHS:
            for count in LINE_COUNTS:
                name = LINE_LENGTHS[length] + LINE_COUNTS[count]
                row[name] = sum(f.name == name for f in forms) / len(bodies)
        row["rhyme (of regular, modern)"] = (sum(bool(rhymes(b)) for b in regular) / len(regular)
                                             if regular else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows).set_index("source")
