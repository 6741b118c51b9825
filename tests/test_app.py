"""The dashboard's pages, driven headless with Streamlit's AppTest against a tiny run in a temp folder."""
import html
import importlib
import json
import os
import re
import shutil
import string
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from google.protobuf.json_format import MessageToDict
from streamlit.testing.v1 import AppTest

from lesson_lib import jobs
from lesson_lib.experiment import start_run
from lesson_lib.runs import Run

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "app" / "main.py")


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()  # the app decodes on one thread; give the other tests theirs back
    yield
    torch.set_num_threads(threads)


def set_address(address):
    """Streamlit's server.address as a flag or config.toml would set it (None: not set anywhere)."""
    from streamlit import config

    config.set_option("server.address", address)


@pytest.fixture(autouse=True)
def listening_on_this_machine():
    """Every page as `make app` serves it (--server.address localhost), wherever pytest runs from: without
    an address the dashboard refuses to serve its pages (see test_without_an_address_...)."""
    from streamlit import config

    before = config.get_option("server.address")
    set_address("localhost")
    yield
    set_address(before)


@pytest.fixture
def runs(runs_root, tiny_spec):
    """A runs folder with one tiny finished run, 'tiny'."""
    start_run(tiny_spec(max_steps=20, eval_interval=10, log_interval=2), name="tiny", root=runs_root, progress=False)
    return runs_root


def page(name: str, **query) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params.update(query)  # as a link would: ?run=NAME
    at.run()
    at.query_params.update(query)
    at.switch_page(f"views/{name}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.mark.parametrize("name", ["runs", "generate", "train"])
def test_empty_state_offers_the_starter_model(tmp_path, monkeypatch, name):
    monkeypatch.setenv("LESSON_RUNS_DIR", str(tmp_path / "empty"))
    at = page(name)
    if name == "train":  # the train page is where training starts anyway: its form is the offer
        assert at.button(key="train-start").label == "Start training"
    else:
        assert any("no training runs yet" in info.value for info in at.info)
        assert any(b.label == "Train the starter model" for b in at.button)


def test_runs_page_lists_runs_and_draws_curves(runs):
    at = page("runs")
    table = at.dataframe[0].value
    assert list(table["name"]) == ["tiny"] and table["status"][0] == "finished"
    assert table["best_val_loss"][0] > 0
    assert at.multiselect(key="runs-chosen").value == ["tiny"]
    assert len(at.get("plotly_chart")) == 2  # loss; learning rate and tokens/s side by side
    at.radio(key="runs-x").set_value("tokens").run()
    at.slider(key="runs-smoothing").set_value(0.9).run()
    assert not at.exception and len(at.get("plotly_chart")) == 2


def test_a_damaged_metrics_line_is_skipped_with_a_warning(runs):
    with open(runs / "tiny" / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"kind": "train", "step": 21, "train_lo\n')
    at = page("runs")
    assert any("damaged line" in w.value and "tiny" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 2


def test_generate_produces_text_and_explains_it(runs):
    at = page("generate")
    at.text_area(key="gen-prompt").set_value("ROMEO:")
    at.slider(key="gen-max").set_value(40)
    at.button(key="gen-go").click().run()
    assert not at.exception and not at.error
    shown = [m.value for m in at.markdown]
    assert shown[0] == "**ROMEO:**"
    assert any(len(text) >= 20 for text in shown[1:])  # the streamed continuation
    assert any("40 tokens" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1  # the next-token probabilities at the chosen position
    at.slider(key="gen-position").set_value(5).run()
    assert not at.exception and "position 5" in str(at.get("plotly_chart")[0].proto.spec)


def test_same_seed_same_text_in_two_sessions(runs):
    texts = []
    for _ in range(2):  # two sessions at once share the cached model, not their state
        at = page("generate")
        at.slider(key="gen-max").set_value(30)
        at.button(key="gen-go").click().run()
        texts.append([m.value for m in at.markdown][1])
    assert texts[0] == texts[1] and len(texts[0]) > 10


def test_a_prompt_with_unknown_characters_is_explained(runs):
    at = page("generate")
    at.text_area(key="gen-prompt").set_value("ROMEO ☃ é")
    at.button(key="gen-go").click().run()
    assert not at.exception
    assert any("'é'" in e.value and "'☃'" in e.value and "no token" in e.value for e in at.error)


def test_records_of_the_wrong_types_do_not_break_the_runs_page(runs):
    with open(runs / "tiny" / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"kind": "train"}\n{"kind": "train", "step": "25", "train_loss": 1.0}\n{"kind": "eval", "step": 3}\n')
    (runs / "tiny" / "checkpoints" / "best.json").write_text("{}")
    at = page("runs")
    assert any("3 damaged line(s)" in w.value for w in at.warning)
    assert list(at.dataframe[0].value["steps"]) == [20] and len(at.get("plotly_chart")) == 2
    assert not page("generate").exception


def test_a_link_with_a_run_picks_it(runs, tiny_spec):
    start_run(tiny_spec(), name="second", root=runs, progress=False)
    assert page("generate", run="tiny").selectbox(key="gen-run").value == "tiny"
    assert page("generate", run="second").selectbox(key="gen-run").value == "second"
    assert page("runs", run="tiny").multiselect(key="runs-chosen").value == ["tiny"]


def test_a_damaged_checkpoint_is_named(runs):
    weights = Run(runs / "tiny").checkpoint("best") / "model.safetensors"
    weights.write_bytes(b"not a safetensors file")
    at = page("generate")
    at.button(key="gen-go").click().run()
    assert not at.exception
    assert any("model.safetensors is damaged" in e.value for e in at.error)


def test_a_run_without_checkpoints_is_not_offered(runs, tiny_spec):
    start_run(tiny_spec(max_steps=1, eval_interval=5), name="fresh", root=runs, progress=False)
    for folder in Run(runs / "fresh").checkpoints():
        shutil.rmtree(folder)
    at = page("generate")
    assert at.selectbox(key="gen-run").options == ["tiny"]


def test_train_page_follows_a_job_and_stops_it(runs, tiny_spec):
    job = jobs.start(tiny_spec(max_steps=100000, eval_interval=50), "live", runs)
    try:
        run = Run(runs / "live")
        for _ in range(600):  # until it logs its first steps
            if run.metrics_path.exists() and run.metrics().of_kind("train"):
                break
            jobs.wait(job, timeout=0.1)
        at = page("train")
        assert "live" in at.get("progress")[0].proto.text and "of 100000" in at.get("progress")[0].proto.text
        second = page("runs")  # meanwhile, the Runs page shows it as training
        assert "training" in list(second.dataframe[0].value["status"])
        at.button(key="train-stop").click().run()
        assert jobs.wait(job, timeout=60)
        assert run.status() == "stopped"
        after = page("train")
        assert any("Run **live** stopped at step" in i.value for i in after.info)  # the outcome
        assert after.selectbox(key="train-resume-run").value == "live"  # offered for resuming
    finally:
        jobs.stop(runs)
        jobs.wait(job, timeout=30)


def test_train_form_refuses_a_width_the_heads_do_not_divide(runs):
    at = page("train")
    at.radio(key="train-mode").set_value("own").run()
    at.number_input(key="train-heads").set_value(3).run()
    assert any("n_head" in e.value and "128" in e.value for e in at.error)
    assert at.button(key="train-start").disabled
    at.number_input(key="train-heads").set_value(4).run()
    assert not at.error and not at.button(key="train-start").disabled
    assert any("Predicted training memory" in c.value for c in at.caption)


def test_train_form_refuses_a_configuration_that_cannot_fit(runs):
    at = page("train")
    at.radio(key="train-mode").set_value("own").run()
    for key, value in (("train-block", 1024), ("train-width", 1024), ("train-layers", 12), ("train-batch", 512)):
        at.number_input(key=key).set_value(value).run()
    refusal = [e.value for e in at.error if "cannot train here" in e.value]
    assert refusal and "GiB to train" in refusal[0] and "lower the batch size" in refusal[0]
    assert at.button(key="train-start").disabled


@pytest.mark.parametrize("content, said", [
    (b"", "mine.txt is empty"),
    (b" \n\t\r\n  \n", "mine.txt is empty (or only whitespace)"),
    ("Ære være Gud".encode("latin-1"), "mine.txt is not UTF-8 text"),
    (b"a" * (jobs.MAX_UPLOAD_BYTES + 1), "the limit here is 10 MB"),
])
def test_train_form_checks_an_uploaded_text_before_the_model(tmp_path, monkeypatch, content, said):
    monkeypatch.setenv("LESSON_RUNS_DIR", str(tmp_path / "runs"))
    started = []
    monkeypatch.setattr(jobs, "start", lambda spec, name, root, **kw: started.append(spec))
    at = page("train")
    at.radio(key="train-source").set_value("upload").run()
    at.file_uploader(key="train-upload").set_value(("mine.txt", content, "text/plain")).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and said in errors[0], errors  # what is wrong with the file, and nothing else
    assert not any("Predicted training memory" in c.value for c in at.caption)  # no model or memory check
    assert at.button(key="train-start").disabled and not started
    at.file_uploader(key="train-upload").set_value(("mine.txt", "Ære være Gud.\n".encode() * 50, "text/plain")).run()
    assert not at.exception and not at.error and not at.button(key="train-start").disabled
    assert any("Predicted training memory" in c.value for c in at.caption)


# --------------------------------------------------------------------- damaged run files on every page

def edit_json(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def each_meta(run: Path, change) -> None:
    for checkpoint in Run(run).checkpoints():
        edit_json(checkpoint / "meta.json", change)


def without(key):
    return lambda d: {k: v for k, v in d.items() if k != key}


def folder_for(path: Path) -> None:
    path.unlink()
    path.mkdir()


# a damaged copy of 'tiny' each: its name -> (the file a page that reads it names, the damage)
DAMAGES = {
    "config-without-train": ("config.json", lambda run: edit_json(run / "config.json", without("train"))),
    "config-data-a-string": ("config.json", lambda run: edit_json(run / "config.json",
                                                                  lambda c: {**c, "data": "shakespeare"})),
    "config-a-list": ("config.json", lambda run: edit_json(run / "config.json", lambda c: [c])),
    "meta-without-model": ("meta.json", lambda run: each_meta(run, without("model"))),
    "meta-a-list": ("meta.json", lambda run: each_meta(run, lambda m: [m])),
    "tokenizer-a-list": ("tokenizer.json", lambda run: edit_json(run / "tokenizer.json", lambda t: [t])),
    "tokenizer-without-chars": ("tokenizer.json", lambda run: edit_json(run / "tokenizer.json", without("chars"))),
    "metrics-a-folder": ("metrics.jsonl", lambda run: folder_for(run / "metrics.jsonl")),
}


@pytest.fixture
def damaged_runs(runs):
    """Beside the healthy 'tiny' (stopped: it can be resumed), one damaged copy of it for each of DAMAGES."""
    Run(runs / "tiny").log({"kind": "event", "event": "resume", "step": 20})  # as if killed: stopped
    for name, (_, damage) in DAMAGES.items():
        shutil.copytree(runs / "tiny", runs / name)
        damage(runs / name)
    return runs


def naming(messages, name: str, file: str) -> list[str]:
    """The messages that name run `name` and its file `file` (by its path in the run folder)."""
    return [m.value for m in messages if f"**{name}**" in m.value and f"/{name}/" in m.value and f"/{file}" in m.value]


def test_the_runs_page_lists_damaged_runs_with_their_problem(damaged_runs):
    at = page("runs")
    table = at.dataframe[0].value.set_index("name")
    assert set(table.index) == {"tiny", *DAMAGES}  # every run stays in the table
    for name, (file, _) in DAMAGES.items():
        if file != "tokenizer.json":  # what this page reads: config, log and the newest checkpoint's meta
            assert naming(at.warning, name, file), name
            assert f"/{name}/" in table.loc[name, "problem"] and file in table.loc[name, "problem"], name
        else:
            assert pd.isna(table.loc[name, "problem"]) and table.loc[name, "steps"] == 20, name
    assert pd.isna(table.loc["tiny", "problem"]) and table.loc["tiny", "steps"] == 20
    assert table.loc["tiny", "best_val_loss"] > 0
    at.multiselect(key="runs-chosen").set_value(["tiny", *DAMAGES]).run()  # the curves of every one
    assert not at.exception and len(at.get("plotly_chart")) == 2


def test_the_generate_page_names_a_damaged_run_and_the_others_still_generate(damaged_runs):
    at = page("generate", run="tiny")
    assert set(at.selectbox(key="gen-run").options) == {"tiny", *DAMAGES}
    for name, (file, _) in DAMAGES.items():
        at.selectbox(key="gen-run").set_value(name).run()
        assert not at.exception, (name, [e.message for e in at.exception])
        if file in ("meta.json", "tokenizer.json"):  # its model cannot be loaded: said when it is picked
            assert naming(at.error, name, file), (name, [e.value for e in at.error])
            assert at.button(key="gen-go").disabled, name
        elif file == "config.json":  # read for its prompt; its checkpoints still generate
            assert naming(at.warning, name, file) and not at.error, name
            assert not at.button(key="gen-go").disabled, name
        else:
            assert not at.error and not at.button(key="gen-go").disabled, name
    at.selectbox(key="gen-run").set_value("config-a-list").run()
    at.slider(key="gen-max").set_value(20)
    at.button(key="gen-go").click().run()
    assert not at.exception and not at.error and any("20 tokens" in c.value for c in at.caption)
    at.selectbox(key="gen-run").set_value("tiny").run()
    assert not at.exception and not at.error and not at.warning
    at.button(key="gen-go").click().run()
    assert not at.exception and not at.error and any("20 tokens" in c.value for c in at.caption)


def test_the_generate_page_survives_a_val_loss_that_is_not_a_number(runs):
    for checkpoint in Run(runs / "tiny").checkpoints():
        edit_json(checkpoint / "meta.json", lambda m: {**m, "val_loss": "low"})
    at = page("generate")
    at.slider(key="gen-max").set_value(10)
    at.button(key="gen-go").click().run()
    assert not at.exception and not at.error and any("10 tokens" in c.value for c in at.caption)


def test_the_train_page_offers_no_damaged_run_for_resuming(damaged_runs):
    at = page("train")
    offered = at.selectbox(key="train-resume-run").options
    assert "tiny" in offered
    warnings = [*at.warning, *at.error]
    for name, (file, _) in DAMAGES.items():
        if file == "meta.json":  # resuming skips damaged checkpoints: offered, starting from an earlier one
            assert name in offered, name
            at.selectbox(key="train-resume-run").set_value(name).run()
            assert not at.exception, name
            assert naming(at.warning, name, file), (name, [w.value for w in at.warning])
            assert any("from step 0" in c.value for c in at.caption), name
            assert not at.button(key="train-resume").disabled
        else:  # its config, tokenizer or log cannot be read: not offered, and why
            assert name not in offered, name
            assert naming(warnings, name, file), (name, [w.value for w in warnings])
    at.selectbox(key="train-resume-run").set_value("tiny").run()
    assert not at.exception and any("continues from step 20" in c.value for c in at.caption)
    assert at.number_input(key="train-resume-steps").value == 20


def test_the_outcome_of_the_latest_run_is_shown_with_its_links(runs):
    at = page("train")
    finished = [s.value for s in at.success]
    assert finished and "Run **tiny** finished at step 20" in finished[0] and "best val loss" in finished[0]
    links = {link.proto.label: link.proto.page for link in at.get("page_link")}
    assert "Generate text from it" in links and "See its loss curves" in links
    assert "run=tiny" in str([link.proto for link in at.get("page_link")])


def test_the_dashboard_listens_on_this_machine_only_and_hides_deploy():
    import tomllib

    # the course folder's settings (read when Streamlit starts there), and the same beside app/main.py
    # (read wherever `streamlit run .../app/main.py` starts, `cd app && streamlit run main.py` included)
    course, beside_main = (tomllib.loads((folder / ".streamlit" / "config.toml").read_text())
                           for folder in (ROOT, ROOT / "app"))
    assert course == beside_main
    config = beside_main
    assert config["server"]["address"] == "localhost"
    assert config["server"]["maxUploadSize"] * 2**20 == jobs.MAX_UPLOAD_BYTES
    assert config["client"]["toolbarMode"] in ("viewer", "minimal")


@pytest.mark.parametrize("address", [None, ""])
def test_without_an_address_the_dashboard_refuses_to_serve_its_pages(tmp_path, monkeypatch, address):
    # Streamlit's default (no flag, no config.toml, no STREAMLIT_SERVER_ADDRESS) listens on every interface
    monkeypatch.setenv("LESSON_RUNS_DIR", str(tmp_path / "runs"))
    set_address(address)
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    assert not at.exception and not at.title and not at.dataframe  # no page at all
    refusal = [e.value for e in at.error]
    assert len(refusal) == 1 and "this machine only" in refusal[0]
    assert "make app" in refusal[0] and "--server.address localhost" in refusal[0] and "0.0.0.0" in refusal[0]
    at.switch_page("views/train.py").run()  # a page's own address: refused as well
    assert not at.exception and not at.title and not at.button and len(at.error) == 1
    for chosen in ("localhost", "0.0.0.0"):  # given, on purpose: the pages are served
        set_address(chosen)
        at = AppTest.from_file(MAIN, default_timeout=60).run()
        assert not at.exception and not at.error and at.title[0].value == "Runs and loss curves"


def listening_addresses(pid: int) -> set[str]:
    import psutil

    return {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


@pytest.mark.parametrize("folder", ["app", "elsewhere"])
def test_started_from_another_folder_it_listens_on_this_machine_only(tmp_path, folder):
    """`cd app && streamlit run main.py`, or `streamlit run .../app/main.py` typed in a folder with no .streamlit/,
    with a home without one: it listens on loopback only (app/.streamlit/config.toml), not on every interface."""
    pytest.importorskip("psutil")
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env.update(HOME=str(tmp_path), LESSON_RUNS_DIR=str(tmp_path / "runs"))
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", MAIN, "--server.port", str(port), "--server.headless", "true",
         "--server.fileWatcherType", "none"],
        env=env, cwd=ROOT / "app" if folder == "app" else tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(240):  # until it answers (at most a minute)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                    if answer.read().decode().strip() == "ok":
                        break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.25)
        assert server.poll() is None, server.stdout.read()[-3000:]
        addresses = listening_addresses(server.pid)
        assert addresses and addresses <= {"127.0.0.1", "::1"}, addresses
    finally:
        server.kill()
        server.wait(timeout=30)


def test_train_form_can_ask_for_tensorboard_event_files(runs, monkeypatch):
    started = []
    monkeypatch.setattr(jobs, "start", lambda spec, name, root, **kw: started.append(spec))
    at = page("train")
    at.checkbox(key="train-tensorboard").check().run()
    at.button(key="train-start").click().run()
    assert started and started[0]["train"]["tensorboard"] is True
    at.checkbox(key="train-tensorboard").uncheck().run()
    at.button(key="train-start").click().run()
    assert len(started) == 2 and not started[1]["train"].get("tensorboard")


# ----------------------------------------------------------------------------- the dashboard in Chinese

ZH_TEXT = ("春夜\n好雨知时节，当春乃发生。\n随风潜入夜，润物细无声。\n\n"
           "静夜思\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n\n") * 30
CJK = re.compile("[\u4e00-\u9fff]")


def app_module(name: str):
    """A module of app/ (i18n, common), imported as the pages import it."""
    if str(ROOT / "app") not in sys.path:
        sys.path.insert(0, str(ROOT / "app"))
    return importlib.import_module(name)


@pytest.fixture
def tang_run(runs, tmp_path, tiny_spec):
    """Beside 'tiny', a tiny run 'tang' trained on Chinese verse, its config naming the Tang corpus."""
    poems = tmp_path / "poems.txt"
    poems.write_text(ZH_TEXT, encoding="utf-8")
    start_run({**tiny_spec(max_steps=20, eval_interval=10), "data": str(poems)}, name="tang", root=runs,
              progress=False)
    run = Run(runs / "tang")
    config = run.read_config()
    run.write_config({**config, "data": {**config["data"], "source": "tang"}})
    return run


def fields(text: str) -> list[tuple[str, str]]:
    return sorted((name, spec) for _, name, spec, _ in string.Formatter().parse(text) if name is not None)


def test_every_string_is_in_both_languages_with_the_same_fields():
    from lesson_lib.plots import TITLES, X_AXES
    from lesson_lib.presets import PRESETS
    from lesson_lib.runs import STATUSES

    i18n = app_module("i18n")
    en, zh = i18n.STRINGS["en"], i18n.STRINGS["zh"]
    assert set(i18n.STRINGS) == set(i18n.LANGUAGES) == {"en", "zh"}
    assert sorted(en) == sorted(zh), set(en) ^ set(zh)
    assert {key: fields(en[key]) for key in en} == {key: fields(zh[key]) for key in en}
    assert [key for key, text in zh.items() if not CJK.search(text)] == []  # nothing left in English
    # the lists the table follows: chart words, run states, x axes; presets may lack a translation
    assert {f"chart.{key}" for key in TITLES} <= set(en) and {f"status.{s}" for s in STATUSES} <= set(en)
    assert {f"runs.x.{axis}" for axis in X_AXES} <= set(en)
    assert set(i18n.PRESET_DESCRIPTIONS_ZH) <= set(PRESETS)
    assert all(en[f"chart.{key}"] == title for key, title in TITLES.items())  # English from plots.py itself


ALLOWED_WORDS = {  # written the same in the Chinese text: names, units, file names, flags, commands
    "Language", "English", "GPT", "nanoGPT", "Shakespeare", "CPU", "GPU", "CUDA", "LSTM", "MFU", "FLOP", "MiB",
    "GiB", "MB", "CSV", "UTF", "txt", "metrics", "jsonl", "TensorBoard", "tensorboard", "logdir", "Ctrl", "Top",
    "nats", "init", "vectors", "best", "latest"}


def words_on(at: AppTest) -> list[str]:
    """Every text the app itself writes on the page: titles, labels, help, options, messages, tabs, links,
    table headers and states, chart titles and legends; not the prompt, the generated text or a log."""
    texts = [info["page_name"] for info in at._registered_pages.values()]  # the navigation

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None and "gen-output" in str(getattr(proto, "id", "")):
            return  # the prompt and the generated text
        if type(node).__name__ == "Dataframe":
            texts.extend(column["label"] for column in json.loads(proto.columns).values() if "label" in column)
            texts.extend(str(s) for s in node.value["status"])
        elif getattr(node, "type", "") == "plotly_chart":
            spec = json.loads(proto.spec)
            layout = spec["layout"]
            texts.extend(trace.get("name", "") for trace in spec["data"])
            texts.extend(a.get("text", "") for a in layout.get("annotations", []))
            for key, value in layout.items():
                title = value if key == "title" else value.get("title") if key.startswith(
                    ("xaxis", "yaxis", "legend")) else None
                texts.append(title.get("text", "") if isinstance(title, dict) else str(title or ""))
        elif proto is not None and type(node).__name__ not in ("Html", "Code") and not str(
                getattr(proto, "id", "")).endswith("-lang"):
            message = MessageToDict(proto)
            for key in ("label", "help", "body", "text", "placeholder"):
                texts.append(str(message.get(key, "")))
            texts.extend(message.get("options", []))
        for child in (node.children.values() if isinstance(getattr(node, "children", None), dict) else []):
            walk(child)

    walk(at._tree)
    return texts


def english_words(at: AppTest, known: list[str]) -> set[str]:
    """Words in English on the page, once the names it shows as they are (`known`) are taken out."""
    from lesson_lib.models import FAMILIES
    from lesson_lib.presets import PRESETS
    from lesson_lib.tokenizers import TOKENIZER_KINDS

    names = sorted([*known, *PRESETS], key=len, reverse=True)
    found = set()
    for text in words_on(at):
        for name in names:
            text = text.replace(name, " ")
        found |= set(re.findall(r"[A-Za-z]{2,}", text))
    return found - ALLOWED_WORDS - set(FAMILIES) - set(TOKENIZER_KINDS)


def test_no_page_shows_english_when_chinese_is_chosen(runs, tang_run, monkeypatch, tmp_path):
    from lesson_lib.runs import read_metrics

    with open(runs / "tiny" / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"kind": "train", "step": 21, "train_lo\n')  # a damaged line: the Runs page warns
    known = ["tiny", "tang", str(runs), str(tmp_path / "empty"), *read_metrics(runs / "tiny" / "metrics.jsonl").warnings,
             *(p.name for name in ("tiny", "tang") for p in Run(runs / name).checkpoints())]
    pages = {}
    pages["runs"] = page("runs", lang="zh")
    assert pages["runs"].warning and len(pages["runs"].get("plotly_chart")) == 2
    pages["generate"] = page("generate", lang="zh")
    pages["generate"].slider(key="gen-max").set_value(30)
    pages["generate"].button(key="gen-go").click().run()
    assert pages["generate"].get("html") and pages["generate"].get("plotly_chart")
    pages["train"] = page("train", lang="zh")  # tang finished: its outcome, the form with a preset
    assert pages["train"].success and pages["train"].get("page_link")
    pages["own settings"] = page("train", lang="zh")
    pages["own settings"].radio(key="train-mode").set_value("own").run()
    pages["own settings"].radio(key="train-source").set_value("upload").run()
    pages["own settings"].button(key="train-start").click().run()  # no file chosen: an error
    assert pages["own settings"].error
    Run(runs / "tang").log({"kind": "event", "event": "resume", "step": 20})  # as if killed: stopped
    pages["stopped"] = page("train", lang="zh")
    assert pages["stopped"].info and pages["stopped"].selectbox(key="train-resume-run").value == "tang"
    monkeypatch.setattr(jobs, "current_job", lambda root=None: jobs.Job(pid=1, run="tiny", started=time.time()))
    monkeypatch.setattr(jobs, "stop", lambda root=None: True)
    pages["training"] = page("train", lang="zh")  # following a job, then asking it to stop
    pages["training"].button(key="train-stop").click().run()
    assert pages["training"].get("progress") and pages["training"].toast
    pages["training"] = [pages["training"], *(page(name, lang="zh") for name in ("runs", "generate"))]
    monkeypatch.undo()
    monkeypatch.setenv("LESSON_RUNS_DIR", str(tmp_path / "empty"))
    pages["empty"] = [page(name, lang="zh") for name in ("runs", "generate", "train")]
    for state, shown in pages.items():
        for at in shown if isinstance(shown, list) else [shown]:
            assert not at.exception, [e.message for e in at.exception]
            assert english_words(at, known) == set(), state
            assert any(CJK.search(text) for text in words_on(at))
            assert not at.toast or all(CJK.search(toast.value) for toast in at.toast)


def test_a_link_opens_chinese_and_the_switch_is_kept_for_the_session(runs):
    i18n = app_module("i18n")
    zh = i18n.STRINGS["zh"]
    at = page("runs", lang="zh")
    assert at.title[0].value == zh["runs.title"] and at.query_params["lang"] == "zh"
    assert list(at.dataframe[0].value["status"]) == [zh["status.finished"]]
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["layout"]["xaxis"]["title"]["text"] == zh["chart.step"]
    assert [trace["name"] for trace in chart["data"]][-2:] == [f"tiny {zh['chart.train']}", f"tiny {zh['chart.val']}"]
    at.slider(key="runs-smoothing").set_value(0.9).run()
    at.radio(key="lang").set_value("en").run()  # the switch: every word changes, the settings stay
    assert at.title[0].value == "Runs and loss curves" and "lang" not in at.query_params
    assert at.slider(key="runs-smoothing").value == 0.9 and at.slider(key="runs-smoothing").label == \
        "Smoothing of the training loss"
    at.radio(key="lang").set_value("zh").run()
    at.switch_page("views/generate.py").run()  # another page of the same session: still Chinese
    assert at.title[0].value == zh["generate.title"] and at.button(key="gen-go").label == zh["gen.go"]


def test_the_default_prompt_follows_the_corpus(runs, tang_run):
    from lesson_lib.data import CORPORA, DEFAULT_PROMPTS
    from lesson_lib.experiment import default_prompt

    assert set(DEFAULT_PROMPTS) == set(CORPORA)  # every corpus has its prompt, and no other name
    assert default_prompt(tang_run) == "春夜\n"
    assert default_prompt(Run(runs / "tiny")) == "ROMEO:"  # a text file of its own: Shakespeare's
    (runs / "tiny" / "config.json").write_text("{not json")
    assert default_prompt(Run(runs / "tiny")) == "ROMEO:"
    at = page("generate", run="tiny")
    assert at.text_area(key="gen-prompt").value == "ROMEO:"
    at.selectbox(key="gen-run").set_value("tang").run()  # another run: its corpus's prompt
    assert at.text_area(key="gen-prompt").value == "春夜\n"
    at.text_area(key="gen-prompt").set_value("明月").run()  # a prompt the learner typed stays
    at.selectbox(key="gen-run").set_value("tiny").run()
    assert at.text_area(key="gen-prompt").value == "明月"


def test_generate_from_a_run_on_chinese_text_shows_its_characters(tang_run):
    at = page("generate", run="tang", lang="zh")
    assert at.text_area(key="gen-prompt").value == "春夜\n"
    at.slider(key="gen-max").set_value(40)
    at.button(key="gen-go").click().run()
    assert not at.exception and not at.error
    assert at.markdown[0].value == "**春夜**"  # the prompt in bold, its line break no stray asterisks
    assert len(CJK.findall(at.markdown[1].value)) >= 10  # the generated verse
    view = at.get("html")[0].proto.body
    spans = [html.unescape(s) for s in re.findall(r"<span [^>]*>(.*?)</span>", view, flags=re.S)]
    assert len(spans) == 40 and all(len(s) == 1 and s in ZH_TEXT for s in spans)  # one character a token
    assert len(CJK.findall("".join(spans))) >= 10 and 'lang="zh-Hans"' in view
    at.slider(key="gen-position").set_value(5).run()
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    labels = chart["data"][0]["y"]
    assert any(CJK.search(label) for label in labels) and len(set(labels)) == len(labels)
    assert chart["layout"]["yaxis"]["type"] == "category" and "第 5 个位置" in chart["layout"]["title"]["text"]


def test_the_text_choice_follows_the_preset_and_offers_the_tang_poems(runs, monkeypatch):
    started = []
    monkeypatch.setattr(jobs, "start", lambda spec, name, root, **kw: started.append(spec))
    at = page("train")
    assert at.radio(key="train-source").value == "shakespeare"
    at.selectbox(key="train-preset").set_value("tang").run()
    assert at.radio(key="train-source").value == "tang"  # the preset's corpus
    assert any("Predicted training memory" in c.value for c in at.caption)
    at.button(key="train-start").click().run()
    assert started and started[-1]["data"] == "tang" and started[-1]["preset"] == "tang"
    at.radio(key="train-source").set_value("shakespeare").run()  # the learner may change it again
    at.button(key="train-start").click().run()
    assert started[-1]["data"] == "shakespeare"
