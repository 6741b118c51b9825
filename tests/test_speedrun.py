"""bench/speedrun.py's ladder is what the README's table says: its last rung is the speedrun-cpu preset, and its
first is the starter's recipe from before the speedrun. (Speed itself is the benchmark's to measure, not a test's.)"""
import importlib.util
from pathlib import Path

from lesson_lib.models.gpt import GPTConfig
from lesson_lib.presets import get_preset

SPEC = importlib.util.spec_from_file_location("speedrun", Path(__file__).parent.parent / "bench" / "speedrun.py")
speedrun = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(speedrun)


def on_the_preset(overrides: dict) -> dict:
    """The speedrun-cpu preset with a rung's settings; a model setting equal to the GPT's default left out."""
    spec = get_preset("speedrun-cpu")
    for part in ("model", "train"):
        spec[part].update(overrides.get(part, {}))
    spec["model"] = {key: value for key, value in spec["model"].items()
                     if not (key in GPTConfig.__dataclass_fields__ and key not in get_preset("speedrun-cpu")["model"]
                             and GPTConfig.__dataclass_fields__[key].default == value)}
    return spec


def test_the_last_rung_is_the_speedrun_preset_and_each_rung_changes_something():
    rungs = speedrun.rungs()
    assert len(rungs) == len(speedrun.LADDER) + 1
    assert on_the_preset(rungs[-1][1]) == get_preset("speedrun-cpu")  # the ladder ends where the preset is
    settings = [on_the_preset(overrides) for _, overrides in rungs]
    assert all(a != b for a, b in zip(settings, settings[1:]))  # no rung that changes nothing


def test_the_first_rung_is_the_starter_recipe_from_before_the_speedrun():
    first = on_the_preset(speedrun.rungs()[0][1])
    assert first["model"] == get_preset("starter")["model"]  # the same model
    assert {key: first["train"][key] for key in ("max_steps", "lr", "min_lr", "eval_interval", "optimizer")} == \
        {"max_steps": 1500, "lr": 2e-3, "min_lr": 2e-4, "eval_interval": 250, "optimizer": "adamw"}
    assert first["train"]["precision"] == "auto"  # fp32 on a CPU
