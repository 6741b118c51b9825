"""The checking machinery the chapters' exercises share: the registry, `check()` and its guard around the
learner's function (copies of the inputs, a time limit, sys.exit caught), and the helpers the checks use.

The chapters (`ch01.py`, ...) import from here, and the package `__init__` imports both, so the layers
read one way: core <- chapters <- package.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

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


DEFAULT_TIMEOUT = 60.0  # seconds one call of the learner's function may take


def check(id: str, answer: Any, seed: int | None = None, quiet: bool = False,
          timeout: float | None = DEFAULT_TIMEOUT) -> Verdict:
    """Run exercise `id`'s check on `answer` and print the verdict (and return it).

    `seed` draws the check's inputs; by default a fresh one every call. An answer that raises
    NotImplementedError has not been attempted; one that raises anything else, or calls sys.exit(),
    has failed, and the verdict says what it raised. Each call of `answer` may take `timeout` seconds
    (None: no limit); after that it is stopped and has failed. The limit needs SIGALRM, in the main
    thread (where Jupyter and pytest run): elsewhere the answer runs without one.
    """
    if id not in EXERCISES:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"no exercise {id!r}; the exercises are: {known}")
    seed = secrets.randbelow(2**31) if seed is None else seed
    guarded = _Answer(answer, timeout)
    try:
        EXERCISES[id].run(guarded, seed)
        verdict = Verdict(id, "passed", EXERCISES[id].title)
    except _Raised as raised:  # the learner's function raised (or exited): say what, as Python would
        error = raised.error
        if isinstance(error, NotImplementedError):
            verdict = Verdict(id, "not attempted", "replace the `raise NotImplementedError` with your answer, "
                                                    "then run the cell again")
        elif isinstance(error, SystemExit):
            code = "" if error.code is None else repr(error.code)
            verdict = Verdict(id, "failed", f"your function called sys.exit({code}): return the answer instead")
        else:
            verdict = Verdict(id, "failed", f"your function raised {type(error).__name__}: {error}")
    except _TimedOut as timed_out:
        verdict = Verdict(id, "failed", f"your function did not return within {timed_out.seconds:g} s: probably an "
                                        "endless loop (a loop whose condition never turns false?); if it is only "
                                        "slow, check(..., timeout=...) gives it longer")
    except Wrong as wrong:
        verdict = Verdict(id, "failed", str(wrong))
    except Exception as e:  # the check's own code failed, after (or before) the answer returned
        returned = f" (your function returned {describe(guarded.returned)})" if guarded.calls else ""
        verdict = Verdict(id, "failed", f"the check itself failed{returned}: {type(e).__name__}: {e}. That is "
                                        "a bug in the check, not necessarily in your answer: please report it")
    if not quiet:
        print(verdict)
    return verdict


class _Raised(BaseException):
    """What the learner's function raised, carried past the check's code (a BaseException, so that no
    `except Exception` in a check can take it for its own) to `check`."""

    def __init__(self, error: BaseException):
        super().__init__(error)
        self.error = error


class _TimedOut(BaseException):
    """Raised into the learner's function when its time is up (a BaseException, so that an answer's
    `except Exception:` does not swallow it)."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise _TimedOut in the block after `seconds`, and every second after that (for an answer that
    catches it and carries on); then put back the SIGALRM handler and timer that were there before.
    Without SIGALRM (Windows), outside the main thread, or with no limit: no limit."""
    if (not seconds or seconds <= 0 or not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    state = {"armed": True, "fired": False}

    def on_alarm(signum, frame):
        if state["armed"]:
            state["fired"] = True
            raise _TimedOut(seconds)

    try:
        previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    except (ValueError, OSError):  # not the main thread of the main interpreter
        yield
        return
    started = time.monotonic()
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    except BaseException:
        if state["fired"]:  # it caught the alarm, then raised something else: the time still ran out
            raise _TimedOut(seconds) from None
        raise
    finally:
        state["armed"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous_handler is None else previous_handler)
        if previous_delay > 0:  # someone else's timer was running: it goes on where it was
            left = previous_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6), previous_interval)
    if state["fired"]:  # it caught the alarm and returned anyway
        raise _TimedOut(seconds)


class _Answer:
    """The learner's function as a check sees it: called on deep copies of its inputs, under a time
    limit; what it raises comes out as _Raised; Wrong when it changed an input it was given."""

    def __init__(self, function: Any, timeout: float | None):
        self.function, self.timeout = function, timeout
        self.calls, self.returned = 0, None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        given_args, given_kwargs = copy.deepcopy((args, kwargs))
        self.calls += 1
        try:
            with _time_limit(self.timeout):
                result = self.function(*given_args, **given_kwargs)
        except (Exception, SystemExit) as error:
            raise _Raised(error) from error
        self.returned = result
        for name, original, given in self._inputs(args, kwargs, given_args, given_kwargs):
            if not _unchanged(original, given):
                raise Wrong(f"your function changed its input `{name}` ({describe(original)}) in place: leave what "
                            "you are given as it was, and work on a copy (x.clone(), x.copy(), list(x)) or with "
                            "operations that make a new value (x = x * 2, not x *= 2, x[i] = ... or .append)")
        return result

    def _inputs(self, args, kwargs, given_args, given_kwargs):
        """(name, original, the copy the function got) for each input, named as the function names them."""
        try:
            parameters = list(inspect.signature(self.function).parameters.values())
        except (TypeError, ValueError):  # a builtin without a signature
            parameters = []
        for i, (original, given) in enumerate(zip(args, given_args)):
            named = i < len(parameters) and parameters[i].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                                    inspect.Parameter.POSITIONAL_OR_KEYWORD)
            yield (parameters[i].name if named else f"argument {i + 1}"), original, given
        for key, original in kwargs.items():
            yield key, original, given_kwargs[key]


def _unchanged(original: Any, given: Any) -> bool:
    """Whether `given` (the copy the answer got) still equals `original`. Data is compared (tensors,
    arrays, lists, tuples, dicts, sets, strings, numbers); anything else, such as a model, which the
    training loop's answer is meant to change, or a function, is not."""
    if isinstance(original, torch.Tensor):
        if not (isinstance(given, torch.Tensor) and given.shape == original.shape and given.dtype == original.dtype):
            return False
        a, b = original.detach(), given.detach()
        if a.is_floating_point() or a.is_complex():  # NaN where there was NaN counts as unchanged
            return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
        return torch.equal(a, b)
    if isinstance(original, np.ndarray):
        if not (isinstance(given, np.ndarray) and given.shape == original.shape and given.dtype == original.dtype):
            return False
        try:
            return bool(np.array_equal(given, original, equal_nan=original.dtype.kind in "fc"))
        except TypeError:  # an object array
            return bool(np.array_equal(given, original))
    if isinstance(original, (list, tuple)):
        return (type(given) is type(original) and len(given) == len(original)
                and all(_unchanged(a, b) for a, b in zip(original, given)))
    if isinstance(original, dict):
        return (type(given) is type(original) and given.keys() == original.keys()
                and all(_unchanged(original[k], given[k]) for k in original))
    if isinstance(original, (set, frozenset, str, bytes, int, float, complex, np.generic)) or original is None:
        return type(given) is type(original) and (given == original or (given != given and original != original))
    return True


# ----------------------------------------------------------------------------- what checks use

def describe(value: Any) -> str:
    """What `value` is, in a few words for a verdict: "None", "a str", "a list of 3", "a Tensor of shape (4,)"."""
    if value is None:
        return "None"
    kind = type(value).__name__
    article = "an" if kind[0].lower() in "aeiou" or kind == "ndarray" else "a"
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"{article} {kind} of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple, dict)):
        return f"{article} {kind} of {len(value)}"
    return f"{article} {kind}"


def _is_bool(value: Any) -> bool:
    return (isinstance(value, (bool, np.bool_))
            or (isinstance(value, torch.Tensor) and value.dtype == torch.bool)
            or (isinstance(value, np.ndarray) and value.dtype == np.bool_))


def as_number(value: Any, what: str) -> int | float | np.float32:
    """`value` as one number, or Wrong saying what came back instead.

    A Python int or float, a NumPy number (np.float32, np.int64, ...), or an array or tensor holding
    exactly one number is a number; a bool is not. Whole numbers come back as int; a float32 one as
    np.float32, so that `expect_close` judges it at float32's precision; other floats as float.
    """
    if _is_bool(value):
        raise Wrong(f"{what} should be a number, got a bool ({value})")
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        if not value.is_floating_point():
            return int(value.item())
        return np.float32(value.item()) if value.element_size() <= 4 else float(value.item())
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        value = value.reshape(())[()]
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return np.float32(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    raise Wrong(f"{what} should be a number, got {describe(value)}")


def as_tensor(value: Any, what: str) -> torch.Tensor:
    """`value` as a float64 tensor, or Wrong saying what came back instead."""
    if isinstance(value, torch.Tensor) and not value.is_complex():
        return value.detach().cpu().to(torch.float64)
    if (isinstance(value, (np.ndarray, float, int, np.integer, np.floating, list, tuple))
            and not isinstance(value, (bool, np.bool_))):
        try:
            return torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError, RuntimeError):
            pass
    raise Wrong(f"{what} should be a tensor (or numbers), got {describe(value)}")


def _float32(value: Any) -> bool:
    """Whether `value` holds float32 (or narrower) numbers: then it is compared at float32's precision."""
    if isinstance(value, torch.Tensor):
        return value.is_floating_point() and value.element_size() <= 4
    if isinstance(value, (np.ndarray, np.floating)):
        return value.dtype.kind == "f" and value.dtype.itemsize <= 4
    return False


def expect_shape(value: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    got = as_tensor(value, what)
    if tuple(got.shape) != tuple(shape):
        raise Wrong(f"{what}: expected shape {tuple(shape)}, got {tuple(got.shape)}")
    return got


def expect_close(value: Any, expected: torch.Tensor | float, what: str, atol: float = 1e-6,
                 rtol: float = 1e-5) -> None:
    """Wrong, naming the largest difference and where it is, unless `value` equals `expected`.

    A float32 answer is held to float32's precision: `rtol` is at least 16 float32 epsilons."""
    if _float32(value):
        rtol = max(rtol, 16 * float(np.finfo(np.float32).eps))
    expected = torch.as_tensor(expected, dtype=torch.float64)
    got = expect_shape(value, tuple(expected.shape), what)
    if not torch.isfinite(got).all():
        raise Wrong(f"{what} has NaN or infinite entries")
    diff = (got - expected).abs()
    bad = diff > atol + rtol * expected.abs()
    if bad.any():
        worst = int(torch.argmax(torch.where(bad, diff, torch.zeros_like(diff))))
        index = [int(i) for i in np.unravel_index(worst, tuple(expected.shape))]  # [0, 3], not [np.int64(0), ...]
        where = "" if expected.dim() == 0 else f" at {index}"
        raise Wrong(f"{what} differs from the expected value by {diff.flatten()[worst].item():.2e}{where}")
