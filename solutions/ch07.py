"""Chapter 7: reference solutions, and wrong answers the checks must catch."""
import numpy as np

from lesson_lib.tensorboard import TAGS  # the mapping the trainer writes with



def throughput(records):
    first, last = records[0], records[-1]
    return (last["tokens"] - first["tokens"]) / (last["time"] - first["time"])


def mfu(tokens_per_s, flops_per_token, peak_flops):
    return tokens_per_s * flops_per_token / peak_flops


def smooth(values, weight):
    out, s = [], 0.0
    for t, x in enumerate(values, 1):
        s = weight * s + (1 - weight) * x
        out.append(s / (1 - weight**t))  # debiased, so the curve does not start at 0
    return np.array(out)


def event_scalars(records):
    return [(tag, r["step"], float(np.float32(r[key]))) for r in records for (kind, key), tag in TAGS.items()
            if r.get("kind") == kind and r.get(key) is not None]


SOLUTIONS = {"ch07.throughput": throughput, "ch07.mfu": mfu, "ch07.smoothing": smooth,
             "ch07.event-scalars": event_scalars}


def _biased(values, weight):
    out, s = [], 0.0
    for x in values:
        s = weight * s + (1 - weight) * x
        out.append(s)
    return np.array(out)


WRONG = [("ch07.throughput", lambda records: records[-1]["tokens"] / records[-1]["time"], "time before the first"),
         ("ch07.mfu", lambda tps, fpt, peak: 3 * tps * fpt / peak, "forward and backward"),
         ("ch07.smoothing", _biased, "dragged towards 0"),
         ("ch07.event-scalars", lambda records: event_scalars([r for r in records if r["kind"] == "train"]),
          "missing")]
