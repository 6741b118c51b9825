"""TensorBoard event files: written when asked, the same numbers as metrics.jsonl, one curve after a resume."""
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_FLAGS

from lesson_lib import cli
from lesson_lib.checkpoints import list_checkpoints
from lesson_lib.experiment import ensure_run, resume_run, start_run
from lesson_lib.runs import Run
from lesson_lib.tensorboard import TAGS, read_scalars, scalars_of


def test_a_run_asked_for_it_writes_the_same_scalars_as_its_log(tiny_spec, runs_root):
    start_run(tiny_spec(tensorboard=True, measure_mfu=True), name="tb", root=runs_root, progress=False)
    run = Run(runs_root / "tb")
    written, logged = read_scalars(run.tensorboard_path), scalars_of(run.metrics().records)
    assert set(written["tag"]) == set(TAGS.values())  # mfu and bits per character too
    assert len(written) == len(logged) > 20
    pd.testing.assert_frame_equal(written, logged.sort_values(["tag", "step"]).reset_index(drop=True))


def test_no_event_files_unless_asked(tiny_spec, runs_root):
    start_run(tiny_spec(), name="plain", root=runs_root, progress=False)
    path = Run(runs_root / "plain").tensorboard_path
    assert not path.exists()
    with pytest.raises(FileNotFoundError, match="--tensorboard"):
        read_scalars(path)


def test_a_resumed_run_shows_one_curve_without_the_lost_steps(tiny_spec, runs_root):
    # the first attempt reaches step 12, then its last checkpoint is lost (as if it had died before saving it):
    # the resume goes back to step 6 and trains 7..12 again, with other throughput figures
    start_run(tiny_spec(tensorboard=True, keep_last=5), name="again", root=runs_root, progress=False)
    run = Run(runs_root / "again")
    shutil.rmtree(list_checkpoints(run.checkpoints_path)[-1])
    resume_run("again", root=runs_root, progress=False)
    written = read_scalars(run.tensorboard_path)
    assert not written.duplicated(["tag", "step"]).any()  # the first attempt's steps 7..12 were purged
    pd.testing.assert_frame_equal(written, scalars_of(run.metrics().records).sort_values(["tag", "step"])
                                  .reset_index(drop=True))


def test_the_setting_does_not_change_what_is_trained(tiny_spec, runs_root):
    first = ensure_run(tiny_spec(), "same", root=runs_root, progress=False)
    again = ensure_run(tiny_spec(tensorboard=True), "same", root=runs_root, progress=False)  # read back, not refused
    assert again.step == first.step and again.last_val_loss == first.last_val_loss


def test_scalars_of_skips_missing_and_non_finite_values():
    frame = scalars_of([{"kind": "train", "step": 3, "train_loss": 2.5, "lr": 1e-3, "mfu": None},
                        {"kind": "eval", "step": 3, "val_loss": float("nan"), "val_ppl": 12.0},
                        {"kind": "event", "event": "start", "step": 0}])
    assert list(frame["tag"]) == ["train/loss", "train/lr", "val/ppl"]
    assert frame["value"].iloc[1] == float(np.float32(1e-3))  # as the event file stores it


def test_the_command_line_flag(text_file, runs_root, capsys):
    assert cli.main(["train", "--data", str(text_file), *TINY_FLAGS, "--steps", "4", "--eval-interval", "2",
                     "--name", "flagged", "--tensorboard"]) == 0
    assert f"tensorboard --logdir {runs_root}" in capsys.readouterr().out
    run = Run(runs_root / "flagged")
    assert run.read_config()["train"]["tensorboard"] is True
    assert set(read_scalars(run.tensorboard_path)["step"]) == {2, 4}  # evaluations at 2 and 4, a train record at 4
    assert cli.main(["train", "--resume", "flagged", "--tensorboard"]) == 2  # a run keeps its settings
    assert "--resume takes only --steps" in capsys.readouterr().err
