"""How long `make test` (or `make check`) takes on this machine, and its ten slowest tests.

    python bench/test_suite.py                   # make test in this checkout
    python bench/test_suite.py --check           # make check instead
    python bench/test_suite.py --busy            # with one core kept busy by another program all along
    python bench/test_suite.py --clone           # on a clean clone of this repository's HEAD, as CI runs it

--clone runs `CI=true bash .ci/run` in a fresh clone (so the time to create the virtual environment is in the
wall time, not in pytest's); otherwise `make` runs here with the virtual environment it already has.
The figures printed: pytest's own time (from its summary line), the whole command's wall time, the tests'
result, and the ten slowest tests as pytest's --durations reports them. Targets (the test-speed issue), on
2 CPU cores: make test <= 600 s of pytest with nothing else running, and green with one core busy;
make check <= 180 s.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS_S = {"test": 600, "check": 180}


def busy_core() -> subprocess.Popen:
    """Another program that keeps one core busy until it is killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def slowest(output: str, count: int = 10) -> list[str]:
    """The first `count` lines of pytest's 'slowest durations' section."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "slowest" in line and "durations" in line), None)
    if start is None:
        return []
    found = [line for line in lines[start + 1:] if re.match(r"\s*[\d.]+s (call|setup|teardown)", line)]
    return found[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="make check instead of make test")
    parser.add_argument("--busy", action="store_true", help="keep one core busy with another program")
    parser.add_argument("--clone", action="store_true", help="a clean clone of HEAD, as CI (make test only)")
    args = parser.parse_args()
    target = "check" if args.check else "test"
    if args.clone and args.check:
        parser.error("--clone runs CI's command, which is make test")

    with tempfile.TemporaryDirectory(prefix="suite-") as scratch:
        env = dict(os.environ)  # the tests choose their own threads (tests/conftest.py sets OMP_NUM_THREADS)
        if args.clone:
            where = Path(scratch) / "clone"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True)
            command, env["CI"] = ["bash", ".ci/run"], "true"
        else:
            where, command = ROOT, ["make", "--no-print-directory", target]
        hog = busy_core() if args.busy else None
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=where, env=env, capture_output=True, text=True)
        finally:
            wall = time.perf_counter() - started
            if hog:
                hog.kill()
                hog.wait()
    output = done.stdout + done.stderr
    summary = next((line.strip("= ") for line in reversed(output.splitlines()) if re.search(r" in [\d.]+s", line)), "")
    pytest_s = re.search(r" in ([\d.]+)s", summary)
    print(f"make {target}{' (clean clone, CI=true bash .ci/run)' if args.clone else ''}"
          f"{', one core kept busy by another program' if args.busy else ''}; "
          f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} CPU cores")
    print(f"result: {summary or 'no pytest summary (see the output below)'}; exit status {done.returncode}")
    if pytest_s:
        seconds = float(pytest_s.group(1))
        if args.busy:  # the target under load is to stay green; the time is reported
            target_line = f"target: green with a core busy -> {'met' if done.returncode == 0 else 'NOT met'}"
        else:
            met = seconds <= TARGETS_S[target] and done.returncode == 0
            target_line = f"target {TARGETS_S[target]} s -> {'met' if met else 'NOT met'}"
        print(f"pytest: {seconds:.0f} s; whole command: {wall:.0f} s; {target_line}")
    print("ten slowest:")
    for line in slowest(output):
        print("  " + line.strip())
    if done.returncode != 0:
        print(output[-6000:])
        sys.exit(done.returncode)


if __name__ == "__main__":
    main()
