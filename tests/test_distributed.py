"""Data-parallel training under torchrun: two CPU processes (gloo), one run folder, exact resume."""
import os
import subprocess
import sys

import torch

from conftest import TINY_FLAGS
from lesson_lib import checkpoints as ckpt
from lesson_lib.runs import Run

FLAGS = ["--eval-interval", "3", *TINY_FLAGS]


def run_cli(args, runs, nproc=None):
    env = {**os.environ, "LESSON_RUNS_DIR": str(runs), "OMP_NUM_THREADS": "1"}
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc \
        else [sys.executable]
    return subprocess.run([*prefix, "-m", "lesson_lib", *args], env=env, capture_output=True, text=True, timeout=300)


def test_two_processes_train_one_run_and_resume(tmp_path, text_file):
    runs = tmp_path / "runs"
    done = run_cli(["train", "--data", str(text_file), "--name", "ddp", "--steps", "6", *FLAGS], runs, nproc=2)
    assert done.returncode == 0, done.stderr[-2000:]
    run = Run(runs / "ddp")
    train = run.metrics().of_kind("train")
    assert train[-1]["step"] == 6
    assert len({r["step"] for r in train}) == len(train)  # one process wrote the log
    assert train[-1]["tokens"] == 6 * 2 * 4 * 16  # both processes' batches count
    state = ckpt.load_trainer_state(run.checkpoint("latest"))
    assert len(state["ranks"]) == 2
    assert not torch.equal(state["ranks"][0]["data_generator"], state["ranks"][1]["data_generator"])

    wrong = run_cli(["train", "--resume", "ddp", "--steps", "9", "--quiet"], runs)
    assert wrong.returncode == 2 and "same number of processes" in wrong.stderr

    resumed = run_cli(["train", "--resume", "ddp", "--steps", "9", "--quiet"], runs, nproc=2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert run.status() == "finished" and run.metrics().of_kind("train")[-1]["step"] == 9
