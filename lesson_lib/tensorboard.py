"""TensorBoard event files beside the run log, for those who follow training in TensorBoard.

The run's record stays `metrics.jsonl` (the dashboard, the CLI and the notebooks read it through
`runs`). With `TrainConfig.tensorboard` the trainer also writes the numbers of every train and eval
record as TensorBoard scalars into the run folder's `tensorboard/`, through
`torch.utils.tensorboard`, so that

    tensorboard --logdir runs

shows every run that asked for it, one curve per tag. A resumed run purges the events that the
interrupted attempt wrote after its checkpoint, as `runs.read_metrics` drops those records, so
both show the run as if it had never stopped. This module is the one owner of those event files:
it writes them (`EventLog`) and reads them back with TensorBoard's own reader (`read_scalars`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

# (record kind, record field) -> TensorBoard tag
TAGS = {
    ("train", "train_loss"): "train/loss",
    ("train", "lr"): "train/lr",
    ("train", "grad_norm"): "train/grad_norm",
    ("train", "tokens_per_s"): "train/tokens_per_s",
    ("train", "mfu"): "train/mfu",
    ("eval", "val_loss"): "val/loss",
    ("eval", "val_ppl"): "val/ppl",
    ("eval", "val_bpc"): "val/bpc",
}
COLUMNS = ["tag", "step", "value"]


def _missing() -> ImportError:
    return ImportError("TensorBoard event files need the tensorboard package: install the course's requirements "
                       "(make install), or train without the tensorboard setting")


def scalars_of(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The scalars the trainer writes for these run-log records: one row per (tag, step), the value
    as the event file stores it (float32). Missing and non-finite values are not written."""
    import numpy as np

    rows = []
    for record in records:
        for (kind, key), tag in TAGS.items():
            value = record.get(key)
            if record.get("kind") == kind and isinstance(value, (int, float)) and math.isfinite(value):
                rows.append((tag, int(record["step"]), float(np.float32(value))))
    return pd.DataFrame(rows, columns=COLUMNS)


class EventLog:
    """Writes run-log records as TensorBoard scalars into `path` (a run's `tensorboard_path`).

    `purge_step`: on a resume from the checkpoint at step s, pass s + 1; TensorBoard then hides the
    events of steps after s that the interrupted attempt had written.
    """

    def __init__(self, path: str | Path, purge_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing() from None
        self.writer = SummaryWriter(log_dir=str(path), purge_step=purge_step)

    def write(self, record: Mapping[str, Any]) -> None:
        for tag, step, value in scalars_of([record]).itertuples(index=False):
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()  # a crash loses nothing TensorBoard was shown

    def close(self) -> None:
        self.writer.close()


def read_scalars(path: str | Path) -> pd.DataFrame:
    """Every scalar in the event files under `path`, read with TensorBoard's EventAccumulator: one row
    per (tag, step), sorted; purged events are gone, as TensorBoard shows them."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator
    except ImportError:
        raise _missing() from None
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no TensorBoard event files at {path}: train with the tensorboard setting "
                                "(--tensorboard on the command line) to write them")
    accumulator = EventAccumulator(str(path), size_guidance={SCALARS: 0})  # 0: keep every event
    accumulator.Reload()
    rows = [(tag, event.step, event.value) for tag in accumulator.Tags()["scalars"]
            for event in accumulator.Scalars(tag)]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["tag", "step"], kind="stable").reset_index(drop=True)
