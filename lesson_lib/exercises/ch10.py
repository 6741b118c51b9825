"""Chapter 10's exercises: the form checker of `lesson_lib.verse`, piece by piece: the length of each
verse, the alternating punctuation, and a rhyme on the even lines."""
from __future__ import annotations

import numpy as np

from .core import Wrong, describe, exercise

# characters the made-up poems are written with (any would do: the checks look only at the shape)
_CHARS = "春风明月山水花江云夜天人秋雨归客长城白日孤舟寒烟草木深故乡千里万家清光落叶"
_CHAR_ARRAY = np.array(list(_CHARS))  # made once: rng.choice turns a list into an array on every call


def _verse(rng, length: int, mark: str) -> str:
    return "".join(rng.choice(_CHAR_ARRAY, size=length).tolist()) + mark


def _layout(rng, verses: list[str]) -> str:
    """The verses as a poem's body: two verses a line as the corpus writes them, or now and then
    one verse a line, so that a line of text and a verse are not the same thing."""
    per_line = 2 if rng.random() < 0.7 else 1
    return "\n".join("".join(verses[i:i + per_line]) for i in range(0, len(verses), per_line))


def _lengths_poem(rng) -> str:
    count = int(rng.choice([2, 4, 6, 8]))
    if rng.random() < 0.5:  # a regular poem, or lines of mixed lengths
        lengths = [int(rng.choice([5, 7]))] * count
    else:
        lengths = [int(x) for x in rng.integers(3, 10, size=count)]
    marks = ["，" if i % 2 == 0 else "。" for i in range(count)]
    return _layout(rng, [_verse(rng, n, m) for n, m in zip(lengths, marks)])


def _expected_lengths(body: str) -> list[int]:
    from ..verse import verses

    return [len(v) - 1 for v in verses("".join(body.split()))]


@exercise("ch10.line-lengths", "the characters in each verse", level=1)
def _line_lengths(answer, seed):
    rng = np.random.default_rng(seed)
    for _ in range(12):
        body = _lengths_poem(rng)
        expected = _expected_lengths(body)
        got = answer(body)
        try:
            got = [int(n) for n in got]
        except (TypeError, ValueError):
            raise Wrong(f"return a list of whole numbers, one per verse; got {describe(got)}") from None
        if got == [n + 1 for n in expected]:
            raise Wrong("each count includes the mark that ends the verse (， or 。): count the characters only")
        lines = [line for line in body.split("\n") if line]
        if len(got) == len(lines) != len(expected):
            raise Wrong("that counts lines of text: a line of the text can hold two verses; a verse ends at ， or 。")
        if got != expected:
            raise Wrong(f"for a poem of {len(expected)} verses you gave {len(got)} counts "
                        f"{'(the right number, but not the right ones)' if len(got) == len(expected) else ''}".strip())


def _alternating_case(rng) -> str:
    count = int(rng.choice([4, 8, 6]))
    length = int(rng.choice([5, 7]))
    marks = ["，" if i % 2 == 0 else "。" for i in range(count)]
    kind = rng.choice(["right", "swapped", "flipped", "exclaim", "paired"])
    if kind == "swapped":  # one mark changed to the other
        i = int(rng.integers(count))
        marks[i] = "。" if marks[i] == "，" else "，"
    elif kind == "flipped":  # alternating, but starting with 。
        marks = ["。" if m == "，" else "，" for m in marks]
    elif kind == "exclaim":  # an exclamation where a full stop belongs
        marks[2 * int(rng.integers(count // 2)) + 1] = str(rng.choice(["！", "？"]))
    elif kind == "paired":  # as many ， as 。, in the wrong order
        marks = ["，"] * (count // 2) + ["。"] * (count // 2)
    return _layout(rng, [_verse(rng, length, m) for m in marks])


def _alternates(body: str) -> bool:
    from ..verse import verses

    found = verses("".join(body.split()))
    return bool(found) and all(v[-1] == ("，" if i % 2 == 0 else "。") for i, v in enumerate(found))


@exercise("ch10.alternating", "，and 。 taking turns", level=2)
def _alternating(answer, seed):
    rng = np.random.default_rng(seed)

    def ask(body: str) -> bool:
        got = answer(body)
        if not isinstance(got, (bool, np.bool_)):
            raise Wrong(f"return True or False, got {describe(got)}")
        return bool(got)

    for body in [_alternating_case(rng) for _ in range(40)]:
        expected, got = _alternates(body), ask(body)
        if got == expected:
            continue
        # what kind of rule was written instead: asked of three poems that each break the rule one way
        if ask("春风明月山，水花江云夜，\n天人秋雨归。长城白日孤。"):
            raise Wrong("as many ， as 。 is not enough: they must take turns, verse after verse")
        if ask("春风明月山。水花江云夜，\n天人秋雨归。长城白日孤，"):
            raise Wrong("taking turns is not enough either: the first verse ends in ，, the second in 。")
        if ask("春风明月山，水花江云夜！\n天人秋雨归，长城白日孤。"):
            raise Wrong("a verse ending in ！ or ？ breaks the pattern: only ， and 。 take turns")
        marks = "".join(ch for ch in body if ch in "，。！？；")
        raise Wrong(f"a poem whose verses end in {marks} should give {expected}, not {bool(got)}")


def _rhyme_case(rng, table: dict[str, str | None]) -> str:
    count = int(rng.choice([4, 8]))
    length = int(rng.choice([5, 7]))
    ends = {g: np.array([c for c, h in table.items() if h == g]) for g in ("A", "B", None)}
    verses = [_verse(rng, length, "，" if i % 2 == 0 else "。") for i in range(count)]

    def end_in(i, group):
        verses[i] = verses[i][:-2] + str(rng.choice(ends[group])) + verses[i][-1]

    kind = rng.choice(["rhymes", "rhymes", "breaks", "unknown", "odd"])
    rhyme, other = ("A", "B") if rng.random() < 0.5 else ("B", "A")
    for i in range(1, count, 2):  # the even lines (the 2nd, the 4th, ...) end in one group
        end_in(i, rhyme)
    if kind == "breaks":  # one even line in the other group
        end_in(2 * int(rng.integers(count // 2)) + 1, other)
    elif kind == "unknown":  # every even line ends in a character of no known group
        for i in range(1, count, 2):
            end_in(i, None)
    elif kind == "odd":  # the odd lines rhyme among themselves, the even ones do not
        for i in range(0, count, 2):
            end_in(i, other)
        end_in(1, "A")
        end_in(3, "B")
    return _layout(rng, verses)


def _ends(body: str, first: int) -> list[str]:
    """The last character (before the mark) of verses first, first + 2, ..."""
    from ..verse import verses

    return [v[-2] for v in verses("".join(body.split()))[first::2]]


def _one_group(groups: set) -> bool:
    return len(groups) == 1 and None not in groups


@exercise("ch10.even-line-rhyme", "the rhyme of the even lines", level=3)
def _even_line_rhyme(answer, seed):
    rng = np.random.default_rng(seed)
    chars = list(rng.permutation(list(_CHARS)))
    # a made-up rhyme table, new each time: the check is about which characters are looked up
    table = {c: ("A" if i % 3 == 0 else "B" if i % 3 == 1 else None) for i, c in enumerate(chars)}
    a, b, unknown = chars[0], chars[1], chars[2]  # one character of group A, one of B, one of none

    def group_of(char):
        return table.get(char)

    def poem(ends):  # a poem of 4 five-character verses whose last characters are `ends`
        return (f"春风明月{ends[0]}，水花江云{ends[1]}。\n"
                f"天人秋雨{ends[2]}，长城白日{ends[3]}。")

    def ask(body: str) -> bool:
        got = answer(body, group_of)
        if not isinstance(got, (bool, np.bool_)):
            raise Wrong(f"return True or False, got {describe(got)}")
        return bool(got)

    for body in [_rhyme_case(rng, table) for _ in range(40)]:
        expected, got = _one_group({group_of(c) for c in _ends(body, 1)}), ask(body)
        if got == expected:
            continue
        # what was looked up instead: asked of three poems that each catch one mistake
        if ask(poem([a, a, a, b])):
            raise Wrong("the rhyme falls on the even lines (the 2nd, 4th, ...), the ones that end in 。")
        if ask(poem([a, unknown, b, unknown])):
            raise Wrong("a character whose rhyme group is unknown (group_of gives None) rhymes with nothing")
        if not ask(poem([b, a, b, a])):
            raise Wrong("look up the last character before each 。, not the mark itself")
        even = _ends(body, 1)
        raise Wrong(f"a poem whose even lines end in {''.join(even)} (groups {[group_of(c) for c in even]}) "
                    f"should give {expected}, not {bool(got)}")
