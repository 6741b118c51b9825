"""Faults caused on purpose: two writers, a kill mid-run, a torn log line, a damaged checkpoint, a full disk.

Each test here failed on the code before the run folder got its writer lock and its checks
(the README's reliability table lists them).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import TEXT, TINY_FLAGS
from lesson_lib import checkpoints as ckpt
from lesson_lib import jobs
from lesson_lib.cli import main
from lesson_lib.experiment import load_trained, resume_run, start_run
from lesson_lib.plots import metrics_frame
from lesson_lib.runs import Run, read_metrics
from lesson_lib.training import DiskFull

SHORT = ["--steps", "10", "--eval-interval", "5", *TINY_FLAGS]


def wait_until(condition, process=None, timeout=120.0):
    deadline = time.time() + timeout
    while not condition():
        assert process is None or process.poll() is None, process.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


# --- 1. two writers, one run ---------------------------------------------------------------------------

def test_two_processes_cannot_write_one_run(runs_root, tmp_path, spawn_train):
    big = tmp_path / "big.txt"
    big.write_text(TEXT * 1500, encoding="utf-8")  # seconds of data preparation: both starts overlap
    argv = ["--data", str(big), "--name", "same", "--steps", "40", "--eval-interval", "20", *TINY_FLAGS]
    first, second = spawn_train(*argv), spawn_train(*argv)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert sorted([first.returncode, second.returncode]) == [0, 2], outs
    refusal = outs[[first.returncode, second.returncode].index(2)][1]
    assert "run 'same' is being written by process" in refusal and "Traceback" not in refusal
    events = [r["event"] for r in Run(runs_root / "same").metrics().of_kind("event")]
    assert events == ["start", "end"]


def test_resume_while_training_is_refused_naming_the_process(runs_root, text_file, spawn_train):
    trainer = spawn_train("--data", str(text_file), "--name", "busy", "--steps", "100000", "--eval-interval", "20",
                          *TINY_FLAGS)
    run = Run(runs_root / "busy")
    wait_until(lambda: run.checkpoints(), trainer)
    assert run.status() == "training" and run.writer()["pid"] == trainer.pid
    second = spawn_train("--resume", "busy", "--steps", "100000", "--quiet")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and f"being written by process {trainer.pid}" in err, err
    trainer.send_signal(signal.SIGINT)  # stop cleanly: one end event, written by the one writer
    trainer.communicate(timeout=60)
    assert [r["event"] for r in run.metrics().of_kind("event")] == ["start", "end"]


def test_a_killed_writer_leaves_a_run_others_can_resume(runs_root, text_file, spawn_train):
    trainer = spawn_train("--data", str(text_file), "--name", "killed", "--steps", "100000", "--eval-interval", "20",
                          *TINY_FLAGS)
    run = Run(runs_root / "killed")
    wait_until(lambda: run.checkpoints(), trainer)
    trainer.kill()  # SIGKILL: no handler runs, the kernel drops the lock
    trainer.communicate()
    assert run.writer() is None and run.status() == "stopped"
    at = ckpt.read_meta(run.checkpoint("latest"))["step"]
    assert main(["train", "--resume", "killed", "--steps", str(at + 5), "--quiet"]) == 0
    assert run.status() == "finished" and run.metrics().of_kind("train")[-1]["step"] == at + 5


def test_a_second_writer_in_the_same_process_is_refused_too(runs_root, tiny_spec):
    holder = Run.create("mine", runs_root)
    with pytest.raises(RuntimeError, match="being written by process"):
        start_run(tiny_spec(), name="mine", root=runs_root, progress=False)
    holder.release()
    assert start_run(tiny_spec(), name="mine", root=runs_root, progress=False).status == "finished"


# --- 2. the dashboard's one-job lock ---------------------------------------------------------------------

def test_two_job_starts_20ms_apart_give_one_job(runs_root, tiny_spec, monkeypatch):
    real_popen = subprocess.Popen

    def slow_popen(*args, **kwargs):  # a loaded machine: starting a process takes 50 ms
        time.sleep(0.05)
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(jobs.subprocess, "Popen", slow_popen)
    for delay in (0.0, 0.02):
        results = []

        def go(name, pause):
            time.sleep(pause)
            try:
                results.append(jobs.start(tiny_spec(max_steps=100000), f"{name}-{delay}", runs_root))
            except jobs.JobBusy as e:
                results.append(e)

        threads = [threading.Thread(target=go, args=("one", 0.0)), threading.Thread(target=go, args=("two", delay))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        started = [r for r in results if isinstance(r, jobs.Job)]
        refused = [r for r in results if isinstance(r, jobs.JobBusy)]
        assert len(started) == 1 and len(refused) == 1, (delay, results)
        assert jobs.current_job(runs_root) == started[0]
        assert jobs.stop(runs_root) and jobs.wait(started[0], timeout=120)


def test_stop_never_signals_a_process_that_is_not_the_job(runs_root):
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        lock = runs_root / ".jobs" / "job.lock"
        lock.parent.mkdir(parents=True)
        # a job that ended long ago, whose pid now names another program
        lock.write_text(json.dumps({"pid": stranger.pid, "run": "gone", "started": 0.0}))
        assert jobs.current_job(runs_root) is None and not jobs.stop(runs_root)
        # the lock held, by something that is not a lesson_lib process: still not signalled
        from lesson_lib.fileio import FileLock

        held = FileLock(lock).acquire()
        held.record({"pid": stranger.pid, "run": "gone"})
        assert jobs.current_job(runs_root).pid == stranger.pid and not jobs.stop(runs_root)
        held.release()
        time.sleep(0.2)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_an_upload_is_written_only_by_the_start_that_holds_the_lock(runs_root, tiny_spec):
    text = TEXT.encode("utf-8")
    job = jobs.start(tiny_spec(max_steps=100000), "first", runs_root, upload=text, upload_name="a.txt")
    try:
        with pytest.raises(jobs.JobBusy):
            jobs.start(tiny_spec(), "second", runs_root, upload=text, upload_name="b.txt")
        uploads = sorted(p.name for p in (runs_root / ".uploads").iterdir())
        assert len(uploads) == 1 and uploads[0].startswith("first-")
    finally:
        jobs.stop(runs_root)
        jobs.wait(job, timeout=120)


# --- 3. a torn line, and records of the wrong types ------------------------------------------------------

def test_a_torn_last_line_does_not_swallow_the_next_record(runs_root, text_file):
    assert main(["train", "--data", str(text_file), "--name", "torn", *SHORT]) == 0
    with open(runs_root / "torn" / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "st')  # a crash mid-write
    assert main(["train", "--resume", "torn", "--steps", "20", "--quiet"]) == 0
    log = read_metrics(runs_root / "torn" / "metrics.jsonl")
    assert [r["event"] for r in log.of_kind("event")] == ["start", "end", "resume", "end"]
    steps = [r["step"] for r in log.of_kind("train")]
    assert steps == sorted(steps) and steps[-1] == 20
    assert len(log.warnings) == 1 and "line" in log.warnings[0]


def test_records_of_the_wrong_types_are_skipped_not_raised(runs_root, text_file):
    assert main(["train", "--data", str(text_file), "--name", "typed", *SHORT]) == 0
    run = Run(runs_root / "typed")
    with open(run.metrics_path, "a") as f:
        f.write('{"kind": "train"}\n{"kind": "train", "step": "5", "train_loss": 1.0}\n'
                '{"kind": "eval", "step": 3, "val_loss": "x"}\n[1, 2]\n{"kind": "event", "step": true}\n')
    (run.checkpoints_path / "best.json").write_text("{}")
    log = run.metrics()
    assert len(log.warnings) == 5
    summary = run.summary(log)
    assert summary["steps"] == 10 and summary["status"] == "finished" and summary["best_val_loss"] < 5
    assert len(metrics_frame(log)) == len(log.records)
    assert run.checkpoint("best") == run.checkpoint("latest")  # best.json unreadable: the newest stands in


# --- 4. a failed start blocks nothing ---------------------------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    (["--dropout", "2"], "dropout"),
    (["--lr", "nan"], "lr"),
    (["--tokenizer", "bpe", "--vocab-size", "5"], "vocab"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--n-head", "0"], "n_head"),
    (["--n-layer", "0"], "n_layer"),
    (["--n-head", "3"], "n_head"),  # width 16 is not a multiple of 3
])
def test_a_bad_setting_is_refused_before_the_run_folder_exists(runs_root, text_file, capsys, bad, message):
    argv = ["train", "--data", str(text_file), "--name", "retry", "--steps", "4", "--eval-interval", "2", *TINY_FLAGS]
    assert main([*argv, *bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (runs_root / "retry").exists()
    assert main(argv) == 0  # the name is free


def test_a_run_killed_before_its_first_checkpoint_starts_again(runs_root, text_file, spawn_train, capsys):
    argv = ["--data", str(text_file), "--name", "early", "--steps", "100000", "--eval-interval", "100000",
            *TINY_FLAGS]
    trainer = spawn_train(*argv)
    run = Run(runs_root / "early")
    wait_until(lambda: run.metrics().of_kind("train"), trainer)
    trainer.kill()
    trainer.communicate()
    assert run.status() == "stopped" and not run.checkpoints()
    # started again under its name: said so, and the log is the new attempt's alone
    assert main(["train", "--data", str(text_file), "--name", "early", *SHORT]) == 0
    assert "starts again from scratch" in capsys.readouterr().err
    assert [r["event"] for r in run.metrics().of_kind("event")] == ["start", "end"]


def test_a_run_with_no_checkpoint_resumes_from_step_0(runs_root, text_file, tiny_spec):
    full = start_run(tiny_spec(), name="whole", root=runs_root, progress=False)
    # the same run as "whole", its checkpoints gone (as after a kill before the first one)
    shutil.copytree(runs_root / "whole", runs_root / "bare", ignore=shutil.ignore_patterns("checkpoints"))
    resumed = resume_run("bare", root=runs_root, progress=False)
    assert resumed.records[0]["event"] == "resume" and "from step 0" in resumed.records[0]["message"]
    ours = {r["step"]: r["train_loss"] for r in resumed.records if r["kind"] == "train"}
    theirs = {r["step"]: r["train_loss"] for r in full.records if r["kind"] == "train"}
    assert ours == pytest.approx(theirs, abs=1e-6)


# --- 5. resume when the newest checkpoint is damaged; budgets that go backwards -------------------------

def test_resume_skips_a_damaged_newest_checkpoint_and_says_so(runs_root, text_file, capsys):
    assert main(["train", "--data", str(text_file), "--name", "dmg", *SHORT]) == 0
    run = Run(runs_root / "dmg")
    newest = run.checkpoint("latest")
    (newest / "trainer.pt").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert main(["train", "--resume", "dmg", "--steps", "15", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"skipped {newest.name}" in err and "resumed from step_0000005" in err
    resume = [r for r in run.metrics().of_kind("event") if r["event"] == "resume"][-1]
    assert resume["step"] == 5
    assert run.metrics().of_kind("train")[-1]["step"] == 15


def test_resume_with_fewer_steps_than_done_is_refused_and_writes_nothing(runs_root, text_file, capsys):
    assert main(["train", "--data", str(text_file), "--name", "back", *SHORT]) == 0
    run = Run(runs_root / "back")
    before = (run.config_path.read_bytes(), run.metrics_path.read_bytes())
    assert main(["train", "--resume", "back", "--steps", "3", "--quiet"]) == 2
    assert "reached step 10" in capsys.readouterr().err
    assert (run.config_path.read_bytes(), run.metrics_path.read_bytes()) == before


# --- 6. checkpoint writes ---------------------------------------------------------------------------------

def test_best_json_cannot_lead_out_of_its_run(runs_root, text_file):
    for name in ("inside", "other"):
        assert main(["train", "--data", str(text_file), "--name", name, *SHORT]) == 0
    run = Run(runs_root / "inside")
    (run.checkpoints_path / "best.json").write_text(
        json.dumps({"name": "../../other/checkpoints/step_0000010", "val_loss": 0.0}))
    assert ckpt.read_best(run.checkpoints_path) is None
    assert run.checkpoint("best").parent == run.checkpoints_path


@pytest.mark.parametrize("argv", [["generate", "--run", "../runs/ok"], ["train", "--resume", "../runs/ok"],
                                  ["generate", "--run", "/etc"]])
def test_run_names_are_checked_wherever_they_are_given(runs_root, text_file, capsys, argv):
    assert main(["train", "--data", str(text_file), "--name", "ok", *SHORT]) == 0
    capsys.readouterr()
    assert main(argv) == 2
    assert "is not allowed" in capsys.readouterr().err


def test_saving_a_step_again_keeps_the_old_one_until_the_new_is_in_place(runs_root, text_file, monkeypatch):
    assert main(["train", "--data", str(text_file), "--name", "again", *SHORT]) == 0
    run = Run(runs_root / "again")
    newest = run.checkpoint("latest")
    model, _, meta = load_trained(run.path, "latest")
    state = ckpt.load_trainer_state(newest)
    real_rename = Path.rename

    def rename(self, target):
        if self.name.startswith(".tmp-"):  # the new checkpoint cannot be moved into place
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(run.checkpoints_path, model, state, {k: meta[k] for k in ("step", "tokens", "val_loss",
                                                                                       "model", "train")})
    monkeypatch.undo()
    assert run.checkpoint("latest") == newest
    load_trained(run.path, "latest")
    assert sorted(p.name for p in run.checkpoints_path.iterdir() if p.name.startswith(".")) == []


def test_pruning_never_removes_a_live_writers_temporary_folder(runs_root, text_file):
    assert main(["train", "--data", str(text_file), "--name", "prune", *SHORT]) == 0
    run = Run(runs_root / "prune")
    other = subprocess.Popen(["sleep", "30"])
    try:
        live = run.checkpoints_path / f".tmp-{other.pid}-abc"
        dead = run.checkpoints_path / ".tmp-999999999-abc"
        live.mkdir()
        dead.mkdir()
        ckpt.prune(run.checkpoints_path, keep_last=2)
        assert live.is_dir() and not dead.exists()
    finally:
        other.kill()
        other.wait()


def test_a_checkpoint_is_fsynced_before_and_after_its_rename(runs_root, tiny_spec, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    start_run(tiny_spec(max_steps=6), name="synced", root=runs_root, progress=False)
    folder = str((runs_root / "synced" / "checkpoints").resolve())
    tmp = [i for i, p in enumerate(synced) if "/.tmp-" in p and p.endswith("model.safetensors")]
    assert tmp, synced
    after = synced[tmp[0]:]
    assert any(p.endswith("trainer.pt") for p in after) and any(p.endswith("meta.json") for p in after)
    tmp_dir = next(i for i, p in enumerate(after) if "/.tmp-" in p and os.path.dirname(p) == folder)
    assert folder in after[tmp_dir + 1:]  # the checkpoints folder after the rename


# --- 7. a full disk ---------------------------------------------------------------------------------------

FULL_LOG_SCRIPT = textwrap.dedent("""
    import json, subprocess, sys
    from pathlib import Path
    from lesson_lib.experiment import load_trained, start_run
    from lesson_lib.training import DiskFull
    from lesson_lib.runs import Run
    root, spec = Path(sys.argv[1]), json.loads(sys.argv[2])
    metrics = root / "full" / "metrics.jsonl"

    def fill_the_disk(record):
        if record.get("kind") == "eval" and record["step"] == 6:  # after the step-6 eval, before its checkpoint
            # /dev/full mounted over the log (this mount namespace only): every write from now on gets
            # ENOSPC from the kernel, as on a full disk; the path is still a plain file, not a link
            subprocess.run(["mount", "--bind", "/dev/full", str(metrics)], check=True)

    try:
        start_run(spec, name="full", root=root, callback=fill_the_disk, progress=False)
        message = None
    except DiskFull as e:
        message = str(e)
    run = Run(root / "full")
    load_trained(run.path, "latest")
    print(json.dumps({"message": message, "writer": run.writer(), "checkpoints": [p.name for p in run.checkpoints()]}))
""")


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs util-linux's unshare for a private mount")
def test_a_full_disk_while_logging_stops_the_run_and_keeps_the_checkpoint(tmp_path, tiny_spec):
    (tmp_path / "probe").touch()
    probe = subprocess.run(["unshare", "-rm", "mount", "--bind", "/dev/full", str(tmp_path / "probe")],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"this machine cannot bind-mount in a private namespace: {probe.stderr.decode()[:200]}")
    script = tmp_path / "script.py"
    script.write_text(FULL_LOG_SCRIPT)
    spec = tiny_spec(max_steps=12, eval_interval=6)
    done = subprocess.run(["unshare", "-rm", sys.executable, str(script), str(tmp_path / "runs"), json.dumps(spec)],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "no space left on the disk" in report["message"] and "--resume full" in report["message"]
    assert report["writer"] is None  # the lock went with the run
    assert report["checkpoints"] == ["step_0000006"]


FULL_DISK_SCRIPT = textwrap.dedent("""
    import json, os, subprocess, sys
    from pathlib import Path
    root, data = Path(sys.argv[1]), sys.argv[2]
    train = subprocess.run([sys.executable, "-m", "lesson_lib", "train", "--data", data, "--name", "disk",
                            "--steps", "40", "--eval-interval", "10", "--block-size", "16", "--n-layer", "1",
                            "--n-head", "2", "--n-embd", "32", "--batch-size", "4", "--device", "cpu", "--quiet",
                            "--optimizer", "adamw"],  # the disk below is sized for AdamW's checkpoints
                           capture_output=True, text=True, env={**os.environ, "LESSON_RUNS_DIR": str(root)})
    from lesson_lib.experiment import load_trained
    from lesson_lib.runs import Run
    run = Run(root / "disk")
    model, _, meta = load_trained(run.path, "latest")
    events = run.metrics().of_kind("event")
    print(json.dumps({"code": train.returncode, "err": train.stderr[-2000:], "loaded": meta["step"],
                      "end": events[-1] if events else None,
                      "leftovers": [p.name for p in run.checkpoints_path.iterdir() if p.name.startswith(".")]}))
""")


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs util-linux's unshare for a private small file system")
def test_a_full_disk_during_a_checkpoint(tmp_path, text_file):
    """Training on a real 320 KB file system: the first checkpoint (about 200 KB) fits, the second does not."""
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"this machine cannot mount a private tmpfs: {probe.stderr.decode()[:200]}")
    root = tmp_path / "small"
    root.mkdir()
    script = tmp_path / "script.py"
    script.write_text(FULL_DISK_SCRIPT)
    shell = 'mount -t tmpfs -o size=320k tmpfs "$1" && exec "$0" "$2" "$1" "$3"'
    done = subprocess.run(["unshare", "-rm", "sh", "-c", shell, sys.executable, str(root), str(script), str(text_file)],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 2 and "no space left on the disk" in report["err"], report
    assert "A checkpoint of this run takes" in report["err"] and "--resume disk" in report["err"]
    assert report["loaded"] == 10 and report["leftovers"] == []
    assert report["end"]["status"] == "failed" and "no space left" in report["end"]["message"]


# --- 8. issue 27: what a start may erase, links, a deleted lock, refusals that change nothing -------------

def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under `folder`, with the bytes of each file (None for a folder)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.name != "writer.lock"}


@pytest.mark.parametrize("damaged", ["newest", "every"])
def test_a_start_never_erases_a_run_with_a_checkpoint_folder(runs_root, text_file, capsys, damaged):
    argv = ["train", "--data", str(text_file), "--name", "kept", *SHORT]
    assert main(argv) == 0
    run = Run(runs_root / "kept")
    for checkpoint in run.checkpoints()[-1:] if damaged == "newest" else run.checkpoints():
        (checkpoint / "meta.json").unlink()
    before = snapshot(run.path)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "step_0000010 (incomplete)" in err and "--resume kept" in err, err
    assert "--overwrite" in err and "Traceback" not in err
    assert snapshot(run.path) == before
    # erasing it is asked for in words: then it starts again, and says so
    assert main([*argv, "--overwrite"]) == 0
    assert "erased as asked" in capsys.readouterr().err
    assert [r["event"] for r in run.metrics().of_kind("event")] == ["start", "end"]
    assert [p.name for p in run.checkpoints()] == ["step_0000005", "step_0000010"]


def test_a_start_over_a_dead_attempt_says_truly_what_it_was(runs_root, text_file, capsys):
    run_path = runs_root / "dead"
    assert main(["train", "--data", str(text_file), "--name", "dead", *SHORT]) == 0
    shutil.rmtree(run_path / "checkpoints")  # a finished log, and nothing saved to resume from
    capsys.readouterr()
    assert main(["train", "--data", str(text_file), "--name", "dead", *SHORT]) == 0
    note = capsys.readouterr().err
    assert "had no checkpoint (its log reached step 10; the last attempt finished)" in note, note
    assert "before its first checkpoint" not in note


def test_a_linked_lock_file_is_replaced_never_written_through(runs_root, text_file, tmp_path):
    assert main(["train", "--data", str(text_file), "--name", "lnk", *SHORT]) == 0
    outside = tmp_path / "precious.txt"
    outside.write_text("not the course's\n")
    lock = runs_root / "lnk" / "writer.lock"
    lock.unlink()
    lock.symlink_to(outside)
    assert main(["train", "--resume", "lnk", "--steps", "15", "--quiet"]) == 0
    assert outside.read_text() == "not the course's\n" and not lock.is_symlink()


@pytest.mark.parametrize("linked", ["metrics.jsonl", "checkpoints", "config.json"])
def test_a_resume_refuses_a_run_file_that_is_a_link(runs_root, text_file, tmp_path, capsys, linked):
    assert main(["train", "--data", str(text_file), "--name", "lnk", *SHORT]) == 0
    run_path = runs_root / "lnk"
    target = tmp_path / f"outside-{linked}"
    shutil.move(run_path / linked, target)  # the run's own file, moved out and linked back
    (run_path / linked).symlink_to(target)
    before = snapshot(target) if target.is_dir() else target.read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", "lnk", "--steps", "30", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{linked} is a symbolic link" in err and "Traceback" not in err, err
    assert (snapshot(target) if target.is_dir() else target.read_bytes()) == before


def test_pruning_never_deletes_through_a_linked_checkpoints_folder(runs_root, text_file, tmp_path):
    assert main(["train", "--data", str(text_file), "--name", "lnk", "--steps", "15", "--eval-interval", "5",
                 *TINY_FLAGS]) == 0
    folder = runs_root / "lnk" / "checkpoints"
    target = tmp_path / "elsewhere"
    shutil.move(folder, target)
    folder.symlink_to(target)
    before = snapshot(target)
    with pytest.raises(ValueError, match="symbolic link"):
        ckpt.prune(folder, keep_last=1)
    assert snapshot(target) == before


def test_deleting_the_lock_file_lets_no_second_writer_in(runs_root, text_file, spawn_train):
    trainer = spawn_train("--data", str(text_file), "--name", "held", "--steps", "100000", "--eval-interval", "20",
                          *TINY_FLAGS)
    run = Run(runs_root / "held")
    wait_until(lambda: run.checkpoints(), trainer)
    (run.path / "writer.lock").unlink()  # "a stale lock file"
    assert run.status() == "training"
    second = spawn_train("--resume", "held", "--steps", "100000", "--quiet")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and "run 'held' is being written by" in err, err
    trainer.send_signal(signal.SIGINT)
    trainer.communicate(timeout=60)
    assert [r["event"] for r in run.metrics().of_kind("event")] == ["start", "end"]


def test_a_resume_refused_after_loading_changes_nothing(runs_root, text_file, capsys):
    assert main(["train", "--data", str(text_file), "--name", "nothing", *SHORT]) == 0
    run = Run(runs_root / "nothing")
    for checkpoint in run.checkpoints():  # no checkpoint can be loaded: the trainer refuses
        (checkpoint / "trainer.pt").write_bytes(b"torn")
    before = snapshot(run.path)
    assert main(["train", "--resume", "nothing", "--steps", "60", "--quiet"]) == 2
    assert "no checkpoint of run 'nothing' can be loaded" in capsys.readouterr().err
    assert snapshot(run.path) == before
    assert run.read_config()["train"]["max_steps"] == 10


def test_resume_says_which_checkpoint_without_meta_it_skipped(runs_root, text_file, capsys):
    assert main(["train", "--data", str(text_file), "--name", "nometa", *SHORT]) == 0
    run = Run(runs_root / "nometa")
    (run.checkpoint("latest") / "meta.json").unlink()
    capsys.readouterr()
    assert main(["train", "--resume", "nometa", "--steps", "15", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "skipped step_0000010" in err and "meta.json is missing" in err and "resumed from step_0000005" in err, err


KILLED_MID_PRUNE = textwrap.dedent("""
    import os, signal, sys
    from lesson_lib import checkpoints as ckpt
    real_unlink = os.unlink

    def unlink(*args, **kwargs):  # the first file deleted, then SIGKILL: nothing of Python runs after it
        real_unlink(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    os.unlink = unlink
    ckpt.prune(sys.argv[1], keep_last=1)
""")


def test_a_kill_mid_prune_leaves_no_half_checkpoint(runs_root, text_file, tmp_path):
    assert main(["train", "--data", str(text_file), "--name", "pruned", "--steps", "15", "--eval-interval", "5",
                 *TINY_FLAGS]) == 0
    run = Run(runs_root / "pruned")
    (run.checkpoints_path / "best.json").unlink()  # keep_last=1 and no best: two checkpoints to delete
    script = tmp_path / "prune.py"
    script.write_text(KILLED_MID_PRUNE)
    killed = subprocess.run([sys.executable, str(script), str(run.checkpoints_path)], capture_output=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    folders = [p for p in run.checkpoints_path.iterdir() if ckpt.is_checkpoint_name(p.name)]
    for folder in folders:  # what is listed is whole; what was being deleted is out of sight
        assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.safetensors", "trainer.pt"], folder
    assert any(p.name.startswith(".del-") for p in run.checkpoints_path.iterdir())
    (run.checkpoints_path / "step_0000001").mkdir()  # an empty folder as a kill left one before this fix
    ckpt.prune(run.checkpoints_path, keep_last=1)
    assert sorted(p.name for p in run.checkpoints_path.iterdir()) == ["step_0000015"]


def test_a_resume_refuses_a_text_that_changed(runs_root, text_file, capsys):
    assert main(["train", "--data", str(text_file), "--name", "moved", *SHORT]) == 0
    run = Run(runs_root / "moved")
    text_file.write_text(TEXT[::-1], encoding="utf-8")  # the same characters, other text
    before = snapshot(run.path)
    capsys.readouterr()
    assert main(["train", "--resume", "moved", "--steps", "15", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "has changed since it started" in err and "same 2,920 characters" in err, err
    assert "--allow-changed-data" in err and snapshot(run.path) == before
    assert main(["train", "--resume", "moved", "--steps", "15", "--quiet", "--allow-changed-data"]) == 0
    assert "training goes on with the new text" in capsys.readouterr().err
    from lesson_lib.experiment import text_sha256

    assert run.read_config()["data"]["sha256"] == text_sha256(TEXT[::-1])
    assert run.metrics().of_kind("train")[-1]["step"] == 15


@pytest.mark.parametrize("argv", [["train", "--steps", "4", "--seed", "99999999999999999999999"],
                                  ["train", "--steps", "4", "--seed", "-1"],
                                  ["generate", "--run", "ok", "--seed", "99999999999999999999999"]])
def test_a_seed_out_of_range_is_a_clear_error_and_leaves_no_folder(runs_root, text_file, capsys, argv):
    assert main(["train", "--data", str(text_file), "--name", "ok", *SHORT]) == 0
    capsys.readouterr()
    assert main([*argv[:1], "--data", str(text_file), "--name", "seeded", *TINY_FLAGS, *argv[1:]]
                if argv[0] == "train" else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "seed must be a whole number from 0 to 4,294,967,295" in err, err
    assert sorted(p.name for p in runs_root.iterdir()) == ["ok"]


def test_a_run_name_with_a_trailing_newline_is_refused(runs_root, text_file, capsys):
    assert main(["train", "--data", str(text_file), "--name", "trail\n", *SHORT]) == 2
    assert "is not allowed" in capsys.readouterr().err
    assert not runs_root.exists() or list(runs_root.iterdir()) == []
    assert not ckpt.is_checkpoint_name("step_0000010\n")


DAMAGES = {
    "config without train": ("config.json", lambda run: _edit_json(run / "config.json", lambda c: c.pop("train"))),
    "config data a string": ("config.json", lambda run: _edit_json(run / "config.json",
                                                                   lambda c: c.__setitem__("data", "shakespeare"))),
    "config a list": ("config.json", lambda run: (run / "config.json").write_text("[1, 2]")),
    "meta without model": ("meta.json", lambda run: [_edit_json(c / "meta.json", lambda m: m.pop("model"))
                                                     for c in (run / "checkpoints").glob("step_*")]),
    "meta a list": ("meta.json", lambda run: [(c / "meta.json").write_text("[]")
                                              for c in (run / "checkpoints").glob("step_*")]),
    "tokenizer chars a number": ("tokenizer.json",  # was: "error: 'int' object is not iterable"
                                 lambda run: (run / "tokenizer.json").write_text('{"kind": "char", "chars": 5}')),
    "metrics a folder": ("metrics.jsonl", lambda run: ((run / "metrics.jsonl").unlink(),
                                                       (run / "metrics.jsonl").mkdir())),
}


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def healthy_run(tmp_path_factory):
    """One tiny finished run, copied by each damage test (training it once keeps the module fast)."""
    root = tmp_path_factory.mktemp("healthy")
    text = root / "play.txt"
    text.write_text(TEXT, encoding="utf-8")
    from conftest import TINY_GPT, TINY_TRAIN

    start_run({"data": str(text), "tokenizer": "char", "model": dict(TINY_GPT), "train": {**TINY_TRAIN}},
              name="good", root=root / "runs", progress=False)
    return root / "runs" / "good"


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_run_file_is_named_and_hides_no_other_run(runs_root, healthy_run, capsys, damage):
    file, make = DAMAGES[damage]
    shutil.copytree(healthy_run, runs_root / "good")
    shutil.copytree(healthy_run, runs_root / "bad")
    make(runs_root / "bad")
    capsys.readouterr()
    assert main(["runs"]) == 0  # both listed, the damaged one said to be
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["bad", "good"], out
    if file != "tokenizer.json":  # the listing reads the config, the log and the newest meta.json, not tokenizers
        assert "(damaged)" in out.splitlines()[1] and "(damaged)" not in out.splitlines()[2]
        assert f"bad/{file}" in err or f"bad/checkpoints/step_0000012/{file}" in err, err
    # generating reads the checkpoint's meta.json and the tokenizer; resuming reads every file
    reads = {"generate": (["generate", "--run", "bad", "--max-new-tokens", "5"], file in ("meta.json", "tokenizer.json")),
             "resume": (["train", "--resume", "bad", "--steps", "20", "--quiet"], True)}
    for what, (argv, needs_it) in reads.items():
        code = main(argv)
        err = capsys.readouterr().err
        if not needs_it:
            assert code == 0, (what, err)
            continue
        assert code == 2 and file in err and "Traceback" not in err and "KeyError" not in err, (what, err)
    assert main(["generate", "--run", "good", "--max-new-tokens", "5"]) == 0


KILLED_MID_WRITE = textwrap.dedent("""
    import os, signal, sys
    from lesson_lib.fileio import write_json

    def replace(*args, **kwargs):  # the temporary file written and synced; SIGKILL before it is renamed
        os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    write_json(sys.argv[1], {"written": "never"})
""")


def test_temporary_files_of_a_writer_killed_mid_write_are_cleaned_up(runs_root, text_file, tmp_path):
    assert main(["train", "--data", str(text_file), "--name", "leftover", *SHORT]) == 0
    run = Run(runs_root / "leftover")
    script = tmp_path / "write.py"
    script.write_text(KILLED_MID_WRITE)
    for path in (run.config_path, run.checkpoints_path / "best.json"):  # the probe's nine kills left a best.json's
        killed = subprocess.run([sys.executable, str(script), str(path)], capture_output=True,
                                cwd=Path(__file__).resolve().parents[1])
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    hidden = lambda: sorted(p.name for p in run.path.rglob(".*.tmp"))  # noqa: E731
    assert len(hidden()) == 2 and run.read_config()["train"]["max_steps"] == 10  # the old files stand
    assert main(["train", "--resume", "leftover", "--steps", "15", "--quiet"]) == 0
    assert hidden() == []
