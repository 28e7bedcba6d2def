# Two entry points: `make demo` (pipeline on the bundled photos, then the dashboard) and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: demo pipeline dashboard test lint browser venv clean install-check

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

## The package as a user installs it: build the wheel, install it (not editable) into a fresh virtualenv
## that borrows only the pinned dependencies, and predict a photo from another folder.
INSTALL_CHECK := build/install-check
install-check: venv
	rm -rf $(INSTALL_CHECK) build/lib && mkdir -p $(INSTALL_CHECK)/cwd  # build/lib: no stale module in the wheel
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation -w $(INSTALL_CHECK)/wheel .
	$(PY) -m venv $(INSTALL_CHECK)/venv
	$(BIN)/python -c "import site; print(site.getsitepackages()[0])" \
		> $$($(INSTALL_CHECK)/venv/bin/python -c "import site; print(site.getsitepackages()[0])")/pinned-deps.pth
	$(INSTALL_CHECK)/venv/bin/pip install --quiet --no-deps --no-index $(INSTALL_CHECK)/wheel/*.whl
	cd $(INSTALL_CHECK)/cwd && ../venv/bin/python -c "import hashtag_workbench as h, sys; \
		sys.exit(0 if '/install-check/venv/' in h.__file__ else 'imported from ' + h.__file__)"
	cd $(INSTALL_CHECK)/cwd && HF_HUB_OFFLINE=1 ../venv/bin/hashtags --home home predict --json \
		$(firstword $(wildcard $(CURDIR)/datasets/demo/photos/bird/*.jpg)) > predict.json
	$(BIN)/python -c "import json; r = json.loads(open('$(INSTALL_CHECK)/cwd/predict.json').readline()); \
		assert r['zero_shot']['top'], r; print('install-check: wheel installed, hashtags predict works')"

## The whole test suite, after the lint, then the installed-package check.
test: venv browser lint
	$(BIN)/python -m pytest
	$(MAKE) install-check

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts build
