"""How the suite shares the machine (tests/conftest.py): threads per process, the slow tests first, one group."""
import ast
import os
from pathlib import Path

import torch

from conftest import SLOW_FIRST, threads_per_process
from test_notebooks import NOTEBOOKS_DIR, SHARED_RUNS

TESTS = Path(__file__).resolve().parent


def test_each_process_gets_its_share_of_the_cores(monkeypatch):
    def cores(count):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(count)), raising=False)

    cores(2)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert threads_per_process() == 1  # two workers on two cores: one thread each
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT")
    assert threads_per_process() == 2  # one process: every core
    cores(8)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    assert threads_per_process() == 2
    cores(1)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert threads_per_process() == 1  # never none


def test_this_process_and_its_children_run_torch_on_that_share():
    assert os.environ["OMP_NUM_THREADS"] == str(threads_per_process())  # what a kernel or subprocess inherits
    assert torch.get_num_threads() == threads_per_process()


def test_every_test_named_slow_first_exists():
    for name in SLOW_FIRST:
        module, function = name.split("::")
        function, _, param = function.partition("[")
        tree = ast.parse((TESTS / module).read_text(encoding="utf-8"))
        assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, name
        if module == "test_notebooks.py":
            assert (NOTEBOOKS_DIR / param.rstrip("]")).is_file(), name
    assert len(set(SLOW_FIRST)) == len(SLOW_FIRST)


def test_the_notebooks_that_share_runs_come_first_in_their_order():
    # one process runs them (one xdist group), in SLOW_FIRST's order: 04 saves what 05 reads, 05 what 06 and 09 read
    first = [name.split("[")[1].rstrip("]") for name in SLOW_FIRST[:len(SHARED_RUNS)]]
    assert first == sorted(SHARED_RUNS) and all((NOTEBOOKS_DIR / name).is_file() for name in first)
