"""Background training jobs: one at a time, outliving the caller, stopped cleanly into a resumable run."""
import json

import pytest

from lesson_lib import jobs
from lesson_lib.runs import Run

TEXT = "Friends, Romans, countrymen, lend me your ears;\nI come to bury Caesar, not to praise him.\n" * 50
TINY = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4",
        "--device", "cpu"]


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "caesar.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_a_job_trains_in_the_background_and_only_one_runs(tmp_path, text):
    root = tmp_path / "runs"
    job = jobs.start(["--data", str(text), "--name", "bg", "--steps", "30", "--eval-interval", "10", *TINY], "bg", root)
    assert jobs.current_job(root) == job
    with pytest.raises(jobs.JobBusy, match="'bg' is training"):
        jobs.start(["--data", str(text), "--name", "other", *TINY], "other", root)
    assert jobs.wait(job, timeout=120)
    assert jobs.current_job(root) is None  # the lock of a finished process is cleared
    assert Run(root / "bg").status() == "finished"


def test_stop_saves_a_checkpoint_and_the_run_resumes(tmp_path, text):
    root = tmp_path / "runs"
    job = jobs.start(["--data", str(text), "--name", "long", "--steps", "100000", "--eval-interval", "50",
                      *TINY], "long", root)
    run = Run(root / "long")
    for _ in range(600):  # wait for the first training records
        if run.metrics_path.exists() and run.metrics().of_kind("train"):
            break
        jobs.wait(job, timeout=0.1)
    assert jobs.stop(root)
    assert jobs.wait(job, timeout=60)
    assert run.status() == "stopped"
    end = run.metrics().of_kind("event")[-1]
    assert end["status"] == "stopped" and 0 < end["step"] < 100000
    step = end["step"]
    resumed = jobs.start(["--resume", "long", "--steps", str(step + 20)], "long", root)
    assert jobs.wait(resumed, timeout=120)
    assert run.status() == "finished" and run.metrics().of_kind("train")[-1]["step"] == step + 20


def test_a_stale_or_damaged_lock_does_not_block(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    lock = root / jobs.LOCK_NAME
    lock.write_text(json.dumps({"pid": 2**22 + 7, "run": "gone", "started": 0.0}))
    assert jobs.current_job(root) is None and not lock.exists()
    lock.write_text("{half a lock")
    assert jobs.current_job(root) is None and not lock.exists()


def test_a_failing_job_leaves_its_output(tmp_path):
    root = tmp_path / "runs"
    job = jobs.start(["--data", str(tmp_path / "missing.txt"), "--name", "bad"], "bad", root)
    assert jobs.wait(job, timeout=60)
    assert "missing.txt" in jobs.log_tail("bad", root)
