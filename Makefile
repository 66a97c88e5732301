# Set-up is part of every target: a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PLAYER := node_modules/hls.js/dist/hls.min.js

.PHONY: setup demo test lint bench clean

setup: $(STAMP) $(PLAYER)

$(STAMP): pyproject.toml requirements-ci.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-ci.txt -e '.[test,piper,mos,dia,wav2lip,workers,postgres]'
	touch $(STAMP)

$(PLAYER): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(PLAYER)

# The service with a sample clip (ffmpeg's test sources) published and a sample story made
# (the offline voice over a portrait matplotlib ships); prints the URL and a token.
demo: setup
	$(PY) -m reelforge.web.demo --data sample/web --port $${PORT:-8000}

# Two xdist workers, each taking whole files (module fixtures built once), then the tests
# marked timing (a wall-clock bound on what they test: stopping within a second...) alone,
# so no other test shares the cores with them. Two workers left a core idle far less:
# the whole suite took 8 min 48 s against 17 min 21 s in one process here (with the later
# tests: 11 min 19 s, then 59 s for the timing tests).
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not timing"
	$(PY) -m pytest -q -m timing

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) bench/publish.py
	$(PY) bench/voice.py
	$(PY) bench/talk.py
	$(PY) bench/ladder.py
	$(PY) bench/images.py
	$(PY) bench/origin.py
	$(PY) bench/startup.py
	$(PY) bench/make.py
	$(PY) bench/service.py
	$(PY) bench/scoring.py
	$(PY) bench/workers.py
	$(PY) bench/lips.py

clean:
	rm -rf $(VENV) node_modules sample .pytest_cache .ruff_cache
