"""The command line, end to end on a small text file, and its error messages."""
import json

import pytest

from conftest import TINY_FLAGS
from lesson_lib.cli import main

TINY = ["--steps", "12", "--eval-interval", "6", *TINY_FLAGS]


@pytest.fixture
def runs(runs_root, text_file):
    """The runs folder set for the CLI; the text file to train on."""
    return text_file


def test_train_generate_and_list(runs, capsys):
    assert main(["train", "--data", str(runs), "--name", "tiny", *TINY]) == 0
    out = capsys.readouterr().out
    assert "finished: run 'tiny', step 12" in out
    assert main(["generate", "--run", "tiny", "--prompt", "ROMEO:", "--max-new-tokens", "20", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text.rstrip("\n")) >= len("ROMEO:") + 1
    assert main(["runs"]) == 0
    listing = capsys.readouterr().out
    assert "tiny" in listing and "finished" in listing


def test_the_generate_hint_follows_the_corpus_and_survives_the_shell(runs, capsys):
    import subprocess

    from lesson_lib.cli import _prompt_of, _shell_quoted
    from lesson_lib.runs import Run

    assert main(["train", "--data", str(runs), "--name", "tiny", *TINY]) == 0
    assert "generate --run tiny --prompt 'ROMEO:'" in capsys.readouterr().out  # a text of its own: Shakespeare's
    run = Run.open("tiny")
    config = run.read_config()
    run.write_config({**config, "data": {**config["data"], "source": "tang"}})
    assert _prompt_of("tiny") == "春夜\n"
    for text in ["春夜\n", "ROMEO:", "it's", "a\\b\n'c'", "$HOME `x`"]:  # what bash reads back is the text itself
        echoed = subprocess.run(["bash", "-c", f"printf %s {_shell_quoted(text)}"], capture_output=True, text=True)
        assert echoed.stdout == text, (text, _shell_quoted(text))


@pytest.mark.parametrize("family", ["bigram", "mlp", "lstm"])
def test_other_families_train_from_the_cli(runs, capsys, family):
    assert main(["train", "--data", str(runs), "--model", family, "--steps", "6", "--eval-interval", "3",
                 "--block-size", "16", "--batch-size", "4", "--device", "cpu", "--quiet"]) == 0
    assert f"run '{family}'" in capsys.readouterr().out


def test_resume_continues_to_a_new_step_budget(runs, capsys):
    assert main(["train", "--data", str(runs), "--name", "r", *TINY]) == 0
    assert main(["train", "--resume", "r", "--steps", "18", "--quiet"]) == 0
    assert "step 18" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--preset", "huge"], "unknown preset 'huge'"),
    (["train", "--data", "/no/such/file.txt"], "/no/such/file.txt"),
    (["generate", "--run", "nothing"], "no run named 'nothing'"),
    (["train", "--resume", "nothing"], "no run named 'nothing'"),
])
def test_errors_are_one_clear_line(runs, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_bad_files_are_explained(runs, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 50)
    assert main(["train", "--data", str(empty), *TINY]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["train", "--data", str(latin), *TINY]) == 2
    assert "UTF-8" in capsys.readouterr().err


def test_generation_errors(runs, capsys):
    assert main(["train", "--data", str(runs), "--name", "g", *TINY]) == 0
    capsys.readouterr()
    assert main(["generate", "--run", "g", "--temperature", "-1"]) == 2
    assert "temperature must be >= 0" in capsys.readouterr().err
    assert main(["generate", "--run", "g", "--top-p", "0"]) == 2
    assert "top_p" in capsys.readouterr().err
    assert main(["generate", "--run", "g", "--prompt", "ROMEO ☃"]) == 2
    assert "'☃'" in capsys.readouterr().err
    assert main(["generate", "--run", "g", "--checkpoint", "999"]) == 2
    assert "no checkpoint '999'" in capsys.readouterr().err
    assert main(["generate", "--run", "g", "--temperature", "nan"]) == 2
    assert "temperature must be a finite number" in capsys.readouterr().err
    assert main(["generate", "--run", "g", "--max-new-tokens", "20000"]) == 2
    err = capsys.readouterr().err
    assert "at most 10000" in err and "Traceback" not in err


def test_second_run_with_a_taken_name_is_refused(runs, capsys):
    assert main(["train", "--data", str(runs), "--name", "same", *TINY]) == 0
    assert main(["train", "--data", str(runs), "--name", "same", *TINY]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_spec_file_trains_like_the_flags(runs, tmp_path, capsys):
    spec = {"data": str(runs), "tokenizer": "char",
            "model": {"family": "gpt", "block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 16},
            "train": {"max_steps": 12, "eval_interval": 6, "batch_size": 4, "device": "cpu"}}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert main(["train", "--spec", str(path), "--name", "from-spec", "--steps", "8", "--quiet"]) == 0
    assert "finished: run 'from-spec', step 8" in capsys.readouterr().out
    path.write_text(json.dumps({**spec, "train": {"max_steps": 12, "learning_rate": 1e-3}}))
    assert main(["train", "--spec", str(path), "--name", "bad-spec"]) == 2
    assert "learning_rate" in capsys.readouterr().err
    path.write_text("{not json")
    assert main(["train", "--spec", str(path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_resume_takes_only_a_step_budget(runs, capsys):
    assert main(["train", "--data", str(runs), "--name", "r2", *TINY]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "r2", "--lr", "0.1"]) == 2
    assert "--resume takes only --steps" in capsys.readouterr().err


def test_runs_folder_is_the_course_root_from_any_subfolder(tmp_path, monkeypatch):
    from lesson_lib.runs import runs_dir

    monkeypatch.delenv("LESSON_RUNS_DIR", raising=False)
    course = tmp_path / "course"
    (course / "lesson_lib").mkdir(parents=True)
    (course / "lesson_lib" / "__init__.py").write_text("")
    (course / "pyproject.toml").write_text("")
    (course / "notebooks").mkdir()
    monkeypatch.chdir(course / "notebooks")
    assert runs_dir() == course / "runs"
    monkeypatch.chdir(tmp_path)
    assert runs_dir() == tmp_path / "runs"
    monkeypatch.setenv("LESSON_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert runs_dir() == tmp_path / "elsewhere"
