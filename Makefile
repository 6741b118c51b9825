# Every target sets up what it needs: the virtual environment is made and filled on first use,
# and again only when requirements.txt or pyproject.toml change.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: app test lab install bench clean-venv

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# The course's main job. Until the dashboard lands: train the starter model on first use, then sample it.
app: $(STAMP)
	@if ! $(PY) -c "import sys; from lesson_lib.checkpoints import list_checkpoints; sys.exit(0 if list_checkpoints('runs/starter') else 1)"; then \
		echo "No starter model yet: training it (about two minutes on 2 CPU cores)."; \
		$(PY) -m lesson_lib train --preset starter --name starter; \
	fi
	$(PY) -m lesson_lib generate --run starter --prompt "ROMEO:" --max-new-tokens 400

test: $(STAMP)
	$(PY) -m pytest

lab: $(STAMP)
	$(PY) -m ipykernel install --prefix $(VENV) --name lesson-lib --display-name "lesson_lib (.venv)" > /dev/null
	$(PY) -m jupyter lab notebooks

bench: $(STAMP)
	$(PY) bench/train_throughput.py
	$(PY) bench/generate.py
	$(PY) bench/starter.py

clean-venv:
	rm -rf $(VENV)
