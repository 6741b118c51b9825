"""Every exercise's check: its reference solution passes, its stub is 'not attempted', each wrong
answer tried fails with its hint; and every notebook ends with its chapter's exercises."""
import importlib
import re
import sys
from pathlib import Path

import nbformat
import pytest

from lesson_lib.exercises import EXERCISES, Wrong, check, exercise, exercises_of

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # solutions/ sits at the top of the course folder, outside the package
CHAPTERS = sorted({int(i[2:4]) for i in EXERCISES})
SEEDS = range(8)  # checks draw fresh inputs for a learner: the solutions must pass on any seed


def solutions(chapter: int):
    return importlib.import_module(f"solutions.ch{chapter:02d}")


def stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize("id", sorted(EXERCISES))
def test_the_reference_solution_passes(id):
    solution = solutions(int(id[2:4])).SOLUTIONS[id]
    for seed in SEEDS:
        verdict = check(id, solution, seed=seed, quiet=True)
        assert verdict.status == "passed", f"{id} seed {seed}: {verdict}"


@pytest.mark.parametrize("id", sorted(EXERCISES))
def test_a_stub_is_not_attempted(id):
    assert check(id, stub, seed=0, quiet=True).status == "not attempted"


WRONG = [(chapter, i, case) for chapter in CHAPTERS for i, case in enumerate(solutions(chapter).WRONG)]


@pytest.mark.parametrize("chapter, index, case", WRONG, ids=[f"{c[0]}-{i}" for _, i, c in WRONG])
def test_a_wrong_answer_fails_with_its_hint(chapter, index, case):
    id, answer, hint = case
    for seed in SEEDS:
        verdict = check(id, answer, seed=seed, quiet=True)
        assert verdict.status == "failed" and hint in verdict.message, f"{id} seed {seed}: {verdict}"
        assert "replace the `raise" not in verdict.message


def test_every_exercise_has_a_solution_and_a_wrong_answer():
    for chapter in CHAPTERS:
        module = solutions(chapter)
        assert set(module.SOLUTIONS) == {e.id for e in exercises_of(chapter)}
        assert {id for id, _, _ in module.WRONG} == set(module.SOLUTIONS)


def test_a_hard_coded_answer_fails_on_fresh_inputs():
    # an answer that returns what the solution gave on one seed is wrong on another
    solution = solutions(3).SOLUTIONS["ch03.char-encode"]
    import numpy as np

    seen = solution("".join(np.random.default_rng(0).choice(list("The quick brown fox, JUMPS!\n"), size=60)))
    assert check("ch03.char-encode", lambda text: seen, seed=0, quiet=True)
    assert not check("ch03.char-encode", lambda text: seen, seed=1, quiet=True)


def test_the_verdict_of_code_that_raises_says_what_it_raised(capsys):
    verdict = check("ch04.sigmoid-derivative", lambda x: x.nonexistent(), seed=0)
    assert verdict.status == "failed" and "AttributeError" in verdict.message
    assert "❌ ch04.sigmoid-derivative: failed" in capsys.readouterr().out


def test_unknown_ids_and_bad_registrations_are_refused():
    with pytest.raises(KeyError, match="ch04.adam-bias-correction"):  # the message lists the known ones
        check("ch04.adam", stub)
    with pytest.raises(ValueError, match="registered twice"):
        exercise("ch01.matmul-flops", "again")(lambda answer, seed: None)
    with pytest.raises(ValueError, match="level"):
        exercise("ch01.new", "x", level=5)
    assert issubclass(Wrong, Exception)


NOTEBOOKS = {int(p.name[:2]): p for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_notebook_ends_with_its_exercises_in_order(chapter):
    notebook = nbformat.read(NOTEBOOKS[chapter], as_version=4)
    headings = [i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown"
                and re.match(r"^## .*Exercises · 练习", c.source)]
    assert len(headings) == 1, "one section 'Exercises · 练习'"
    after = notebook.cells[headings[0]:]
    checked = re.findall(r"check\(\"(ch\d\d\.[a-z0-9-]+)\"", "\n".join(c.source for c in after if c.cell_type == "code"))
    assert checked == [e.id for e in exercises_of(chapter)]
    stubs = [c for c in after if c.cell_type == "code" and "raise NotImplementedError" in c.source]
    assert len(stubs) == len(checked)  # a stub per exercise, left for the learner
    assert 3 <= len(checked) <= 5
