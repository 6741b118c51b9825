"""The dashboard in a real browser: `streamlit run` headless, Debian's Chromium driven by Playwright.

`make test` installs Chromium (Debian's package, as root) and Playwright (PyPI). In CI a missing
browser is a failure; elsewhere (no root, no apt) the test says why and skips.
"""
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import TINY_GPT, TINY_TRAIN
from lesson_lib.experiment import start_run
from lesson_lib.presets import PRESETS

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LESSON_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "_artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
# characters of generated text on the Generate page (0 before any)
GENERATED_CHARS_JS = """() => { const m = document.querySelectorAll('.st-key-gen-output [data-testid="stMarkdownContainer"]');
                                return m.length > 1 ? m[1].innerText.trim().length : 0 }"""
# CJK ideographs (with the extensions beyond the BMP, which the Tang poems use), CJK punctuation and
# full-width forms; \p{Script=Han} would leave out the punctuation
CJK_CLASS = r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u{20000}-\u{3ffff}]"
CJK = re.compile("[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff]")  # the same, for Python
# the generated text's characters (no white space) and how many of them are CJK
GENERATED_CJK_JS = f"""() => {{ const m = document.querySelectorAll('.st-key-gen-output [data-testid="stMarkdownContainer"]');
                               const chars = m.length > 1 ? Array.from(m[1].innerText.replace(/\\s/g, '')) : [];
                               return {{chars: chars.length, cjk: chars.filter(c => /^{CJK_CLASS}$/u.test(c)).length}} }}"""


def browser_or_skip():
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (Debian's chromium package)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if missing:
        message = f"the browser test needs {' and '.join(missing)}; `make test` installs them where it can (as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dashboard(runs: Path, port: int) -> subprocess.Popen:
    """`streamlit run app/main.py` on `port`, serving `runs`; returns once /_stcore/health answers."""
    env = {**os.environ, "LESSON_RUNS_DIR": str(runs)}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)  # reads .streamlit/
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                if answer.read().decode().strip() == "ok":
                    return server
        except OSError:
            time.sleep(0.25)
        if server.poll() is not None:
            break
    server.kill()
    raise RuntimeError(f"streamlit did not come up on port {port}:\n{server.stdout.read()[-3000:]}")


@contextlib.contextmanager
def running_dashboard(runs: Path):
    """The dashboard serving `runs` on a free port, for the length of a `with` block; yields its URL."""
    port = free_port()
    server = start_dashboard(runs, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        from lesson_lib import jobs

        jobs.stop(runs)  # a training job the page started outlives the server: a failed test leaves none running


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@pytest.fixture
def dashboard(tmp_path, text_file):
    browser_or_skip()
    runs = tmp_path / "runs"
    start_run({"data": str(text_file), "tokenizer": "char", "model": dict(TINY_GPT),
               "train": {**TINY_TRAIN, "max_steps": 20, "eval_interval": 10}}, name="tiny", root=runs, progress=False)
    with running_dashboard(runs) as url:
        yield url


def test_a_newcomer_trains_the_starter_model_and_generates(tmp_path):
    """The first visit: an empty runs folder, one button, the run followed to its end, then text."""
    from playwright.sync_api import sync_playwright

    browser_or_skip()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_dashboard(tmp_path / "runs") as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("button", name="Train the starter model").click(timeout=60_000)
            page.get_by_text("starter: step").first.wait_for(timeout=120_000)  # the Train page follows it
            page.screenshot(path=str(ARTIFACTS / "journey-training.png"), full_page=True)
            # about a minute on 2 cores; much longer only if something is wrong
            finished = f"Run starter finished at step {PRESETS['starter']['train']['max_steps']}"
            page.get_by_text(finished).wait_for(timeout=600_000)
            assert "best val loss" in page.get_by_text(finished).inner_text()
            page.screenshot(path=str(ARTIFACTS / "journey-finished.png"), full_page=True)
            page.get_by_role("link", name="Generate text from it").click()
            page.get_by_role("button", name="Generate").click(timeout=60_000)
            page.wait_for_function(f"() => ({GENERATED_CHARS_JS})() >= 50", timeout=60_000, polling=100)
            assert page.get_by_role("button", name="Deploy").count() == 0  # .streamlit/config.toml: viewer mode
            page.screenshot(path=str(ARTIFACTS / "journey-generated.png"), full_page=True)
        except Exception as error:
            page.screenshot(path=str(ARTIFACTS / "journey-failure.png"), full_page=True)
            raise AssertionError(f"{type(error).__name__}: {error}\nscreenshot: {ARTIFACTS / 'journey-failure.png'}") \
                from error
        finally:
            browser.close()


def test_generate_in_a_real_browser(dashboard, tang_corpus_run):
    """Generate in English, the Runs page, the switch to 中文, then generate in Chinese from the tiny
    Shakespeare run and from a run on the Tang poems ('tiny-tang', in the same runs folder)."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{dashboard}/generate", wait_until="domcontentloaded")
            page.get_by_role("button", name="Generate").click(timeout=30_000)
            page.get_by_text("Why these tokens?").wait_for(timeout=30_000)  # generation finished
            # the text is painted a moment later on a busy machine: wait for it, up to 30 s
            page.wait_for_function(f"() => ({GENERATED_CHARS_JS})() >= 50", timeout=30_000, polling=50)
            output = page.locator(".st-key-gen-output [data-testid='stMarkdownContainer']")
            prompt, generated = output.nth(0).inner_text(), output.nth(1).inner_text()
            assert prompt.strip() == "ROMEO:"
            assert len(generated.strip()) >= 50  # 300 new characters, most of them visible
            page.screenshot(path=str(ARTIFACTS / "generate.png"), full_page=True)
            page.goto(f"{dashboard}/", wait_until="domcontentloaded")
            page.get_by_text("Runs and loss curves").first.wait_for(timeout=30_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "runs.png"), full_page=True)
            # the sidebar's switch: the same page in Chinese, a choice kept and shown in its new words,
            # and the language kept on the next page
            page.get_by_role("radio", name="tokens seen").check(force=True)
            page.get_by_test_id("stSidebar").get_by_text("中文", exact=True).click()
            page.get_by_role("heading", name="运行与损失曲线").wait_for(timeout=30_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
            expect(page.get_by_role("radio", name="已见词元数")).to_be_checked(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "runs-zh.png"), full_page=True)  # Chinese glyphs: fonts-noto-cjk
            page.get_by_test_id("stSidebarNav").get_by_text("生成", exact=True).click()
            page.get_by_role("button", name="生成", exact=True).click(timeout=30_000)
            page.get_by_text("为什么是这些词元？").wait_for(timeout=30_000)
            assert "lang=zh" in page.url
            page.screenshot(path=str(ARTIFACTS / "generate-zh.png"), full_page=True)
            generate_from_the_tang_run_in_chinese(page, expect)
        except Exception as error:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            raise AssertionError(f"{type(error).__name__}: {error}\nscreenshot: {ARTIFACTS / 'failure.png'}") from error
        finally:
            browser.close()


def generate_from_the_tang_run_in_chinese(page, expect):
    """On the Chinese Generate page, after a generation from the Shakespeare run: pick the run on the
    Tang poems, its corpus's prompt, Chinese text, its tokens and chart, in the column's width."""
    page.locator(".st-key-gen-run").click()
    page.get_by_role("option", name="tiny-tang", exact=True).click(timeout=30_000)
    expect(page.get_by_label("提示词")).to_have_value("春夜\n", timeout=30_000)  # DEFAULT_PROMPTS["tang"]
    page.get_by_role("button", name="生成", exact=True).click(timeout=30_000)
    # the Shakespeare text shown until then has no CJK characters: this waits for the new text
    page.wait_for_function(f"() => ({GENERATED_CJK_JS})().cjk >= 30", timeout=60_000, polling=100)
    # the token view is drawn once generation ends, marked as Chinese (and the chart after it)
    view = page.locator("[data-testid='stHtml'] div[lang='zh-Hans']")
    view.wait_for(timeout=60_000)
    labels = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot .ytick text")
    expect(labels.first).to_be_visible(timeout=60_000)
    output = page.locator(".st-key-gen-output [data-testid='stMarkdownContainer']")
    assert output.nth(0).inner_text().strip() == "春夜"  # the prompt, in bold
    counted = page.evaluate(GENERATED_CJK_JS)
    # 300 characters drawn from a barely trained model over the corpus's 9,269 characters, nearly all
    # CJK; the others are the corpus's own (□, [, digits)
    assert counted["cjk"] >= 30 and counted["cjk"] >= 0.8 * counted["chars"], counted
    assert page.get_by_text("tiny-tang · ").count() == 1  # the caption: the text came from the Tang run
    # the per-token view holds the same Chinese text, one span a token (a character)
    spans = view.locator("span")
    assert spans.count() >= 250, spans.count()
    assert len(CJK.findall(view.inner_text())) >= 30
    # the next-token chart: its bars are labelled with Chinese characters, its title names the pick
    # (while Streamlit redraws, the Shakespeare run's chart can still be in the page beside the new one:
    # wait for one chart of at most ten bars, as sampling.stream_tokens gives, most of them Chinese)
    one_chart_js = f"""() => {{ const charts = document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot");
                                if (charts.length !== 1) return false;
                                const texts = Array.from(charts[0].querySelectorAll('.ytick text'), e => e.textContent);
                                const cjk = texts.filter(t => /{CJK_CLASS}/u.test(t)).length;
                                return texts.length >= 5 && texts.length <= 10 && cjk >= texts.length / 2 }}"""
    try:
        page.wait_for_function(one_chart_js, timeout=30_000, polling=100)
    except Exception as error:
        raise AssertionError(f"the chart's labels: {labels.all_text_contents()}") from error  # SVG text: no innerText
    expect(page.locator("[data-testid='stPlotlyChart'] .gtitle")).to_contain_text("第 1 个位置", timeout=30_000)
    # wide glyphs wrap inside the output column: neither the token view nor the chart is wider than
    # its column, nothing overflows its box, and the page does not scroll sideways
    boxes = page.evaluate("""() => {
        const view = document.querySelector("[data-testid='stHtml'] div[lang='zh-Hans']");
        const chart = document.querySelector("[data-testid='stPlotlyChart'] .js-plotly-plot");
        const column = view.closest("[data-testid='stColumn']");
        const main = document.querySelector("[data-testid='stMain']");
        const box = e => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right, height: r.height} };
        return {view: box(view), chart: box(chart), column: box(column), viewport: window.innerWidth,
                viewOverflow: view.scrollWidth - view.clientWidth, lineHeight: parseFloat(getComputedStyle(view).lineHeight),
                pageOverflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
                mainOverflow: main.scrollWidth - main.clientWidth} }""")
    for name in ("view", "chart"):
        assert boxes["column"]["left"] - 1 <= boxes[name]["left"], boxes
        assert boxes[name]["right"] <= boxes["column"]["right"] + 1 <= boxes["viewport"] + 1, boxes
    assert boxes["viewOverflow"] <= 0 and boxes["pageOverflow"] <= 0 and boxes["mainOverflow"] <= 0, boxes
    assert boxes["view"]["height"] >= 3 * boxes["lineHeight"], boxes  # it wrapped: 300 characters, many lines
    assert page.locator("[data-testid='stException']").count() == 0
    assert "lang=zh" in page.url
    # the page scrolls inside Streamlit's main area, not the document: a taller window shows the chart too
    page.set_viewport_size({"width": 1400, "height": 1800})
    expect(labels.first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "generate-tang-zh.png"), full_page=True)  # Chinese glyphs: fonts-noto-cjk
