"""Dashboard speed, measured in a real browser (Debian's Chromium driven by Playwright).

    python bench/app.py [--runs-dir DIR]

1. Generate: time from pressing Generate to the first generated text in the page, and tokens/s while
   streaming (both timed by the browser's own clock), for the starter model (trained first into a temporary runs folder unless --runs-dir
   holds a run named "starter"). Targets (issue 3): first token under 0.3 s, at least 200 tokens/s.
2. Runs page with 20 runs of 5,000 logged steps each: the page script's time (AppTest, server side),
   and in the browser the time until its charts are drawn, opening the app cold and moving to
   the page from another one. Target: under 1 s.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_browser import CHROMIUM, GENERATED_CHARS_JS, launch, running_dashboard  # noqa: E402

from lesson_lib.runs import Run  # noqa: E402


def fake_runs(root: Path, runs: int = 20, steps: int = 5000) -> None:
    """`runs` run folders, each logging `steps` training records and an evaluation every 100 steps."""
    rng = np.random.default_rng(0)
    for r in range(runs):
        with Run.create(f"run-{r:02d}", root) as run:
            run.write_config({"name": run.name, "data": {"tokenizer": "char"}, "model": {"family": "gpt"},
                              "n_params": 806528, "train": {"max_steps": steps}})
            records = [{"kind": "event", "event": "start", "step": 0}]
            for step in range(1, steps + 1):
                loss = 1.5 + 2.7 * np.exp(-step / (800 + 40 * r)) + 0.05 * rng.standard_normal()
                records.append({"kind": "train", "step": step, "tokens": step * 768, "time": step * 0.04,
                                "train_loss": loss, "lr": 1e-3, "grad_norm": 1.0, "tokens_per_s": 2e4, "mfu": 0.6})
                if step % 100 == 0:
                    records.append({"kind": "eval", "step": step, "tokens": step * 768, "time": step * 0.04,
                                    "val_loss": loss + 0.05})
            records.append({"kind": "event", "event": "end", "status": "finished", "step": steps})
            run.log(*records)


# Installed in the page before pressing Generate: timestamps, taken in the browser itself, of the click,
# of the first generated text in the DOM, and of the last time that text grew.
WATCH_JS = """() => {
    const generated = GENERATED;
    window.__t = {};
    document.addEventListener("click", () => { window.__t.click = performance.now(); }, {capture: true, once: true});
    let seen = 0;
    new MutationObserver(() => {
        const n = generated();
        if (n > seen) {
            seen = n;
            const now = performance.now();
            if (window.__t.first === undefined) window.__t.first = now;
            window.__t.last = now;
        }
    }).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


def time_generate(url: str, presses: int = 3) -> list[tuple[float, float, str]]:
    """(seconds from the click to the first generated text in the page, tokens/s while it streams,
    the app's own caption) for each press, timed by the browser's clock."""
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        for _ in range(presses):
            page.goto(f"{url}/generate", wait_until="networkidle")
            button = page.get_by_role("button", name="Generate")
            button.wait_for()
            page.evaluate(WATCH_JS.replace("GENERATED", GENERATED_CHARS_JS))
            button.click()
            page.get_by_text("Why these tokens?").wait_for(timeout=60_000)
            page.wait_for_timeout(300)  # let the last streamed text land
            t = page.evaluate("() => window.__t")
            caption = page.get_by_text("tokens; first after").inner_text()
            tokens = int(caption.split()[0])
            first = (t["first"] - t["click"]) / 1000
            results.append((first, tokens / max((t["last"] - t["first"]) / 1000, 1e-9), caption))
        browser.close()
    return results


def time_runs_page(url: str, repeats: int = 3) -> tuple[float, list[float]]:
    """Seconds until the Runs page's two charts are drawn: once opening the app cold (its JavaScript
    loaded too), then `repeats` times arriving from the Train page through the sidebar, as a user does."""
    from playwright.sync_api import sync_playwright

    # both charts (loss; learning rate and tokens/s) drawn: each plot div holds its svg once drawn
    charts_drawn = "() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length >= 2"
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        start = time.perf_counter()
        page.goto(f"{url}/", wait_until="commit")
        page.wait_for_function(charts_drawn, timeout=60_000, polling=10)
        cold = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            page.get_by_role("link", name="Train").click()
            page.get_by_role("button", name="Start training").wait_for(timeout=60_000)
            start = time.perf_counter()
            page.get_by_role("link", name="Runs and loss curves").click()
            page.wait_for_function(charts_drawn, timeout=60_000, polling=10)
            times.append(time.perf_counter() - start)
        browser.close()
    return cold, times


def appside_runs_page(root: Path, repeats: int = 3) -> list[float]:
    import os

    from streamlit import config as streamlit_config
    from streamlit.testing.v1 import AppTest

    # the dashboard serves no page without an address (app/main.py); the bench may run from any folder
    streamlit_config.set_option("server.address", "localhost")

    os.environ["LESSON_RUNS_DIR"] = str(root)
    times = []
    for _ in range(repeats):
        at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception and len(at.get("plotly_chart")) == 2
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", type=Path, help="a runs folder holding a trained 'starter' run")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium) and playwright")
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs_dir or Path(tmp) / "runs"
        if not (runs / "starter").is_dir() or not Run(runs / "starter").checkpoints():
            print("training the starter model first (about a minute)...", flush=True)
            subprocess.run([sys.executable, "-m", "lesson_lib", "train", "--preset", "starter", "--name", "starter",
                            "--quiet"], env={**os.environ, "LESSON_RUNS_DIR": str(runs)}, check=True,
                           stdout=subprocess.DEVNULL)
        with running_dashboard(runs) as url:
            results = time_generate(url)
        print("Generate (starter model, 300 new tokens, temperature 0.8), in the browser:")
        for i, (first, rate, caption) in enumerate(results):
            kind = "first press: loads the model" if i == 0 else "model cached"
            print(f"  {kind:30s} first text in the page after {first:.3f} s; streaming {rate:,.0f} tokens/s "
                  f"(the app's own count: {caption})")
        warm = results[1:]
        print(f"  target: first token < 0.3 s and >= 200 tokens/s with the model cached -> "
              f"{'met' if all(f < 0.3 and r >= 200 for f, r, _ in warm) else 'NOT met'}")

        many = Path(tmp) / "many"
        fake_runs(many)
        server_side = appside_runs_page(many)
        with running_dashboard(many) as url:
            cold, browser_side = time_runs_page(url)
        print("Runs page, 20 runs x 5,000 logged steps:")
        print(f"  page script (AppTest): {', '.join(f'{t:.2f} s' for t in server_side)} (the first reads the logs)")
        print(f"  in the browser, opening the app cold until its charts are drawn: {cold:.2f} s")
        print(f"  in the browser, clicking 'Runs and loss curves' until its charts are drawn: "
              f"{', '.join(f'{t:.2f} s' for t in browser_side)}")
        print(f"  target: under 1 s -> {'met' if max(browser_side) < 1.0 else 'NOT met'} (navigating in the app)")


if __name__ == "__main__":
    main()
