"""Chapter 10: reference solutions, and wrong answers the checks must catch."""
import re


def line_lengths(body):
    verses = re.findall(r"[^，。]+[，。]", "".join(body.split()))  # line breaks do not count
    return [len(verse) - 1 for verse in verses]  # the mark ending a verse is not one of its characters


def alternates(body):
    marks = [ch for ch in body if ch in "，。！？；"]  # the mark that ends each verse, in order
    return bool(marks) and all(mark == ("，" if i % 2 == 0 else "。") for i, mark in enumerate(marks))


def even_line_rhyme(body, group_of):
    verses = re.findall(r"[^，。！？；]+[，。！？；]", "".join(body.split()))
    groups = {group_of(verse[-2]) for verse in verses[1::2]}  # the 2nd, 4th, ... verse, before its mark
    return len(groups) == 1 and None not in groups


SOLUTIONS = {"ch10.line-lengths": line_lengths, "ch10.alternating": alternates,
             "ch10.even-line-rhyme": even_line_rhyme}


def _with_marks(body):
    return [len(verse) for verse in re.findall(r"[^，。]+[，。]", "".join(body.split()))]


def _by_lines(body):
    return [len(line) - 1 for line in body.split("\n") if line]


def _as_many(body):
    return body.count("，") == body.count("。") > 0


def _any_start(body):
    marks = [ch for ch in body if ch in "，。！？；"]
    return all(a != b for a, b in zip(marks, marks[1:]))


def _odd_lines(body, group_of):
    verses = re.findall(r"[^，。！？；]+[，。！？；]", "".join(body.split()))
    return len({group_of(verse[-2]) for verse in verses[0::2]} - {None}) == 1


def _unknown_rhymes(body, group_of):
    verses = re.findall(r"[^，。！？；]+[，。！？；]", "".join(body.split()))
    return len({group_of(verse[-2]) for verse in verses[1::2]}) == 1  # a set {None} passes


def _the_mark(body, group_of):
    verses = re.findall(r"[^，。！？；]+[，。！？；]", "".join(body.split()))
    groups = {group_of(verse[-1]) for verse in verses[1::2]}
    return len(groups) == 1 and None not in groups


WRONG = [("ch10.line-lengths", _with_marks, "includes the mark"),
         ("ch10.line-lengths", _by_lines, "counts lines of text"),
         ("ch10.alternating", _as_many, "as many ， as 。"),
         ("ch10.alternating", _any_start, "the first verse ends in ，"),
         ("ch10.even-line-rhyme", _odd_lines, "even lines"),
         ("ch10.even-line-rhyme", _unknown_rhymes, "rhymes with nothing"),
         ("ch10.even-line-rhyme", _the_mark, "not the mark itself")]
