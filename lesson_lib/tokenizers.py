"""Three ways to turn text into token ids, behind one small interface.

- `CharTokenizer`: one id per character. Exact, tiny vocabulary, long sequences: the first lessons.
- `WordTokenizer`: one id per lowercased word or punctuation mark, with `<unk>` for rare words.
  Lossy on purpose, to show what a closed vocabulary costs.
- `BPETokenizer`: byte-level BPE (HuggingFace `tokenizers`), what GPT-2 uses: any text round-trips
  exactly, common strings become single tokens.

All share `encode`, `decode`, `vocab_size` and a JSON form (`to_dict`, `save`, `load_tokenizer`),
so a run folder stores its tokenizer next to its checkpoints and any model can be sampled later.
`StreamDecoder` turns ids that arrive one at a time (a model generating) into text pieces, at a
cost per id that does not grow with the text.
"""
from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .fileio import atomic_write

# Rust-side threads make a later fork (DataLoader workers, notebooks) print a warning and can
# deadlock; single-threaded training of a few MB takes seconds anyway. The user's choice wins.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class UnknownCharactersError(ValueError):
    """The text holds characters outside a CharTokenizer's vocabulary; `.characters` lists them."""

    def __init__(self, characters: Sequence[str]):
        self.characters = sorted(characters)
        shown = ", ".join(repr(c) for c in self.characters[:20])
        more = f" and {len(self.characters) - 20} more" if len(self.characters) > 20 else ""
        super().__init__(
            f"the text contains {len(self.characters)} character(s) the tokenizer does not know: "
            f"{shown}{more}. The model was trained on a character set that lacks them; remove or "
            "replace them in the text (or train a new tokenizer on text that contains them).")


class Tokenizer:
    """The shared interface. Subclasses set `kind` and implement the methods below."""

    kind: str = ""

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description that `tokenizer_from_dict` turns back into an equal tokenizer."""
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically: a crash mid-write leaves the old file, never half a file."""
        atomic_write(Path(path), json.dumps(self.to_dict(), ensure_ascii=False))

    def _checked_ids(self, ids: Sequence[int]) -> list[int]:
        """Plain ints (from lists, numpy arrays or tensors), each inside the vocabulary."""
        checked = [int(i) for i in ids]
        for i in checked:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside this {self.kind} tokenizer's vocabulary "
                                 f"(0..{self.vocab_size - 1}): were the ids made by another tokenizer?")
        return checked

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class CharTokenizer(Tokenizer):
    """One token per character; the vocabulary is the sorted distinct characters of the training text."""

    kind = "char"

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        if not chars or any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("a CharTokenizer needs a non-empty list of single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("a CharTokenizer's characters must be distinct")
        self.chars = chars
        self._ids = {c: i for i, c in enumerate(chars)}

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        if not text:
            raise ValueError("cannot train a tokenizer on empty text: give it some text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def unknown_characters(self, text: str) -> list[str]:
        """Characters of `text` this tokenizer cannot encode, sorted."""
        return sorted(set(text) - self._ids.keys())

    def encode(self, text: str) -> list[int]:
        try:
            return [self._ids[c] for c in text]
        except KeyError:
            raise UnknownCharactersError(self.unknown_characters(text)) from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[i] for i in self._checked_ids(ids))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": self.chars}


class WordTokenizer(Tokenizer):
    """Lowercased words and single punctuation marks, from a capped vocabulary.

    A word is a run of letters, digits, underscores and apostrophes, so Shakespeare's elisions
    ("'tis", "o'er", "diseas'd") stay whole; the price is that a word in single quotes keeps them.
    Every other non-space character is a token of its own. Decoding is lossy: case is gone,
    whitespace becomes single spaces (none before `, . ; : ! ? ) ] }` or after `( [ {`), and
    rare words come back as `<unk>`.
    """

    kind = "word"
    PAD = "<pad>"
    UNK = "<unk>"
    PAD_ID = 0
    UNK_ID = 1
    PATTERN = re.compile(r"[\w']+|[^\w\s]")
    NO_SPACE_BEFORE = frozenset(",.;:!?)]}")
    NO_SPACE_AFTER = frozenset("([{")

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if words[:2] != [self.PAD, self.UNK]:
            raise ValueError(f"a WordTokenizer's vocabulary must start with {self.PAD!r}, {self.UNK!r}")
        if len(set(words)) != len(words):
            raise ValueError("a WordTokenizer's words must be distinct")
        self.words = words
        self._ids = {w: i for i, w in enumerate(words)}

    @classmethod
    def tokenize(cls, text: str) -> list[str]:
        """The lowercased word and punctuation tokens of `text`, before mapping to ids."""
        return cls.PATTERN.findall(text.lower())

    @classmethod
    def train(cls, text: str, max_vocab: int = 10000) -> WordTokenizer:
        """Keep the `max_vocab - 2` most frequent tokens (ties alphabetically), after `<pad>` and `<unk>`."""
        if max_vocab < 3:
            raise ValueError(f"max_vocab={max_vocab} leaves no room for words next to <pad> and <unk>; "
                             "use at least 3")
        counts = Counter(cls.tokenize(text))
        if not counts:
            raise ValueError("the training text has no words: give it some text")
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        return cls([cls.PAD, cls.UNK] + ranked[: max_vocab - 2])

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(token, self.UNK_ID) for token in self.tokenize(text)]

    def decode(self, ids: Sequence[int]) -> str:
        pieces: list[str] = []
        for i in self._checked_ids(ids):
            word = self.words[i]
            if pieces and word not in self.NO_SPACE_BEFORE and pieces[-1] not in self.NO_SPACE_AFTER:
                pieces.append(" ")
            pieces.append(word)
        return "".join(pieces)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "words": self.words}


class BPETokenizer(Tokenizer):
    """Byte-level BPE: text is UTF-8 bytes, so every string is encodable and decodes back exactly.

    Decoding only part of a sequence may split a multi-byte character; those bytes show as U+FFFD
    (the replacement character).

    Training counts the pre-tokens (GPT-2's: words with their leading space, runs of digits, of
    punctuation, of whitespace), then merges pairs inside them. HuggingFace's trainer takes time that
    grows with the square of a pre-token's length (each merge shifts the rest of the word along), so
    a pre-token longer than `_MAX_WORD_BYTES` (a text without spaces: 20 MB of letters would take
    days) is cut into pieces of that many bytes first. No word of a real text is that long, so those
    texts learn exactly the merges they always did.
    """

    kind = "bpe"
    _MAX_WORD_BYTES = 1024  # a longer pre-token is cut into pieces this long before pairs are counted
    _TRAIN_PIECE_CHARS = 1 << 12  # training reads the text in pieces of about this many characters
    _PROGRESS_CHARS = 8_000_000  # a text this long trains for seconds: show progress on stderr

    def __init__(self, hf_tokenizer: Any):
        self._tok = hf_tokenizer  # a tokenizers.Tokenizer

    @classmethod
    def train(cls, text: str, vocab_size: int = 512) -> BPETokenizer:
        from tokenizers import Regex, Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers
        from tqdm.auto import tqdm

        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if vocab_size < len(alphabet):
            raise ValueError(f"vocab_size={vocab_size} is too small for byte-level BPE: the "
                             f"{len(alphabet)} byte tokens alone need that many; use at least 256")
        if not text:
            raise ValueError("cannot train a tokenizer on empty text: give it some text")
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok = HFTokenizer(models.BPE())
        # Training only: after the byte-level split (one character per byte from then on), cut any
        # pre-token longer than the bound; one no longer than it stays whole. FixedLength (tokenizers
        # >= 0.21) does what the regex does, in less time.
        if hasattr(pre_tokenizers, "FixedLength"):
            bound = pre_tokenizers.FixedLength(length=cls._MAX_WORD_BYTES)
        else:
            bound = pre_tokenizers.Split(Regex(r"[\s\S]{1,%d}" % cls._MAX_WORD_BYTES), "isolated")
        tok.pre_tokenizer = pre_tokenizers.Sequence([byte_level, bound])
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet,
                                      show_progress=False)
        # Text is fed in pieces cut where a pre-token starts (so the counts are the whole text's), which
        # shows how far counting has come on a big text; learning the merges after it is quick.
        with tqdm(total=len(text), desc="BPE: counting words", unit="char", unit_scale=True, file=sys.stderr,
                  disable=len(text) < cls._PROGRESS_CHARS, leave=False) as progress:
            def pieces():
                for piece in cls._pieces(text, cls._TRAIN_PIECE_CHARS):
                    yield piece
                    progress.update(len(piece))
                progress.set_description(f"BPE: learning up to {vocab_size - len(alphabet)} merges")

            tok.train_from_iterator(pieces(), trainer=trainer)
        tok.pre_tokenizer = byte_level  # encoding splits as before: the saved tokenizer is unchanged
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    # Right after a non-space character, a space or a line break always starts a new pre-token (no
    # pre-token holds a non-space character followed by whitespace; Python's \S, not str.isspace(), is
    # never whitespace to the tokenizer's regex either), and the pre-tokens on either side of such a
    # place are the same whether the text is cut there or not (checked for every Unicode character
    # before a space, a line break or more). So cutting text there changes no id when encoding and no
    # count when training.
    _SAFE_CUT = re.compile(r"(?<=\S)[ \n]")
    _CHUNK_CHARS = 1 << 16

    @classmethod
    def _pieces(cls, text: str, size: int) -> Iterator[str]:
        """`text` cut at safe places, each piece (but the last) the shortest one of at least `size`
        characters: their pre-tokens are the text's. A piece without a safe place in it stays whole."""
        start = 0
        while len(text) - start > 2 * size:
            cut = cls._SAFE_CUT.search(text, start + size)
            if cut is None:
                break
            yield text[start:cut.start()]
            start = cut.start()
        yield text[start:]

    def encode(self, text: str) -> list[int]:
        """Long text is encoded in ~64k-character chunks: faster, less memory, same ids."""
        ids: list[int] = []
        for piece in self._pieces(text, self._CHUNK_CHARS):
            ids.extend(self._tok.encode(piece).ids)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(self._checked_ids(ids))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer_json": self._tok.to_str()}


class StreamDecoder:
    """Text for ids pushed one at a time: `push(id)` returns the text that id adds, `flush()` what
    was held back. Joined, the pieces equal `decode(context + ids)[len(decode(context)):]` exactly.

    Decoding the whole sequence at every id costs time quadratic in its length; this decodes a short
    window instead. The window starts at a *stable point*: a place after which the text of later
    ids does not depend on anything before the window. For each kind:
    - char: every boundary is stable (a character per id).
    - word: the space before a word depends on the word before it only, so a window that keeps one
      earlier id decodes the rest with the same spaces as the whole.
    - bpe: the text is the UTF-8 decoding of the tokens' bytes, where an unfinished character shows
      as a trailing U+FFFD. When the decoded ids do not end in U+FFFD, the bytes end on a whole
      character, so the decoding of later bytes starts there afresh: a stable point.
    So a window runs from one stable point (`start`) through the next (`stable`) to the newest id;
    pieces are cut from the window's text after what is already shown. A trailing U+FFFD is held
    back, since it may yet become part of a character, and everything before it is final. Each push
    decodes the ids since the last-but-one stable point: a few, where characters end on token
    boundaries (always for char and word tokenizers).
    """

    def __init__(self, tokenizer: Tokenizer, context: Sequence[int] = ()):
        self.decode = tokenizer.decode
        self.ids = [int(i) for i in context]
        self.text = self.decode(self.ids)  # the window's text, the window being ids[start:]
        self.start = 0
        # a context that ends mid-character gives no stable point; the start of the text always is one
        self.stable = 0 if self.text.endswith("\ufffd") else len(self.ids)
        self.shown = len(self.text)  # characters of `text` already returned

    def push(self, token: int) -> str:
        """The text that `token` completes ('' while it ends in an unfinished character)."""
        self.ids.append(int(token))
        self.text = self.decode(self.ids[self.start:])
        unfinished = self.text.endswith("\ufffd")
        end = len(self.text) - unfinished  # a trailing U+FFFD waits; all before it is final
        piece, self.shown = self.text[self.shown:end], end
        if not unfinished:  # a new stable point: the window moves up to begin at the previous one
            self.start, self.stable = self.stable, len(self.ids)
            self.text = self.decode(self.ids[self.start:])
            self.shown = len(self.text)
        return piece

    def flush(self) -> str:
        """The text held back: at the end of generation an unfinished character stays U+FFFD."""
        piece, self.shown = self.text[self.shown:], len(self.text)
        return piece


_KINDS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "word": WordTokenizer, "bpe": BPETokenizer}
TOKENIZER_KINDS = tuple(_KINDS)  # the one list of tokenizer kinds: the CLI, the dashboard and specs read it


def _json_name(value: Any) -> str:
    """What a JSON value is, in words: 'a list', 'a number', 'null', ..."""
    if value is None:
        return "null"
    for kind, name in ((bool, "true or false"), (int, "a number"), (float, "a number"), (str, "a string"),
                       (list, "a list"), (dict, "a JSON object")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from `to_dict()` output; a ValueError says what is wrong with a damaged one."""
    kinds = ", ".join(sorted(_KINDS))
    if not isinstance(d, dict):
        raise ValueError(f"not a tokenizer description: it holds {_json_name(d)}, not a JSON object")
    if "kind" not in d:
        raise ValueError(f"not a tokenizer description: 'kind' is missing (one of {kinds})")
    kind = d["kind"]
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"not a tokenizer description: 'kind' is {kind!r}, expected one of {kinds}")
    field = {"char": "chars", "word": "words", "bpe": "tokenizer_json"}[kind]
    if field not in d:
        raise ValueError(f"the {kind} tokenizer description lacks its {field!r} field")
    value = d[field]
    if kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        if not isinstance(value, str):
            raise ValueError(f"the bpe tokenizer description's 'tokenizer_json' must be a string (HuggingFace's "
                             f"tokenizer JSON), not {_json_name(value)}")
        try:
            hf_tokenizer = HFTokenizer.from_str(value)
        except Exception as e:  # the Rust side raises a bare Exception on malformed JSON
            raise ValueError(f"the bpe tokenizer description is malformed: {' '.join(str(e).split())}") from None
        model = type(hf_tokenizer.model).__name__
        if model != "BPE":
            raise ValueError(f"the bpe tokenizer description holds a {model} model, not BPE")
        return BPETokenizer(hf_tokenizer)
    single = kind == "char"
    if not isinstance(value, list) or not all(isinstance(x, str) and (len(x) == 1 or not single) for x in value):
        shown = _json_name(value) if not isinstance(value, list) else "a list with other things in it"
        raise ValueError(f"the {kind} tokenizer description's {field!r} must be a list of "
                         f"{'single characters' if single else 'strings'}, not {shown}")
    return _KINDS[kind](value)


_DAMAGED_ADVICE = "restore the file from a copy, or delete the run it belongs to and train a new one"


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer written by `Tokenizer.save`; a damaged file gives a ValueError that names it."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a tokenizer file: point at the tokenizer.json inside it")
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} is not a regular file: point at a tokenizer.json written by tokenizer.save")
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer file at {path}: save one with tokenizer.save(path) "
                                "or point at the tokenizer.json of a run folder")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else e
        raise ValueError(f"{path} is damaged: it is not a tokenizer JSON file ({reason}); {_DAMAGED_ADVICE}") from None
    try:
        return tokenizer_from_dict(d)
    except ValueError as e:
        raise ValueError(f"{path} is damaged: {e}; {_DAMAGED_ADVICE}") from None


def train_tokenizer(kind: str, text: str, vocab_size: int | None = None) -> Tokenizer:
    """Train a tokenizer of `kind`; `vocab_size` caps word and BPE vocabularies (chars need none)."""
    if kind not in _KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}: use one of {', '.join(sorted(_KINDS))}")
    if kind == "char":
        tokenizer = CharTokenizer.train(text)
        if vocab_size is not None and tokenizer.vocab_size > vocab_size:
            raise ValueError(f"the text has {tokenizer.vocab_size} distinct characters, more than "
                             f"vocab_size={vocab_size}: raise vocab_size or leave it unset")
        return tokenizer
    if kind == "word":
        return WordTokenizer.train(text, max_vocab=10000 if vocab_size is None else vocab_size)
    return BPETokenizer.train(text, vocab_size=512 if vocab_size is None else vocab_size)
