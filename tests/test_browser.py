"""The dashboard in a real browser: `streamlit run` headless, Debian's Chromium driven by Playwright.

`make test` installs Chromium (Debian's package, as root) and Playwright (PyPI). In CI a missing
browser is a failure; elsewhere (no root, no apt) the test says why and skips.
"""
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import TINY_GPT, TINY_TRAIN
from lesson_lib.experiment import start_run

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LESSON_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "_artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
# characters of generated text on the Generate page (0 before any)
GENERATED_CHARS_JS = """() => { const m = document.querySelectorAll('.st-key-gen-output [data-testid="stMarkdownContainer"]');
                                return m.length > 1 ? m[1].innerText.trim().length : 0 }"""


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
            page.get_by_text("Run starter finished at step 1500").wait_for(timeout=600_000)
            assert "best val loss" in page.get_by_text("Run starter finished at step 1500").inner_text()
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


def test_generate_in_a_real_browser(dashboard):
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
        except Exception as error:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            raise AssertionError(f"{type(error).__name__}: {error}\nscreenshot: {ARTIFACTS / 'failure.png'}") from error
        finally:
            browser.close()
