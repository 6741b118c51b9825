"""The dashboard's pages, driven headless with Streamlit's AppTest against a tiny run in a temp folder."""
import shutil
from pathlib import Path

import pytest
import torch
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
    at.radio(key="train-mode").set_value("my own settings").run()
    at.number_input(key="train-heads").set_value(3).run()
    assert any("n_head" in e.value and "128" in e.value for e in at.error)
    assert at.button(key="train-start").disabled
    at.number_input(key="train-heads").set_value(4).run()
    assert not at.error and not at.button(key="train-start").disabled
    assert any("Predicted training memory" in c.value for c in at.caption)


def test_train_form_refuses_a_configuration_that_cannot_fit(runs):
    at = page("train")
    at.radio(key="train-mode").set_value("my own settings").run()
    for key, value in (("train-block", 1024), ("train-width", 1024), ("train-layers", 12), ("train-batch", 512)):
        at.number_input(key=key).set_value(value).run()
    refusal = [e.value for e in at.error if "cannot train here" in e.value]
    assert refusal and "GiB to train" in refusal[0] and "lower the batch size" in refusal[0]
    assert at.button(key="train-start").disabled


def test_the_outcome_of_the_latest_run_is_shown_with_its_links(runs):
    at = page("train")
    finished = [s.value for s in at.success]
    assert finished and "Run **tiny** finished at step 20" in finished[0] and "best val loss" in finished[0]
    links = {link.proto.label: link.proto.page for link in at.get("page_link")}
    assert "Generate text from it" in links and "See its loss curves" in links
    assert "run=tiny" in str([link.proto for link in at.get("page_link")])


def test_the_dashboard_listens_on_this_machine_only_and_hides_deploy():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    assert config["server"]["maxUploadSize"] * 2**20 == jobs.MAX_UPLOAD_BYTES
    assert config["client"]["toolbarMode"] in ("viewer", "minimal")


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
