"""The plays as dialogue: speaker lines, each play's cast, and the turns a model writes.

In the Gutenberg texts a speech starts with its speaker's name on a line of its own, after a blank
line, and the speech follows on the next line:

    Ham.                          GONZALO.                      THESEUS
    To be, or not to be,--        He'll be hang'd yet,          What say you, Hermia?

Some texts abbreviate (`Ham.`, `Ber.`), most write names in capitals (`GONZALO.`), one (A
Midsummer Night's Dream) drops the full stop. `speaker_lines` finds them by that layout: a short
name-like line with a blank line before it and text after it. Headings (`ACT I.`, `SCENE 2`) and
stage directions (in brackets) are not speakers. Names are compared after `normalise`
(capitals, no full stop), so `Ham.` and `HAM.` are one speaker, and `HAMLET.` another.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .data import Corpus

# a name: capital first, then letters, digits, spaces, apostrophes, '&' and hyphens; at most 4 words
_NAME = r"[A-Z][A-Za-z0-9'&-]*(?: [A-Za-z0-9'&-]+){0,3}"
_WITH_STOP = re.compile(rf"{_NAME}\.")  # "Ham.", "GONZALO.", "First Lord."
_CAPITALS = re.compile(r"[A-Z][A-Z'&-]+(?: [A-Z'&-]+){0,3}")  # "THESEUS": no full stop, so capitals only
_NOT_SPEAKERS = {"ACT", "SCENE", "PROLOGUE", "EPILOGUE", "THE", "FINIS", "EXIT", "EXEUNT", "ENTER", "END", "DRAMATIS"}


def normalise(name: str) -> str:
    """How speaker names are compared: surrounding space and a final full stop dropped, capitals."""
    return name.strip().rstrip(".").strip().upper()


def is_speaker_line(line: str) -> bool:
    """Whether a line, on its own, has the form of a speaker line (`Ham.`, `GONZALO.`, `THESEUS`)."""
    line = line.rstrip()  # some texts leave a space after the name
    if not line or line != line.lstrip() or len(line) > 40:
        return False
    if not (_WITH_STOP.fullmatch(line) or _CAPITALS.fullmatch(line)):
        return False
    return normalise(line).split(" ")[0] not in _NOT_SPEAKERS


@dataclass(frozen=True)
class SpeakerLine:
    line: int  # 0-based line number in the text
    start: int  # character offset of the line in the text
    name: str  # as written, e.g. "Ham."


def speaker_lines(text: str, need_speech: bool = True) -> list[SpeakerLine]:
    """Every speaker line of `text`, in order: a name-like line at the start or after a blank line,
    followed (when `need_speech`) by a non-blank line that is not a stage direction."""
    lines = text.split("\n")
    found, offset = [], 0
    for i, line in enumerate(lines):
        after_blank = i == 0 or not lines[i - 1].strip()
        if after_blank and is_speaker_line(line):
            follows = lines[i + 1] if i + 1 < len(lines) else ""
            if not need_speech or (follows.strip() and not follows.lstrip().startswith("[")):
                found.append(SpeakerLine(i, offset, line.rstrip()))
        offset += len(line) + 1
    return found


def casts(corpus: Corpus) -> dict[str, Counter]:
    """For every play of the corpus (poems have no speakers): how many speeches each name begins,
    keyed by the normalised name. Names that open fewer than 2 speeches are kept too."""
    result = {}
    for work in corpus.works:
        names = Counter(normalise(s.name) for s in speaker_lines(work.text))
        if names:
            result[work.stem] = names
    return result


def written_forms(text: str) -> dict[str, str]:
    """normalised name -> the form the text writes most often (`HAM` -> `Ham.`): what a prompt should use."""
    forms: dict[str, Counter] = {}
    for s in speaker_lines(text):
        forms.setdefault(normalise(s.name), Counter())[s.name] += 1
    return {name: counts.most_common(1)[0][0] for name, counts in forms.items()}


def turn_kind(name: str, play: str, cast_of: Mapping[str, Iterable[str]]) -> str:
    """Where a generated speaker name belongs: 'same play' (in `play`'s cast), 'other play' (only in the
    casts of other plays), or 'no character' (in no cast at all)."""
    key = normalise(name)
    if key in cast_of[play]:
        return "same play"
    if any(key in names for stem, names in cast_of.items() if stem != play):
        return "other play"
    return "no character"


def unigram_same_play_rate(play: str, cast_of: Mapping[str, Counter]) -> float:
    """The chance that a speaker line drawn from all the corpus's speeches (by frequency, blind to the
    play) names a character of `play`: the rate a model would reach that knew names but not plays."""
    total = Counter()
    for names in cast_of.values():
        total.update(names)
    in_play = sum(count for name, count in total.items() if name in cast_of[play])
    return in_play / sum(total.values())
