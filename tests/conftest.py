"""What the tests share: a small text, tiny model and training settings, a runs folder of their own.

Tiny means seconds on 2 CPU cores: a one-layer GPT of width 16 over a context of 16 characters.
"""
from __future__ import annotations

import io
import os
import tarfile
import subprocess
import sys
from pathlib import Path

import pytest

# ------------------------------------------------------------------ how the suite shares the machine
# `make test` runs the tests in parallel processes (pytest-xdist, one per core). Two processes each using
# torch's default of every core would make their threads wait on each other: on a 2-core machine that
# was measured 5-35x slower than one thread each. So each test process, and everything it starts (a
# notebook's kernel, a training subprocess, the dashboard's job), gets the cores divided by the workers.
def threads_per_process() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


# read by torch when it is first imported, here and in the processes started from here (set in every worker:
# the workers inherit the environment of the process that starts them, where the count is not known yet)
os.environ["OMP_NUM_THREADS"] = str(threads_per_process())

# The slowest tests start first, so that the last minutes are not one long test running alone while
# the other process has nothing left (times: clean clone, 2 cores, one thread each). Notebooks 04, 05,
# 06 and 09 run in one process, in that order: 05 reads the word vectors 04 saves, and 06 and 09 load
# chapter 5's GPT from the runs folder (each would train what it misses, which costs more).
SLOW_FIRST = [
    "test_notebooks.py::test_notebook_runs[04_math.ipynb]",
    "test_notebooks.py::test_notebook_runs[05_project.ipynb]",
    "test_notebooks.py::test_notebook_runs[06_applications.ipynb]",
    "test_notebooks.py::test_notebook_runs[09_faq.ipynb]",
    "test_notebooks.py::test_notebook_runs[10_tang_poems.ipynb]",
    "test_notebooks.py::test_notebook_runs[08_challenges.ipynb]",
    "test_browser.py::test_a_newcomer_trains_the_starter_model_and_generates",
    "test_notebooks.py::test_notebook_runs[07_tools.ipynb]",
    "test_browser.py::test_generate_in_a_real_browser",
    "test_notebooks.py::test_notebook_runs[02_core_concepts.ipynb]",
    "test_notebooks.py::test_notebook_runs[03_core_algorithm.ipynb]",
    "test_distributed.py::test_fsdp_run_saves_whole_checkpoints_one_process_loads_and_resumes_exactly",
    "test_distributed.py::test_two_processes_train_one_run_and_resume",
    "test_distributed.py::test_ddp_and_fsdp_follow_one_process_and_fsdp_halves_the_bytes",
]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("/")[-1].split("@")[0], len(rank)))  # stable: the rest keep their order


def pytest_runtest_setup(item):
    """Under `--dist loadgroup`, a grouped test fails if pytest-xdist lost its group: the notebooks would then
    each train the runs they expected to find, and the suite would take minutes longer without saying why."""
    if os.environ.get("PYTEST_XDIST_WORKER") and item.config.getoption("loadgroup", False) \
            and item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
        pytest.fail("pytest-xdist did not keep this test in its group: this pytest breaks --dist loadgroup "
                    "(pytest-xdist issue #1386); install requirements.txt's pytest (`make clean-venv test`)",
                    pytrace=False)


TEXT = "ROMEO: But soft, what light through yonder window breaks?\nJULIET: Ay me.\n" * 40
TINY_GPT = {"family": "gpt", "block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 16}
TINY_TRAIN = {"max_steps": 12, "batch_size": 4, "lr": 3e-3, "warmup_steps": 3, "eval_interval": 6, "eval_iters": 2,
              "log_interval": 1, "measure_mfu": False, "device": "cpu"}
# the same model on the command line (steps and evaluation left to each test)
TINY_FLAGS = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4",
              "--device", "cpu", "--quiet"]


@pytest.fixture
def text_file(tmp_path) -> Path:
    """A small play as a UTF-8 file."""
    path = tmp_path / "play.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def runs_root(tmp_path, monkeypatch) -> Path:
    """An empty runs folder, also what `runs_dir()` (and so the CLI) uses during the test."""
    root = tmp_path / "runs"
    monkeypatch.setenv("LESSON_RUNS_DIR", str(root))
    return root


@pytest.fixture
def tiny_spec(text_file):
    """A function giving a run spec for a tiny GPT on `text_file`; keyword arguments override training fields."""
    def make(**train):
        return {"data": str(text_file), "tokenizer": "char", "model": dict(TINY_GPT), "train": {**TINY_TRAIN, **train}}
    return make


@pytest.fixture
def spawn_train(runs_root):
    """A function starting `python -m lesson_lib train ARGV` as a separate process writing into `runs_root`."""
    started = []

    def spawn(*argv: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "lesson_lib", "train", *argv], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "LESSON_RUNS_DIR": str(runs_root)})
        started.append(process)
        return process

    yield spawn
    for process in started:  # none outlives its test
        if process.poll() is None:
            process.kill()
            process.communicate()


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    """A gzipped tar archive at `path` holding `members` (name -> bytes), names taken as they are."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


@pytest.fixture
def tang_corpus_run(tmp_path) -> Path:
    """A real run on the Tang poems (`data: "tang"`, the corpus's 9,269 characters) in tmp_path/"runs",
    the folder the browser test's dashboard serves: the tiny GPT for 30 steps, seconds on 2 cores; the
    point is the corpus, not the verse. Named "tiny-tang" so that it sorts after a "tiny" beside it.
    The corpus is fetched once with npm (`make test` installs npm where it can): without it the test
    is skipped, or fails in CI."""
    from lesson_lib.data import DataError
    from lesson_lib.experiment import start_run

    runs = tmp_path / "runs"
    try:
        start_run({"data": "tang", "tokenizer": "char", "model": dict(TINY_GPT),
                   "train": {**TINY_TRAIN, "max_steps": 30, "eval_interval": 15}},
                  name="tiny-tang", root=runs, progress=False)
    except DataError as error:
        message = f"this test needs the Tang poems: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return runs / "tiny-tang"
