"""Exercises checked the moment a learner runs the cell.

Each chapter's notebook ends with a few exercises. The learner writes a function in the notebook
and runs

    check("ch04.adam-bias-correction", adam_step)

The check calls the function on fresh inputs, drawn from a new seed each time and never shown in
the notebook (so an answer that hard-codes what it saw fails), compares what comes back with what
the package computes, and says "passed", or what is wrong with a hint ("expected shape (4, 16, 65),
got (4, 65)"; "differs from the expected value by 3.1e-02 at [0, 3]"); never the solution. A stub
that still raises NotImplementedError is "not attempted", not a failure, so a notebook whose
exercises are left empty runs top to bottom.

The checks live in one module per chapter (`ch01.py`, ...), registered here by id. Reference
solutions live outside the package, in `solutions/chNN.py`; the tests run every check against its
solution (it must pass), its stub and a plausible wrong answer (they must not).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

STATUSES = ("passed", "failed", "not attempted")


class Wrong(Exception):
    """What is wrong with an answer, in words for the learner: a hint, never the solution."""


@dataclass(frozen=True)
class Exercise:
    id: str  # "ch04.adam-bias-correction": chapter, then a name
    title: str  # one line, shown with the verdict
    level: int  # 1 warm-up, 2 the chapter's core, 3 a stretch
    run: Callable[[Any, int], None]  # (answer, seed) -> None, or raises Wrong


@dataclass(frozen=True)
class Verdict:
    id: str
    status: str  # passed | failed | not attempted
    message: str

    def __bool__(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        mark = {"passed": "✅", "failed": "❌", "not attempted": "…"}[self.status]
        return f"{mark} {self.id}: {self.status}" + (f": {self.message}" if self.message else "")


EXERCISES: dict[str, Exercise] = {}


def exercise(id: str, title: str, level: int = 2) -> Callable:
    """Register the decorated function `run(answer, seed)` as the check of exercise `id`."""
    if not 1 <= level <= 3:
        raise ValueError(f"an exercise's level is 1, 2 or 3, got {level}")

    def register(run: Callable[[Any, int], None]) -> Callable[[Any, int], None]:
        if id in EXERCISES:
            raise ValueError(f"exercise {id!r} is registered twice")
        EXERCISES[id] = Exercise(id, title, level, run)
        return run

    return register


def exercises_of(chapter: int) -> list[Exercise]:
    """The exercises of chapter `chapter`, in the order they were written (the order of the notebook)."""
    return [e for e in EXERCISES.values() if e.id.startswith(f"ch{chapter:02d}.")]


def check(id: str, answer: Any, seed: int | None = None, quiet: bool = False) -> Verdict:
    """Run exercise `id`'s check on `answer` and print the verdict (and return it).

    `seed` draws the check's inputs; by default a fresh one every call. An answer that raises
    NotImplementedError has not been attempted; one that raises anything else has failed, and the
    verdict says what it raised.
    """
    if id not in EXERCISES:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"no exercise {id!r}; the exercises are: {known}")
    seed = secrets.randbelow(2**31) if seed is None else seed
    try:
        EXERCISES[id].run(answer, seed)
        verdict = Verdict(id, "passed", EXERCISES[id].title)
    except NotImplementedError:
        verdict = Verdict(id, "not attempted", "replace the `raise NotImplementedError` with your answer, "
                                                "then run the cell again")
    except Wrong as wrong:
        verdict = Verdict(id, "failed", str(wrong))
    except Exception as e:  # the learner's code raised: say what, as Python would
        verdict = Verdict(id, "failed", f"your code raised {type(e).__name__}: {e}")
    if not quiet:
        print(verdict)
    return verdict


# ----------------------------------------------------------------------------- what checks use

def as_tensor(value: Any, what: str) -> torch.Tensor:
    """`value` as a float64 tensor, or Wrong saying what came back instead."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64)
    if isinstance(value, (np.ndarray, float, int, list, tuple)) and not isinstance(value, bool):
        try:
            return torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            pass
    raise Wrong(f"{what} should be a tensor (or numbers), got {type(value).__name__}")


def expect_shape(value: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    got = as_tensor(value, what)
    if tuple(got.shape) != tuple(shape):
        raise Wrong(f"{what}: expected shape {tuple(shape)}, got {tuple(got.shape)}")
    return got


def expect_close(value: Any, expected: torch.Tensor | float, what: str, atol: float = 1e-6,
                 rtol: float = 1e-5) -> None:
    """Wrong, naming the largest difference and where it is, unless `value` equals `expected`."""
    expected = torch.as_tensor(expected, dtype=torch.float64)
    got = expect_shape(value, tuple(expected.shape), what)
    if not torch.isfinite(got).all():
        raise Wrong(f"{what} has NaN or infinite entries")
    diff = (got - expected).abs()
    bad = diff > atol + rtol * expected.abs()
    if bad.any():
        worst = int(torch.argmax(torch.where(bad, diff, torch.zeros_like(diff))))
        where = "" if expected.dim() == 0 else f" at {list(np.unravel_index(worst, tuple(expected.shape)))}"
        raise Wrong(f"{what} differs from the expected value by {diff.flatten()[worst].item():.2e}{where}")


from . import ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09, ch10  # noqa: E402,F401  (registers their exercises)
