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
	$(PY) -m pip install --quiet -r requirements-ci.txt -e '.[test,piper,mos,dia,wav2lip]'
	touch $(STAMP)

$(PLAYER): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(PLAYER)

# Publish a sample clip made from ffmpeg's test sources, then serve it and print the URL.
demo: setup
	$(VENV)/bin/reelforge sample sample/clip.mp4 --duration 12
	$(VENV)/bin/reelforge publish sample/clip.mp4 -o sample/published --force
	$(VENV)/bin/reelforge serve sample/published --port $${PORT:-8000}

test: setup
	$(PY) -m pytest -q

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

clean:
	rm -rf $(VENV) node_modules sample .pytest_cache .ruff_cache
