"""Data-parallel training under torchrun: two CPU processes (gloo), one run folder, exact resume; DDP and
FSDP against one process that accumulates the same batches."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY_FLAGS, TINY_GPT, TINY_TRAIN
from lesson_lib import checkpoints as ckpt
from lesson_lib.cli import main as cli_main
from lesson_lib.config import from_dict
from lesson_lib.experiment import load_trained, prepare_data
from lesson_lib.runs import Run
from lesson_lib.sharding import DemoConfig, demo_model, reference_run
from lesson_lib.training import TrainConfig, TrainData, evaluate, make_optimizer, train

FLAGS = ["--eval-interval", "3", *TINY_FLAGS]


def run_cli(args, runs, nproc=None, module="lesson_lib"):
    env = {**os.environ, "LESSON_RUNS_DIR": str(runs), "OMP_NUM_THREADS": "1"}
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc \
        else [sys.executable]
    return subprocess.run([*prefix, "-m", module, *args], env=env, capture_output=True, text=True, timeout=300)


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

    before = (run.config_path.read_bytes(), run.metrics_path.read_bytes())
    wrong = run_cli(["train", "--resume", "ddp", "--steps", "9", "--quiet"], runs)
    assert wrong.returncode == 2 and "same number of processes" in wrong.stderr
    # refused, so nothing changed: config.json still says 6 steps (it said 9 after this refusal before)
    assert (run.config_path.read_bytes(), run.metrics_path.read_bytes()) == before

    resumed = run_cli(["train", "--resume", "ddp", "--steps", "9", "--quiet"], runs, nproc=2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert run.status() == "finished" and run.metrics().of_kind("train")[-1]["step"] == 9


def test_fsdp_run_saves_whole_checkpoints_one_process_loads_and_resumes_exactly(tmp_path, text_file):
    runs = tmp_path / "runs"
    # every step logged, so the resumed curve is compared step by step; the learning rate decays over
    # 9 steps in both runs (by default the schedule ends at max_steps, 6 for the one resumed later)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"data": str(text_file), "tokenizer": "char", "model": TINY_GPT,
                                "train": {**TINY_TRAIN, "eval_interval": 3, "decay_steps": 9}}))
    whole = run_cli(["train", "--spec", str(spec), "--fsdp", "--name", "whole", "--steps", "9", "--quiet"], runs, 2)
    assert whole.returncode == 0, whole.stderr[-2000:]
    split = run_cli(["train", "--spec", str(spec), "--fsdp", "--name", "split", "--steps", "6", "--quiet"], runs, 2)
    assert split.returncode == 0, split.stderr[-2000:]
    resumed = run_cli(["train", "--resume", "split", "--steps", "9", "--quiet"], runs, nproc=2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a, b = Run(runs / "whole"), Run(runs / "split")
    assert a.read_config()["train"]["parallel"] == "fsdp" and b.read_config()["train"]["parallel"] == "fsdp"
    for kind, key in (("train", "train_loss"), ("train", "grad_norm"), ("eval", "val_loss")):
        curve = [(r["step"], r[key]) for r in a.metrics().of_kind(kind)]
        assert [r["step"] for r in b.metrics().of_kind(kind)] == [step for step, _ in curve]
        assert [(r["step"], r[key]) for r in b.metrics().of_kind(kind)] == curve  # exact, not close
    last_a, last_b = (load_file(str(run.checkpoint("latest") / "model.safetensors")) for run in (a, b))
    assert last_a.keys() == last_b.keys() and all(torch.equal(last_a[k], last_b[k]) for k in last_a)

    # the checkpoint is the whole model: one process loads it (strictly) and finds the val loss logged
    model, tokenizer, meta = load_trained(runs / "whole", "latest")
    config = from_dict(TrainConfig, a.read_config()["train"])
    _, data, _ = prepare_data(str(text_file), "char", tokenizer=tokenizer)
    val = evaluate(model, data.val, config.batch_size, TINY_GPT["block_size"], config.eval_iters,
                   torch.device("cpu"), seed=config.seed + 1)
    assert meta["step"] == 9 and val == pytest.approx(meta["val_loss"], abs=1e-5)
    optimizer = make_optimizer(model, config, torch.device("cpu"))
    optimizer.load_state_dict(ckpt.load_trainer_state(a.checkpoint("latest"))["optimizer"])
    for p in model.parameters():  # whole moments, not one process's shard
        assert optimizer.state[p]["exp_avg"].shape == p.shape and optimizer.state[p]["step"].item() == 9


def test_fsdp_setting_is_checked_and_does_nothing_in_one_process(tmp_path, text_file, runs_root, capsys):
    with pytest.raises(ValueError, match="parallel must be one of ddp, fsdp"):
        TrainConfig(parallel="zero")
    with pytest.raises(ValueError, match="fp16"):
        TrainConfig(parallel="fsdp", precision="fp16")
    assert cli_main(["train", "--resume", "any", "--fsdp"]) == 2
    assert "--resume takes only --steps" in capsys.readouterr().err

    torch.manual_seed(0)
    model, ids = demo_model(DemoConfig(vocab_size=7, n_layer=1)), torch.arange(300).numpy() % 7
    config = from_dict(TrainConfig, {**TINY_TRAIN, "max_steps": 2, "parallel": "fsdp"})
    result = train(model, TrainData(ids, ids), config, progress=False)
    start = result.records[0]
    assert result.step == 2 and start["event"] == "start" and "one process" in start["message"]


def test_ddp_and_fsdp_follow_one_process_and_fsdp_halves_the_bytes(tmp_path):
    steps, config = 20, DemoConfig()
    results = {}
    for mode in ("ddp", "fsdp"):
        out = tmp_path / f"{mode}.json"
        done = run_cli(["--mode", mode, "--steps", str(steps), "--out", str(out)], tmp_path, nproc=2,
                       module="lesson_lib.sharding")
        assert done.returncode == 0, done.stderr[-2000:]
        results[mode] = json.loads(out.read_text())
    reference = reference_run(steps, config, micro_batches=2)  # one process, the same global batches
    # the clip binds, so the curves also show the clip used the global norm: clipping each process's
    # shards by their own norm instead puts FSDP's curve 1e-3 off (measured)
    assert all(norm > config.grad_clip for norm in reference["grad_norms"][:5])
    assert reference["losses"][-1] < reference["losses"][0] - 0.5  # it learns
    for mode, result in results.items():
        assert len(result["losses"]) == steps
        assert max(abs(a - b) for a, b in zip(result["losses"], reference["losses"])) < 1e-4, mode
        assert max(abs(a - b) for a, b in zip(result["grad_norms"], reference["grad_norms"])) < 1e-4, mode

    ddp, fsdp = results["ddp"]["bytes"], results["fsdp"]["bytes"]
    assert len(ddp) == len(fsdp) == 2 and ddp[0] == ddp[1]
    assert ddp[0]["parameters"] == ddp[0]["gradients"] == 4 * demo_model(config).num_params()  # fp32, whole
    for part in ("parameters", "gradients"):  # the shards split every tensor between the two processes
        assert fsdp[0][part] + fsdp[1][part] == ddp[0][part]
    # each process holds half, give or take the 65-row embedding split 33/32 (one row of 32 floats in
    # each of 4 copies: 512 bytes) and AdamW's unsharded step counters (4 bytes per tensor): 0.1 % of ddp's
    for held in fsdp:
        assert held["total"] / ddp[0]["total"] == pytest.approx(0.5, abs=0.005)
