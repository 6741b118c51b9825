"""How long training takes: FLOPs over achieved FLOP/s, a run's steps and evaluations, and calibration."""
import pytest

from lesson_lib.device import cpu_threads
from lesson_lib.experiment import prepare_data
from lesson_lib.models import GPTConfig
from lesson_lib.scaling import gpt_flops_per_token
from lesson_lib.models import build_model
from lesson_lib.training import TrainConfig, train
from lesson_lib.training_time import calibrate, count_run, evaluation_count, predict_run_time, training_time

CONFIG = GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=3, n_embd=24)


def test_training_time_is_flops_over_devices_peak_and_mfu():
    assert training_time(6e12, peak=1e12, mfu=0.5) == pytest.approx(12.0)
    assert training_time(6e12, peak=1e12, mfu=0.5, devices=4) == pytest.approx(3.0)
    for bad in ({"mfu": 0.0}, {"mfu": float("nan")}, {"peak": 0.0}, {"devices": 0}, {"devices": 1.5}):
        with pytest.raises(ValueError):
            training_time(1e9, **{"peak": 1e9, "mfu": 0.5, **bad})


@pytest.mark.parametrize("steps, interval, count", [(1500, 250, 6), (40, 250, 1), (260, 250, 2), (250, 250, 1)])
def test_the_trainer_evaluates_every_interval_and_at_the_end(steps, interval, count):
    assert evaluation_count(steps, interval) == count


TIME_SPEC = {"model": {"family": "gpt", "block_size": 16, "n_layer": 2, "n_head": 3, "n_embd": 24},
             "train": {"max_steps": 100, "batch_size": 4, "eval_interval": 30, "eval_iters": 5}}


def test_a_run_is_its_steps_and_its_evaluations():
    per_token = gpt_flops_per_token(CONFIG)  # CONFIG is TIME_SPEC's model with 37 tokens
    estimate = predict_run_time(TIME_SPEC, 37, peak=1e10, mfu=0.5, eval_mfu=0.25, overhead_s=2.0)
    assert estimate.steps == 100 and estimate.evaluations == 4
    assert estimate.train_flops == per_token * 100 * 4 * 16
    assert estimate.eval_flops == pytest.approx(per_token / 3 * 4 * 5 * 4 * 16)  # forward: a third
    assert estimate.train_s == pytest.approx(estimate.train_flops / 5e9)
    assert estimate.eval_s == pytest.approx(estimate.eval_flops / 2.5e9)
    assert estimate.total_s == pytest.approx(estimate.train_s + estimate.eval_s + 2.0)
    shorter = predict_run_time(TIME_SPEC, 37, peak=1e10, mfu=0.5, steps=40)
    assert shorter.steps == 40 and shorter.evaluations == 2 and shorter.train_s == pytest.approx(0.4 * estimate.train_s)
    two = predict_run_time(TIME_SPEC, 37, peak=1e10, mfu=0.5, devices=2)  # data parallel: a batch on each device
    assert two.train_flops == 2 * estimate.train_flops and two.train_s == pytest.approx(estimate.train_s)


def test_calibration_measures_what_the_prediction_assumes(text_file):
    tokenizer, data, _ = prepare_data(str(text_file), "char")
    spec = {**TIME_SPEC, "train": {**TIME_SPEC["train"], "device": "cpu"}}
    with cpu_threads(1):
        measured = calibrate(spec, tokenizer.vocab_size, data, peak=1e12, steps=6, skip=2, eval_batches=3)
    assert 0 < measured.mfu < 1 and 0 < measured.eval_mfu < 1
    per_token = predict_run_time(spec, tokenizer.vocab_size, 1e12, 0.5, steps=1).train_flops / (4 * 16)
    assert measured.mfu * 1e12 * measured.seconds_per_step == pytest.approx(per_token * 4 * 16)
    assert measured.eval_mfu * 1e12 * measured.seconds_per_eval_batch == pytest.approx(per_token / 3 * 4 * 16)
    # at the calibrated MFU, a run's training is its steps at the measured time per step
    estimate = predict_run_time(spec, tokenizer.vocab_size, 1e12, measured.mfu, measured.eval_mfu)
    assert estimate.train_s == pytest.approx(100 * measured.seconds_per_step)
    assert estimate.eval_s == pytest.approx(4 * 5 * measured.seconds_per_eval_batch)


def test_a_run_counted_from_its_shape_is_what_the_trainer_does(text_file):
    # count_run reads no clock: its tokens and evaluation passes are the trainer's own, and the prediction's FLOPs
    tokenizer, data, _ = prepare_data(str(text_file), "char")
    spec = {**TIME_SPEC, "train": {**TIME_SPEC["train"], "max_steps": 35, "eval_iters": 1, "device": "cpu"}}
    count = count_run(spec, tokenizer.vocab_size)
    assert (count.steps, count.evaluations, count.train_tokens) == (35, 2, 35 * 4 * 16)
    model = build_model({**spec["model"], "vocab_size": tokenizer.vocab_size})
    with cpu_threads(1):
        result = train(model, data, TrainConfig(**spec["train"]), progress=False)
    assert result.tokens == count.train_tokens
    assert sum(r["kind"] == "eval" for r in result.records) == count.evaluations
    assert count.train_flops == model.flops_per_token() * result.tokens
    estimate = predict_run_time(spec, tokenizer.vocab_size, peak=1e10, mfu=0.5)
    assert (estimate.steps, estimate.train_flops, estimate.evaluations, estimate.eval_flops) == (
        count.steps, count.train_flops, count.evaluations, count.eval_flops)
    with pytest.raises(ValueError, match="steps"):
        count_run(spec, tokenizer.vocab_size, steps=0)
