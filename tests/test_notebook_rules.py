"""The course's rule for notebooks, checked on every notebook (the rules are in tests/notebook_rules.py).

A failure names the notebook, the cell (counted among all cells from 0, as Jupyter's JSON stores them)
and the line. The second half of the file shows each rule failing on a small example of what it
catches, and passing the honest version of it, so that none of them can silently stop looking.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from notebook_rules import (FAST_BOUND_MARK, check_code, check_markdown, check_notebook, significant_digits,
                            typed_numbers)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RULES = ["self-compare", "fast-bound", "clock", "typed-number"]

# Numbers that may be typed into a notebook's markdown, each with its reason. A number the notebook
# computes (a loss, a time, a count of its data) is printed by its code instead, so it stays true.
YEAR = re.compile(r"(19[5-9]\d|20[0-2]\d)")  # a year of publication or release, in a citation
ALLOWED: dict[str, dict[str, str]] = {
    "*": {
        "256": "the 256 values of a byte: byte-level BPE's starting vocabulary",
        "1024": "the size of the square matrices lesson_lib.device.measure_peak multiplies on a CPU",
        "50,257": "GPT-2's vocabulary, published (Radford et al., 2019)",
    },
    "04_math.ipynb": {
        "4096": "the word2vec trainer's batch of pairs, a default of lesson_lib.embeddings",
    },
    "05_project.ipynb": {
        "3,000,001": "the article's own code: its softmax layer over the GoogleNews vocabulary",
        "128": "the article's own code: batch_size=128, which the cell below reproduces",
    },
    "06_applications.ipynb": {
        "1001": "an example numeral of the translation task, not a measurement",
        "115": "an example numeral of the translation task, not a measurement",
        "1007": "an example numeral of the translation task, not a measurement",
    },
    "08_challenges.ipynb": {
        "184,320": "Llama 2 7B's A100 GPU-hours, published (Touvron et al., 2023, table 2)",
        "312": "the A100's dense bf16 peak in TFLOP/s, published by NVIDIA",
    },
    "10_tang_poems.ipynb": {
        "10.1": "the exercise's number", "10.2": "the exercise's number", "10.3": "the exercise's number",
    },
}


def allowed_for(name: str, numbers_in_text: list[str] | None = None) -> dict[str, str]:
    allowed = {**ALLOWED["*"], **ALLOWED.get(name, {})}
    for number in numbers_in_text or []:
        if YEAR.fullmatch(number):
            allowed[number] = "a year, in a citation"
    return allowed


def findings_of(path: Path, rule: str):
    from notebook_rules import read_cells
    numbers = [n for _, kind, source in read_cells(path) if kind == "markdown" for n in typed_numbers(source)]
    return [f for f in check_notebook(path, allowed_for(path.name, numbers)) if f.rule == rule]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_keeps_the_rule(path, rule):
    findings = findings_of(path, rule)
    assert not findings, f"{len(findings)} place(s) break the rule '{rule}':\n" + "\n".join(map(str, findings))


def test_every_allowed_number_is_still_typed():
    """An allow-list entry whose number no longer appears in its notebook is stale: remove it."""
    from notebook_rules import read_cells
    typed = {path.name: {n for _, kind, source in read_cells(path) if kind == "markdown" for n in typed_numbers(source)}
             for path in NOTEBOOKS}
    everywhere = set().union(*typed.values())
    stale = [(name, number) for name, entries in ALLOWED.items() for number in entries
             if number not in (everywhere if name == "*" else typed.get(name, set()))]
    assert not stale, f"allow-list entries no longer typed anywhere: {stale}"


# ------------------------------------------------------------------ each rule catches what it is for
def code(*sources: str, markdown_before: str = "") -> list[tuple[int, str, str]]:
    cells = [(0, "markdown", markdown_before)] if markdown_before else []
    return cells + [(len(cells) + i, "code", source) for i, source in enumerate(sources)]


def rules_hit(*sources: str, markdown_before: str = "") -> list[str]:
    return [f.rule for f in check_code("example.ipynb", code(*sources, markdown_before=markdown_before))]


def test_self_compare_catches_an_expression_and_its_copies():
    assert rules_hit("assert x == x") == ["self-compare"]
    assert rules_hit("import numpy as np\nb = a.copy()\nassert np.array_equal(a, b)") == ["self-compare"]
    assert rules_hit("b = copy.deepcopy(a)", "c = b", "assert torch.equal(c, a)") == ["self-compare"]
    # a column of a table built from a copy (chapter 9's recall, as it was)
    assert rules_hit("def f(p):\n    r = p.copy()\n    return pd.DataFrame({'p': p, 'r': r})\n"
                     "t = f(x)\nassert np.array_equal(t['r'], t['p'])") == ["self-compare"]
    assert rules_hit("b = a.copy()\nb[0] += 1\nassert not np.array_equal(a, b + 0)") == []
    assert rules_hit("r = tp / (tp + fn)\nassert np.allclose(r, sk_recall)") == []


def test_fast_bound_catches_asserts_under_fast_and_thresholds_chosen_by_it():
    assert rules_hit("if not FAST:\n    assert loss < 1.5") == ["fast-bound"]
    assert rules_hit("if FAST:\n    pass\nelse:\n    assert loss < 1.5") == ["fast-bound"]
    assert rules_hit("assert gap <= (60 if FAST else 10)") == ["fast-bound"]
    assert rules_hit("allowed = 60 if FAST else 10", "assert gap <= allowed") == ["fast-bound"]
    assert rules_hit("assert math.isclose(a, b, rel_tol=0.1 if FAST else 0.01)") == ["fast-bound"]
    # what is not a bound: a step count chosen by FAST, checked exactly
    assert rules_hit("steps = 80 if FAST else 200", "assert len(losses) == steps") == []
    # a declared FAST bound: marked in the cell, and the markdown above says what FAST checks
    declared = f"{FAST_BOUND_MARK} an eighth of the training\nallowed = 60 if FAST else 10\nassert gap <= allowed"
    assert rules_hit(declared, markdown_before="With FAST the GPT has seen an eighth of the steps, so ...") == []
    assert rules_hit(declared, markdown_before="The GPT is within ten points.") == ["fast-bound"]


def test_clock_catches_asserts_on_measured_times():
    assert rules_hit("import time\nt0 = time.perf_counter()\nwork()\nelapsed = time.perf_counter() - t0",
                     "assert elapsed < 2.0") == ["clock"]
    assert rules_hit("def seconds_for(n):\n    s = time.perf_counter()\n    return time.perf_counter() - s",
                     "fast, slow = seconds_for(64), seconds_for(1)", "assert fast < slow") == ["clock"]
    assert rules_hit("profile = profile_training(model)", "table = profile.table.set_index('category')",
                     "assert table.loc['other', 'share'] < 0.15") == ["clock"]
    assert rules_hit("assert result.tokens_per_s > 1000") == ["clock"]
    assert rules_hit("ratio = rows['backward ms'].sum() / rows['forward ms'].sum()", "assert 1 < ratio < 4") == ["clock"]
    # not the clock: a count, a loss beside a time, exact equality of two records of one reading
    assert rules_hit("t0 = time.perf_counter()\nloss = train()\nelapsed = time.perf_counter() - t0",
                     "assert loss < 2.0") == []
    assert rules_hit("timings = time_steps(model)", "for name, t in timings.items():\n    assert t.losses[-1] < 3") == []
    assert rules_hit("assert np.array_equal(chart.x, rows['time'].to_numpy())") == []
    assert rules_hit("TIMES = {'day', 'night'}", "found = nearest('night')", "assert len(found & TIMES) >= 2") == []


def test_typed_number_counts_significant_digits():
    assert significant_digits("17", ".6") == 3 and significant_digits("0", ".25") == 2
    assert significant_digits("1,000", None) == 1 and significant_digits("5,057,198", None) == 7
    assert significant_digits("0", ".00123") == 3 and significant_digits("2,048", None) == 4
    assert typed_numbers("predicted 18.3 s for a run that took 17.6 s (+4.5%), 63.8% of poems") == ["18.3", "17.6", "63.8"]
    # what is not a typed number: versions, identifiers, addresses, code blocks, round numbers, two digits
    assert typed_numbers("torch 2.13.0 on an H100, fp32 and bf16, 1,000 steps, 0.25, 3e9 FLOPs, §9.3, ch05-gpt") == []
    assert typed_numbers("see https://arxiv.org/abs/2203.15556 and [the paper](https://x.org/2001.08361)") == []
    assert typed_numbers("```\nloss = 2.345\n```\nand then") == []


def test_typed_number_is_caught_unless_allowed():
    cells = [(0, "markdown", "It took 17.6 s; GPT-2 has 50,257 tokens.")]
    assert [f.line for f in check_markdown("x.ipynb", cells, {})] == [cells[0][2]] * 2
    assert [f.why.split()[0] for f in check_markdown("x.ipynb", cells, {"50,257": "published"})] == ["17.6"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_code_cell_parses(path):
    """The rules skip a cell they cannot parse; so a cell that does not parse fails here instead."""
    from notebook_rules import parse_code, read_cells
    broken = [index for index, kind, source in read_cells(path) if kind == "code" and parse_code(source) is None]
    assert not broken, f"{path.name}: code cells {broken} are not valid Python"
