"""Run the notebooks as a learner does: top to bottom with `FAST = False` (what `make test-full` runs).

    python tests/full_lessons.py                 # every notebook, in order, full lesson
    python tests/full_lessons.py 08 09           # only these (by number or file name)
    python tests/full_lessons.py --fast 10       # FAST mode instead, as `make test` runs it

Each executed copy is kept in build/executed/ (or --out) so a failure can be read cell by cell; the
runs the notebooks train go to a fresh folder, build/executed/runs/, as on a new machine, unless
--runs-dir names another (chapter 6 and 9 start from chapter 5's runs, so run 05 first or keep a
folder where it ran). At the end a table of times, one row per notebook, is printed and written to
build/executed/times.md; a failure names the notebook, the cell and the error, and the exit status is 1.
Not part of `make test` or CI: on 2 CPU cores the full lessons take most of an hour.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
CELL_TIMEOUT_S = 3600  # a full lesson's longest cell trains for several minutes


def pick(names: list[str]) -> list[Path]:
    every = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        found = [path for path in every if path.name == name or path.name.startswith(name.zfill(2) + "_")
                 or path.stem == name]
        if not found:
            sys.exit(f"no notebook called {name!r} in {NOTEBOOKS_DIR}: give a number (08) or a file name")
        chosen += found
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="numbers (08) or file names; default: every notebook")
    parser.add_argument("--fast", action="store_true", help="FAST = True, as the tests run them")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "executed")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where the notebooks' runs go (default: a fresh OUT/runs, emptied first)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import pytest
    from test_notebooks import execute, install_kernel, poll_in_slices  # the tests' own papermill run

    poll_in_slices(pytest.MonkeyPatch())  # the same guard against a lost wake-up as the tests use
    paths = pick(args.notebooks)
    args.out.mkdir(parents=True, exist_ok=True)
    runs_dir = args.runs_dir
    if runs_dir is None:
        runs_dir = args.out / "runs"
        shutil.rmtree(runs_dir, ignore_errors=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    mode = "FAST" if args.fast else "full lesson"
    with tempfile.TemporaryDirectory(prefix="lesson-kernel-") as prefix:
        os.environ["JUPYTER_PATH"] = install_kernel(Path(prefix), "lesson-lib (full lessons)")
        os.environ.update({"LESSON_RUNS_DIR": str(runs_dir.resolve()), "MPLBACKEND": "Agg",
                           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
        rows = []
        for path in paths:
            executed = args.out / path.name
            print(f"\n=== {path.name} ({mode}) -> {executed}", flush=True)
            started = time.perf_counter()
            detail = (execute(path, executed, args.fast, CELL_TIMEOUT_S, progress_bar=True) or "")[:400]
            result = "failed" if detail else "passed"
            seconds = time.perf_counter() - started
            rows.append((path.name, result, seconds, detail))
            print(f"=== {path.name}: {result} in {seconds:.0f} s {detail}", flush=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Notebooks run top to bottom, {mode}, {when}, {os.cpu_count()} CPU cores; runs in {runs_dir}", "",
             "| notebook | result | time |", "|---|---|---|"]
    lines += [f"| {name} | {result}{': ' + detail if detail else ''} | {seconds:.0f} s |"
              for name, result, seconds, detail in rows]
    lines.append(f"| all | {sum(r[1] == 'passed' for r in rows)} of {len(rows)} passed | {sum(r[2] for r in rows):.0f} s |")
    table = "\n".join(lines)
    print("\n" + table)
    (args.out / ("times-fast.md" if args.fast else "times.md")).write_text(table + "\n")
    (args.out / "times.json").write_text(json.dumps([dict(zip(["notebook", "result", "seconds", "detail"], r))
                                                     for r in rows], indent=1))
    return 0 if all(r[1] == "passed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
