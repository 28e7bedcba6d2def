# Two entry points: `make demo` (pipeline on the bundled photos, then the dashboard) and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: demo pipeline dashboard test lint browser venv clean

$(BIN)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	# the project itself, editable, on top of the pinned set (its own dependencies are those pins)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

venv: $(BIN)/.installed

## Run the whole pipeline on the bundled demo photos, then serve the dashboard on 127.0.0.1.
demo: pipeline dashboard

## The pipeline alone (for scripts and CI): import, features, outliers, models, evaluation.
pipeline: venv
	$(BIN)/hashtags demo

dashboard: venv
	$(BIN)/hashtags dashboard --port $(PORT)

## Chromium for the browser test (Debian's build; Playwright's own download does not work offline).
browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else echo "The browser test needs Debian's chromium: sudo apt-get install -y chromium"; exit 1; fi; }

## Lint (ruff, configured in pyproject.toml); a finding fails the build.
lint: venv
	$(BIN)/ruff check .

## The whole test suite, after the lint.
test: venv browser lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
