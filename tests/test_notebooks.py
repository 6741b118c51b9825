"""Every notebook in notebooks/ is a test: stored clean, and executed end to end by papermill.

The static tests are fast and check how a notebook is stored. The execution test runs each notebook
with `FAST=True` in a kernel on this interpreter; the executed copy is kept in
tests/_artifacts/notebooks/ so a failure can be read cell by cell.
"""
from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
ARTIFACTS_DIR = ROOT / "tests" / "_artifacts" / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
KERNEL_NAME = "lesson-lib"
EXECUTION_TIMEOUT_S = 900  # per cell

pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks yet")
by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


# ------------------------------------------------------------------ static: how notebooks are stored
@by_name
def test_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    dirty = [index for index, cell in enumerate(code_cells(notebook)) if cell.outputs or cell.execution_count]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs or execution counts; clear them before saving"


@by_name
def test_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    cells = code_cells(notebook)
    tagged = [i for i, cell in enumerate(cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected exactly 1"
    assert tagged == [0], f"{path.name}: the 'parameters' cell must be the first code cell"
    names = []
    for statement in ast.parse(cells[0].source).body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
            and isinstance(statement.targets[0], ast.Name), \
            f"{path.name}: parameters cell may hold only `NAME = literal`, found: {ast.unparse(statement)}"
        try:
            ast.literal_eval(statement.value)
        except ValueError:
            pytest.fail(f"{path.name}: parameter {statement.targets[0].id} is not a literal: {ast.unparse(statement.value)}")
        names.append(statement.targets[0].id)
    assert "FAST" in names, f"{path.name}: the parameters cell must define FAST"


@by_name
def test_headings_carry_both_languages(path):
    notebook = nbformat.read(path, as_version=4)
    headings = [line for cell in notebook.cells if cell.cell_type == "markdown"
                for line in cell.source.split("\n") if line.startswith(("# ", "## ", "### "))]
    english_only = [h for h in headings if not any("\u4e00" <= ch <= "\u9fff" for ch in h)]
    assert headings and not english_only, f"{path.name}: headings without their Chinese: {english_only}"


# ------------------------------------------------------------------ executed by papermill
def install_kernel(prefix: Path, display_name: str) -> str:
    """A kernelspec for this interpreter under `prefix`; returns the JUPYTER_PATH that finds it.

    Installing into a private prefix (not ~/.local) works on a fresh machine and never touches the
    user's own kernels. tests/full_lessons.py uses it too.
    """
    from ipykernel.kernelspec import install

    install(user=False, prefix=str(prefix), kernel_name=KERNEL_NAME, display_name=display_name)
    spec_file = prefix / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    argv = json.loads(spec_file.read_text())["argv"]
    assert argv[0] == sys.executable, f"kernelspec runs {argv[0]}, not this interpreter {sys.executable}"
    return os.pathsep.join(filter(None, [str(prefix / "share" / "jupyter"), os.environ.get("JUPYTER_PATH")]))


def execute(path: Path, executed: Path, fast: bool, cell_timeout_s: int, progress_bar: bool = False) -> str | None:
    """Run one notebook with papermill into `executed`; None, or what failed (naming the cell)."""
    import papermill

    try:
        papermill.execute_notebook(
            str(path), str(executed), parameters={"FAST": fast}, kernel_name=KERNEL_NAME,
            execution_timeout=cell_timeout_s, cwd=str(NOTEBOOKS_DIR), progress_bar=progress_bar,
        )
    except papermill.PapermillExecutionError as error:
        return f"{path.name} failed in cell {error.exec_count}: {error.ename}: {error.evalue}"
    except Exception as error:  # kernel died, timeout, ...
        return f"{path.name} did not finish: {type(error).__name__}: {error}"
    return None


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    """A kernelspec for this interpreter in a private folder, and the environment the kernel runs in."""
    jupyter_path = install_kernel(tmp_path_factory.mktemp("jupyter"), "lesson-lib (tests)")
    runs_dir = tmp_path_factory.mktemp("runs")
    return {
        "JUPYTER_PATH": jupyter_path,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "LESSON_RUNS_DIR": str(runs_dir),  # notebooks never write into the user's runs/ during tests
        "MPLBACKEND": "Agg",
    }


def poll_in_slices(monkeypatch, slice_s: float = 1.0) -> None:
    """Make the notebook client wait for kernel messages in short slices instead of one long wait.

    Seen here once in about twenty runs: a cell finished, the kernel sat idle, and nbclient went on
    waiting for the reply already in its socket until the 900 s cell timeout, when a last poll found
    it (the notebook then passed, 15 minutes late). The wake-up of the long poll was lost; a poll
    that ends every second looks again. nbclient issue #312 reports the same with widgets.
    """
    from queue import Empty
    from time import monotonic

    from jupyter_client.channels import AsyncZMQSocketChannel

    whole_wait = AsyncZMQSocketChannel.get_msg

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            left = slice_s if deadline is None else max(0.0, min(slice_s, deadline - monotonic()))
            try:
                return await whole_wait(self, timeout=left)
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", get_msg)


# One process runs these, in this order (tests/conftest.py, SLOW_FIRST): each reads runs an earlier one saved.
SHARED_RUNS = {"04_math.ipynb", "05_project.ipynb", "06_applications.ipynb", "09_faq.ipynb"}


@pytest.mark.notebook
@pytest.mark.parametrize("path", [
    pytest.param(path, marks=[pytest.mark.xdist_group("chapter-5-runs")] if path.name in SHARED_RUNS else [])
    for path in NOTEBOOKS], ids=[path.name for path in NOTEBOOKS])
def test_notebook_runs(path, kernel_env, monkeypatch):
    for key, value in kernel_env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    poll_in_slices(monkeypatch)
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    executed = ARTIFACTS_DIR / path.name
    failure = execute(path, executed, fast=True, cell_timeout_s=EXECUTION_TIMEOUT_S)
    if failure:
        pytest.fail(f"{failure}\nexecuted copy: {executed}", pytrace=False)
