"""The trainer: schedule, parameter groups, resume exactness, NaN guard, atomic checkpoints."""
import json
import math
import os
import signal

import numpy as np
import pytest
import torch

from lesson_lib import checkpoints as ckpt
from lesson_lib.config import from_dict
from lesson_lib.experiment import load_trained, resume_run, start_run
from lesson_lib.models import build_model
from lesson_lib.runs import Run, read_metrics
from lesson_lib.training import TrainConfig, TrainData, TrainingDiverged, lr_at, make_optimizer, train

from conftest import TEXT, TINY_GPT as GPT_NO_DROPOUT, TINY_TRAIN as BASE_TRAIN

TINY_GPT = {**GPT_NO_DROPOUT, "dropout": 0.1}  # dropout on: resuming must replay the same masks
TINY_TRAIN = {**BASE_TRAIN, "max_steps": 20, "eval_interval": 5}


def spec(text_file, **train):
    return {"data": str(text_file), "tokenizer": "char", "model": dict(TINY_GPT), "train": {**TINY_TRAIN, **train}}


def losses(records, kind="train", key="train_loss"):
    return {r["step"]: r[key] for r in records if r.get("kind") == kind}


def interrupt_at_10(record):
    """A callback that stops a run at step 10 as Ctrl-C does: a signal, then a checkpoint at the step boundary."""
    if record.get("kind") == "train" and record["step"] == 10:
        os.kill(os.getpid(), signal.SIGINT)


def test_lr_schedule_is_warmup_then_cosine():
    c = TrainConfig(max_steps=100, lr=1.0, min_lr=0.1, warmup_steps=10)
    assert lr_at(0, c) == pytest.approx(0.1) and lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(55, c) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(100, c) == pytest.approx(0.1) and lr_at(500, c) == pytest.approx(0.1)
    assert all(lr_at(s, c) >= lr_at(s + 1, c) for s in range(10, 120))


def test_no_weight_decay_on_embeddings_norms_and_biases():
    model = build_model({**TINY_GPT, "vocab_size": 10, "bias": True})
    decay, keep = make_optimizer(model, TrainConfig(weight_decay=0.1), torch.device("cpu")).param_groups
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert any(p is model.token_embedding.weight for p in keep["params"])
    assert any(p is model.position_embedding.weight for p in keep["params"])
    assert sum(p.numel() for g in (decay, keep) for p in g["params"]) == model.num_params()


def test_train_config_errors_name_the_key():
    with pytest.raises(ValueError, match="max_step"):
        from_dict(TrainConfig, {"max_step": 10})
    with pytest.raises(TypeError, match="TrainConfig.lr"):
        from_dict(TrainConfig, {"lr": "fast"})
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_run_folder_and_loss_falls(text_file, tmp_path):
    result = start_run(spec(text_file, max_steps=60, eval_interval=20), name="tiny", root=tmp_path / "runs",
                       progress=False)
    run = Run(tmp_path / "runs" / "tiny")
    config = run.read_config()
    assert config["data"]["tokenizer"] == "char" and config["model"]["vocab_size"] == len(set(TEXT))
    metrics = run.metrics()
    evals = losses(metrics.records, "eval", "val_loss")
    assert sorted(evals) == [20, 40, 60]
    assert evals[60] < evals[20] < math.log(len(set(TEXT)))
    assert result.best_val_loss == min(evals.values()) and run.status() == "finished"
    assert all(r["val_bpc"] == pytest.approx(r["val_loss"] / math.log(2)) for r in metrics.of_kind("eval"))
    train_records = metrics.of_kind("train")
    assert {"step", "tokens", "time", "train_loss", "lr", "grad_norm", "tokens_per_s"} <= set(train_records[0])
    assert train_records[-1]["tokens"] == 60 * 4 * 16
    names = [p.name for p in run.checkpoints()]
    assert names[-2:] == ["step_0000040", "step_0000060"]  # keep_last=2, and the best is one of them
    model, tokenizer, meta = load_trained(run.path, "best")
    assert meta["val_loss"] == pytest.approx(min(evals.values()))
    assert tokenizer.decode(tokenizer.encode("To be")) == "To be"


def test_training_inside_no_grad_still_learns(text_file, tmp_path):
    # a script that turns gradients off for its sampling (torch.set_grad_enabled(False)) and trains too
    with torch.no_grad():
        result = start_run(spec(text_file, max_steps=20, eval_interval=10), name="nograd", root=tmp_path / "runs",
                           progress=False)
    evals = losses(Run(tmp_path / "runs" / "nograd").metrics().records, "eval", "val_loss")
    assert result.step == 20 and evals[20] < evals[10]


def test_resume_equals_an_uninterrupted_run(text_file, tmp_path):
    """Stop at step 10 (as Ctrl-C does: a signal, then a checkpoint at the step boundary), resume, compare."""
    full = start_run(spec(text_file), name="full", root=tmp_path, progress=False)

    first = start_run(spec(text_file), name="split", root=tmp_path, callback=interrupt_at_10, progress=False)
    assert first.status == "stopped" and first.step == 10
    assert Run(tmp_path / "split").status() == "stopped"
    second = resume_run("split", root=tmp_path, progress=False)
    assert second.status == "finished" and second.step == 20
    split = read_metrics(tmp_path / "split" / "metrics.jsonl").records
    assert losses(split) == losses(full.records)  # exact: same batches, same dropout masks
    assert losses(split, "eval", "val_loss") == losses(full.records, "eval", "val_loss")


def test_log_of_an_attempt_that_crashed_after_its_checkpoint_is_rewound(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"kind": "event", "event": "start", "step": 0}, {"kind": "train", "step": 5, "train_loss": 2.0},
             {"kind": "train", "step": 7, "train_loss": 9.9},  # after the step-5 checkpoint, then a crash
             {"kind": "event", "event": "resume", "step": 5}, {"kind": "train", "step": 7, "train_loss": 1.5}]
    path.write_text("".join(json.dumps(l) + "\n" for l in lines) + '{"kind": "train", "st', encoding="utf-8")
    metrics = read_metrics(path)
    assert losses(metrics.records) == {5: 2.0, 7: 1.5}
    assert len(metrics.warnings) == 1 and "line 6" in metrics.warnings[0]


class NaNAfter(torch.nn.Module):
    """Wraps a model; from forward call `after` on, the loss is NaN (as a diverging run's would be)."""

    def __init__(self, model, after):
        super().__init__()
        self.inner, self.after, self.calls = model, after, 0
        self.config = model.config

    def forward(self, idx, targets=None):
        self.calls += self.training  # training forwards only: evaluation does not count
        logits, loss = self.inner(idx, targets)
        if self.calls > self.after and self.training:
            loss = loss * float("nan")
        return logits, loss


def test_non_finite_loss_stops_before_the_update_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    torch.manual_seed(0)
    inner = build_model({**TINY_GPT, "vocab_size": 7})
    model = NaNAfter(inner, after=12)
    data = TrainData(np.arange(400) % 7, np.arange(100) % 7)
    run = Run.create("nan", tmp_path)
    run.write_config({"model": {**TINY_GPT, "vocab_size": 7}})
    config = from_dict(TrainConfig, {**TINY_TRAIN, "eval_interval": 10})
    import lesson_lib.trainer_state as trainer_state
    original = trainer_state.model_spec
    monkeypatch.setattr(trainer_state, "model_spec", lambda m: original(m.inner))  # the wrapper is not a family
    with pytest.raises(TrainingDiverged, match="step 13.*learning rate"):
        train(model, data, config, run, progress=False)
    run.release()
    before = {k: v.clone() for k, v in inner.state_dict().items()}
    assert all(torch.isfinite(v).all() for v in before.values())  # the bad update was not applied
    end = run.metrics().of_kind("event")[-1]
    assert end["status"] == "failed" and "step 13" in end["message"] and run.status() == "failed"
    checkpoint = run.checkpoint("latest")
    assert checkpoint.name == "step_0000010"
    fresh = NaNAfter(build_model({**TINY_GPT, "vocab_size": 7}), after=0)  # the checkpoint holds the wrapper
    ckpt.load_weights(fresh, checkpoint)
    assert all(torch.isfinite(p).all() for p in fresh.parameters())


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint(text_file, tmp_path, monkeypatch):
    start_run(spec(text_file, max_steps=5), name="disk", root=tmp_path, progress=False)
    run_path = tmp_path / "disk"
    folder = Run(run_path).checkpoints_path
    model, _, meta = load_trained(run_path, "latest")
    assert meta["step"] == 5

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", full_disk)  # weights written, trainer state fails
    with pytest.raises(OSError, match="No space"):
        ckpt.save_checkpoint(folder, model, {"step": 10}, {"step": 10, "val_loss": 0.1})
    assert [p.name for p in ckpt.list_checkpoints(folder)] == ["step_0000005"]
    assert not any(p.name.startswith(".tmp") for p in folder.iterdir())
    assert ckpt.read_best(folder)["name"] == "step_0000005"
    reloaded, _, meta = load_trained(run_path, "latest")
    assert meta["step"] == 5
    assert all(torch.equal(a, b) for a, b in zip(reloaded.parameters(), model.parameters()))


def test_damaged_checkpoint_is_named(text_file, tmp_path):
    start_run(spec(text_file, max_steps=5), name="bad", root=tmp_path, progress=False)
    weights = Run(tmp_path / "bad").checkpoint("latest") / "model.safetensors"
    weights.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="model.safetensors is damaged"):
        load_trained(tmp_path / "bad", "latest")
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        load_trained(tmp_path / "bad", "latest")


def test_context_longer_than_the_data_is_a_clear_error(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 5, encoding="utf-8")
    with pytest.raises(ValueError, match="block_size=16"):
        start_run({"data": str(short), "model": dict(TINY_GPT), "train": dict(TINY_TRAIN)}, root=tmp_path,
                  progress=False)


def test_gradient_accumulation_matches_one_large_batch():
    """Two micro-batches of 4 give the same update as one batch of 8 drawn from the same windows."""
    from lesson_lib.data import get_batch

    data = np.arange(500) % 13
    torch.manual_seed(0)
    a = build_model({**TINY_GPT, "dropout": 0.0, "vocab_size": 13})
    b = build_model({**TINY_GPT, "dropout": 0.0, "vocab_size": 13})
    b.load_state_dict(a.state_dict())
    g = torch.Generator().manual_seed(1)
    x1, y1 = get_batch(data, 4, 16, g)
    x2, y2 = get_batch(data, 4, 16, g)
    (a(x1, y1)[1] / 2 + a(x2, y2)[1] / 2).backward()
    b(torch.cat([x1, x2]), torch.cat([y1, y2]))[1].backward()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-6, rtol=1e-5)


def test_status_comes_from_the_run_files_and_its_lock(tmp_path):
    run = Run.create("status", tmp_path)  # created: locked by this process
    assert run.status() == "training"
    run.release()
    assert run.status() == "new"
    run.log({"kind": "event", "event": "start", "step": 0})
    assert run.status() == "stopped"  # started, nobody writing it, no end: killed; resumable
    reader = Run(tmp_path / "status")  # another handle sees the lock the first one takes
    run.acquire()
    assert reader.status() == "training" and reader.writer()["pid"] == os.getpid()
    run.release()
    run.log({"kind": "event", "event": "end", "status": "finished", "step": 3})
    assert reader.status() == "finished"


def test_fp16_trains_with_a_loss_scaler_and_resumes_exactly(text_file, tmp_path):
    """fp16 autocast (on the CPU too) with its GradScaler: the scale is saved, so resuming is exact."""
    full = start_run(spec(text_file, precision="fp16"), name="half", root=tmp_path, progress=False)
    assert full.status == "finished" and all(math.isfinite(r["train_loss"]) for r in full.records
                                             if r["kind"] == "train")
    state = ckpt.load_trainer_state(Run(tmp_path / "half").checkpoint("latest"))
    assert state["scaler"]["scale"] > 1  # the loss was scaled

    start_run(spec(text_file, precision="fp16"), name="half-split", root=tmp_path, callback=interrupt_at_10,
              progress=False)
    resume_run("half-split", root=tmp_path, progress=False)
    split = read_metrics(tmp_path / "half-split" / "metrics.jsonl").records
    assert losses(split) == losses(full.records)


def test_ensure_run_trains_once_then_reuses_continues_or_refuses(text_file, tmp_path):
    from lesson_lib.experiment import ensure_run

    first = ensure_run(spec(text_file, max_steps=10), "again", root=tmp_path, progress=False)
    log_size = (tmp_path / "again" / "metrics.jsonl").stat().st_size
    reused = ensure_run(spec(text_file, max_steps=10, device="auto"), "again", root=tmp_path, progress=False)
    assert (tmp_path / "again" / "metrics.jsonl").stat().st_size == log_size  # nothing trained
    assert reused.step == 10 and reused.best_val_loss == first.best_val_loss
    recomputing = spec(text_file, max_steps=10)
    recomputing["model"]["activation_checkpointing"] = 1  # how it trains (less memory), not what it learns
    assert ensure_run(recomputing, "again", root=tmp_path, progress=False).step == 10
    assert (tmp_path / "again" / "metrics.jsonl").stat().st_size == log_size
    more = ensure_run(spec(text_file, max_steps=15), "again", root=tmp_path, progress=False)
    assert more.step == 15 and Run(tmp_path / "again").read_config()["train"]["max_steps"] == 15
    with pytest.raises(ValueError, match="other train settings"):
        ensure_run(spec(text_file, max_steps=15, lr=1e-2), "again", root=tmp_path, progress=False)
    with pytest.raises(ValueError, match="trained for 15 steps"):
        ensure_run(spec(text_file, max_steps=5), "again", root=tmp_path, progress=False)


def test_every_preset_is_a_valid_spec_and_notebook_runs_are_named_by_mode():
    from lesson_lib.experiment import check_spec
    from lesson_lib.presets import PRESETS, notebook_run

    for name in PRESETS:
        check_spec({**PRESETS[name], "train": {**PRESETS[name]["train"], "device": "cpu"}})
    full_name, full = notebook_run("ch05-gpt-char", fast=False)
    fast_name, fast = notebook_run("ch05-gpt-char", fast=True)
    assert (full_name, fast_name) == ("ch05-gpt-char", "ch05-gpt-char-fast")
    assert fast["model"] == full["model"] and 50 <= fast["train"]["max_steps"] < full["train"]["max_steps"]
    assert notebook_run("ch05-gpt-char", fast=True) == (fast_name, fast)  # two notebooks, one run


def test_cpu_threads_is_restored_after_the_block():
    from lesson_lib.device import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), cpu_threads(1):
        raise RuntimeError("even when the block fails")
    assert torch.get_num_threads() == before


def test_the_cpu_peak_is_measured_once_per_thread_count(monkeypatch):
    from lesson_lib import device as device_module

    monkeypatch.delenv("LESSON_PEAK_FLOPS", raising=False)
    monkeypatch.setattr(device_module, "_PEAK_CACHE", {})
    readings = []

    def fake_measure(device, dtype=torch.float32, min_seconds=0.15):
        readings.append(torch.get_num_threads())
        return 1e9 * torch.get_num_threads()  # a peak that scales with the threads, as a real one does

    monkeypatch.setattr(device_module, "measure_matmul_flops", fake_measure)
    cpu = torch.device("cpu")
    with device_module.cpu_threads(1):
        one = device_module.peak_flops(cpu)
    with device_module.cpu_threads(2):
        two = device_module.peak_flops(cpu)
        assert device_module.peak_flops(cpu) == two  # measured once for this thread count
    assert (one, two) == (1e9, 2e9) and readings == [1, 1, 1, 2, 2, 2]


def test_a_word_level_lstm_starts_from_saved_word_vectors(text_file, tmp_path):
    from lesson_lib.embeddings import Vocab, save_vectors
    from lesson_lib.tokenizers import load_tokenizer

    words = ("romeo", "but", "soft", "what", "light", "juliet")
    vectors = np.random.default_rng(0).normal(size=(len(words), 12)).astype(np.float32)
    save_vectors(tmp_path / "vecs", vectors, Vocab(words, (5, 4, 3, 2, 2, 1)))
    lstm = {"family": "lstm", "block_size": 8, "n_embd": 12, "n_hidden": 16, "freeze_embedding": True}
    word_spec = {"data": str(text_file), "tokenizer": "word", "model": lstm, "init_vectors": "vecs",
                 "train": {**TINY_TRAIN, "max_steps": 4, "eval_interval": 4}}
    start_run(word_spec, name="w2v", root=tmp_path, progress=False)
    model, tokenizer, _ = load_trained(tmp_path / "w2v", "latest")
    embedding = model.token_embedding.weight.detach().numpy()
    for row, word in enumerate(words):  # frozen: still exactly the vectors, found by word
        assert np.array_equal(embedding[load_tokenizer(tmp_path / "w2v" / "tokenizer.json").words.index(word)],
                              vectors[row])
    info = Run(tmp_path / "w2v").read_config()["data"]["init_vectors"]
    assert info == {"name": "vecs", "words_found": len(words), "vocab_size": tokenizer.vocab_size}
    with pytest.raises(ValueError, match="set the model's n_embd to 12"):
        start_run({**word_spec, "model": {**lstm, "n_embd": 10}}, name="wrong", root=tmp_path, progress=False)
    assert not (tmp_path / "wrong").exists()
    with pytest.raises(ValueError, match="needs the word tokenizer and the lstm"):
        start_run({**word_spec, "tokenizer": "char"}, name="wrong", root=tmp_path, progress=False)


# --- Muon (a speedrun rung): the hidden matrices to Muon, the rest to AdamW, one learning rate ---

def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    from lesson_lib.models import build_model
    from lesson_lib.training import MuonWithAdamW, TrainConfig, make_optimizer

    model = build_model({**TINY_GPT, "vocab_size": 11, "n_layer": 2, "tie_embeddings": False})
    optimizer = make_optimizer(model, TrainConfig(optimizer="muon", lr=2e-3), torch.device("cpu"))
    assert isinstance(optimizer, MuonWithAdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[id(p)] for g in optimizer.muon.param_groups for p in g["params"]}
    assert muon == {f"blocks.{i}.{m}.weight" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.up", "mlp.down")}
    adamw = {names[id(p)] for g in optimizer.adamw.param_groups for p in g["params"]}
    assert adamw == set(names.values()) - muon and "lm_head.weight" in adamw  # the output layer stays with AdamW
    for group in optimizer.param_groups:  # the trainer sets one learning rate for all of them
        group["lr"] = 5e-4
    assert optimizer.muon.param_groups[0]["lr"] == optimizer.adamw.param_groups[0]["lr"] == 5e-4


def test_muon_steps_along_an_orthogonal_matrix():
    """Muon's step on a matrix with a momentum-free first step is the gradient's nearest orthogonal
    matrix: its singular values all about the same, whatever the gradient's were."""
    from lesson_lib.training import MuonWithAdamW

    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.zeros(16, 32))
    muon = torch.optim.Muon([weight], lr=1.0, weight_decay=0.0, momentum=0.0, nesterov=False, adjust_lr_fn=None)
    optimizer = MuonWithAdamW(muon, torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))]))
    weight.grad = torch.logspace(0, -1.5, 16)[:, None] * torch.randn(16, 32)  # rows 1 to 0.03 in size
    optimizer.step()
    gradient, step = torch.linalg.svdvals(weight.grad), torch.linalg.svdvals(weight.detach())
    assert gradient.max() / gradient.min() > 20  # the gradient's directions differ in size 20-fold and more
    assert step.min() > 0.6 and step.max() < 1.3  # Newton-Schulz's quintic lands them all in about [0.7, 1.2]


def test_muon_trains_and_resumes_exactly(text_file, tmp_path):
    full = start_run(spec(text_file, optimizer="muon"), name="muon", root=tmp_path, progress=False)
    trained = losses(full.records)
    assert full.status == "finished" and trained[20] < trained[1] - 0.1  # it learns

    start_run(spec(text_file, optimizer="muon"), name="muon-split", root=tmp_path, callback=interrupt_at_10,
              progress=False)
    resume_run("muon-split", root=tmp_path, progress=False)
    assert losses(read_metrics(tmp_path / "muon-split" / "metrics.jsonl").records) == trained  # momentum saved


def test_muon_refuses_what_it_cannot_do(text_file, tmp_path):
    from lesson_lib.training import TrainConfig

    with pytest.raises(ValueError, match="optimizer must be one of adamw, muon"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="'muon' works with precision fp32 or bf16"):
        TrainConfig(optimizer="muon", precision="fp16")
    bigram = {"data": str(text_file), "tokenizer": "char", "model": {"family": "bigram"},
              "train": {**TINY_TRAIN, "optimizer": "muon"}}
    with pytest.raises(ValueError, match="has none: use optimizer 'adamw'"):
        start_run(bigram, name="bigram-muon", root=tmp_path, progress=False)
    start_run(spec(text_file, max_steps=6, eval_interval=6), name="adam", root=tmp_path, progress=False)
    run = Run(tmp_path / "adam")
    config = run.read_config()
    config["train"]["optimizer"] = "muon"  # a run resumed with another optimizer than it started with
    from lesson_lib.training import make_optimizer
    from lesson_lib.experiment import load_trained
    model, _, _ = load_trained(run.path, "latest")
    state = ckpt.load_trainer_state(run.checkpoint("latest"))
    optimizer = make_optimizer(model, TrainConfig(optimizer="muon"), torch.device("cpu"))
    with pytest.raises(ValueError, match="trained with another optimizer"):
        optimizer.load_state_dict(state["optimizer"])


def test_the_logged_mfu_is_the_model_flops_per_token_times_tokens_per_s_over_the_peak(text_file, tmp_path, monkeypatch):
    """What chapter 2 tells the learner the trainer logs as MFU; the peak is fixed here so that only the formula counts."""
    monkeypatch.setattr("lesson_lib.training.peak_flops", lambda device, dtype: 2.0e9)
    start_run(spec(text_file, max_steps=6, eval_interval=6, measure_mfu=True), name="mfu", root=tmp_path / "runs",
              progress=False)
    run = Run(tmp_path / "runs" / "mfu")
    model, _, _ = load_trained(run.path, "latest")
    records = run.metrics().of_kind("train")
    assert len(records) == 6
    for record in records:  # tokens_per_s is logged to 0.1: the MFU agrees to that rounding
        assert record["mfu"] == pytest.approx(model.flops_per_token() * record["tokens_per_s"] / 2.0e9, rel=1e-3)
