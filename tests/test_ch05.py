"""Chapter 5's presets: the comparisons the notebook draws are fair by construction, and each recipe trains."""
import ast
import json
from pathlib import Path

import pytest

from lesson_lib.experiment import check_spec, ensure_run
from lesson_lib.presets import PRESETS, get_preset, notebook_run

from conftest import TINY_TRAIN

ROOT = Path(__file__).resolve().parent.parent
WORD = ("ch05-lstm-word", "ch05-gpt-word")  # compared on the same words and token budget
CHAR = ("ch05-lstm-char", "ch05-gpt-char")  # ... and on the same characters


def budget(spec):
    """Tokens a run reads: steps x batch x context (x accumulation)."""
    train = spec["train"]
    return train["max_steps"] * train["batch_size"] * train.get("grad_accum", 1) * spec["model"]["block_size"]


@pytest.mark.parametrize("pair", [WORD, CHAR], ids=["words", "characters"])
@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
def test_compared_presets_read_the_same_text_and_the_same_number_of_tokens(pair, fast):
    (name_a, a), (name_b, b) = (notebook_run(p, fast) for p in pair)
    assert (name_a, name_b) == tuple(p + ("-fast" if fast else "") for p in pair)
    for key in ("data", "tokenizer", "vocab_size", "val_fraction"):
        assert a.get(key) == b.get(key), key
    assert budget(a) == budget(b)
    assert a["train"].get("seed") == b["train"].get("seed")  # the same batches, in the same order
    assert {a["model"]["family"], b["model"]["family"]} == {"lstm", "gpt"}


def test_the_word_lstm_is_as_wide_as_chapter_4s_vectors_and_takes_them():
    notebook = json.loads((ROOT / "notebooks" / "04_math.ipynb").read_text(encoding="utf-8"))
    parameters = next(c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    values = {s.targets[0].id: ast.literal_eval(s.value) for s in ast.parse("".join(parameters["source"])).body}
    spec = get_preset("ch05-lstm-word")
    assert spec["model"]["n_embd"] == values["W2V_DIM"]  # --init-vectors word2vec-shakespeare fits
    for freeze in (True, False):
        check_spec({**spec, "init_vectors": "word2vec-shakespeare",
                    "model": {**spec["model"], "freeze_embedding": freeze}, "train": {**spec["train"], "device": "cpu"}})


@pytest.mark.parametrize("preset", [p for p in PRESETS if p.startswith("ch05-")])
def test_each_chapter_5_recipe_trains_and_is_reused(preset, text_file, tmp_path):
    spec = get_preset(preset)
    spec["data"] = str(text_file)
    spec["model"]["block_size"] = min(spec["model"]["block_size"], 8)  # the tiny text has few words
    spec["train"] = {**TINY_TRAIN, "max_steps": 2, "eval_interval": 2}
    first = ensure_run(spec, preset, root=tmp_path, progress=False)
    again = ensure_run(spec, preset, root=tmp_path, progress=False)  # read back, not trained twice
    assert first.step == again.step == 2 and again.best_val_loss == pytest.approx(first.best_val_loss)
