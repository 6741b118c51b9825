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

The check never trusts the answer with its own data, and never blames it for the check's own faults.
Each call of the learner's function goes through `_Answer`: it gets deep copies of its inputs (so it
cannot change what the check computes its expected value from), and if it changes them anyway the
verdict says so (a function given a list, an array or a tensor must leave it as it was, unless, like
the model of the training loop, changing it is the exercise); it runs under a time limit (`timeout`,
by SIGALRM where there is one: an endless loop fails instead of hanging the notebook); and what it
raises, `sys.exit()` included, is told apart from what the check's own code raises after it
returned. KeyboardInterrupt (the notebook's stop button) is never caught.

The checks live in one module per chapter (`ch01.py`, ...), registered by id in `core.py`. Reference
solutions live outside the package, in `solutions/chNN.py`; the tests run every check against its
solution (it must pass), its stub and a plausible wrong answer (they must not).
"""
from .core import (DEFAULT_TIMEOUT, EXERCISES, STATUSES, Exercise, Verdict, Wrong, as_number, as_tensor, check,  # noqa: F401
                   describe, exercise, exercises_of, expect_close, expect_shape)

from . import ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09, ch10  # noqa: E402,F401  (registers their exercises)
