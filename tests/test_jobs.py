"""Background training jobs: one at a time, outliving the caller, stopped cleanly into a resumable run."""
import pytest

from lesson_lib import jobs
from lesson_lib.runs import Run


def test_a_job_trains_in_the_background_and_only_one_runs(runs_root, tiny_spec):
    job = jobs.start(tiny_spec(max_steps=30, eval_interval=10), "bg", runs_root)
    assert jobs.current_job(runs_root) == job and job.alive()
    with pytest.raises(jobs.JobBusy, match="'bg' is training"):
        jobs.start(tiny_spec(), "other", runs_root)
    assert jobs.wait(job, timeout=120)
    assert jobs.current_job(runs_root) is None  # the lock went with the process
    assert jobs.last_job(runs_root).run == "bg"  # what it was is still known
    assert Run(runs_root / "bg").status() == "finished"


def test_stop_saves_a_checkpoint_and_the_run_resumes(runs_root, tiny_spec):
    job = jobs.start(tiny_spec(max_steps=100000, eval_interval=50), "long", runs_root)
    run = Run(runs_root / "long")
    for _ in range(600):  # wait for the first training records
        if run.metrics().of_kind("train"):
            break
        jobs.wait(job, timeout=0.1)
    assert jobs.stop(runs_root)
    assert jobs.wait(job, timeout=60)
    assert run.status() == "stopped"
    end = run.metrics().of_kind("event")[-1]
    assert end["status"] == "stopped" and 0 < end["step"] < 100000
    step = end["step"]
    resumed = jobs.resume("long", step + 20, runs_root)
    assert jobs.wait(resumed, timeout=120)
    assert run.status() == "finished" and run.metrics().of_kind("train")[-1]["step"] == step + 20


def test_a_bad_spec_is_refused_before_anything_starts(runs_root, tiny_spec):
    with pytest.raises(ValueError, match="lr"):
        jobs.start(tiny_spec(lr=-1.0), "bad", runs_root)
    with pytest.raises(ValueError, match="not allowed"):
        jobs.start(tiny_spec(), "../escape", runs_root)
    assert jobs.current_job(runs_root) is None and not (runs_root / "bad").exists()


def test_a_failing_job_leaves_its_output(runs_root, tiny_spec, tmp_path):
    spec = {**tiny_spec(), "data": str(tmp_path / "missing.txt")}
    job = jobs.start(spec, "bad", runs_root)
    assert jobs.wait(job, timeout=60)
    assert "missing.txt" in jobs.log_tail("bad", runs_root)
