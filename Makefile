# One entry point for set-up, tests and the demo. Everything installs into .venv.
# torch is pinned here (a CPU wheel is on disk on our machines; an unpinned torch pulls
# gigabytes of CUDA packages); pyproject.toml keeps an open range for users.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0
export NO_ALBUMENTATIONS_UPDATE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup test test-fast demo bench lint clean system-deps readme readme-check

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[train,dev,hub]'
	touch $@

setup: $(VENV)/.installed

# System packages the integration tests use (nginx serves archives over loopback with Range).
system-deps:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || \
	  { (command -v apt-get >/dev/null && export DEBIAN_FRONTEND=noninteractive && \
	     (apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \
	     || (sudo -E apt-get update -qq && sudo -E apt-get install -y -qq --no-install-recommends nginx-light >/dev/null))) \
	     || echo "warning: nginx not installed; its integration tests will be skipped"; }

# HYPOTHESIS_PROFILE=ci: property tests on fixed examples (tests/conftest.py); plain pytest explores
test: setup system-deps
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -q tests

# the edit loop: everything but the tests marked slow (fuzz suites, torchrun, network time-outs)
test-fast: setup
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -q -m "not slow" tests

lint: setup
	$(BIN)/ruff check .

demo: setup
	VENV=$(VENV) bash scripts/demo.sh

# README's tour outputs (and docs/mapping.md's report on ../shared/realdata) are generated: `make readme`
# reruns their commands on a fresh synthetic sample and rewrites the marked blocks; `make readme-check`
# fails when they differ. (~1-2 min on 2 cores: it converts, packs and trains one epoch. `make test`
# checks all but the training block: tests/test_readme_tour.py regenerates the `--part sunrgbd` and
# `--part docs` blocks.)
readme: setup
	$(BIN)/python scripts/readme_tour.py

readme-check: setup
	$(BIN)/python scripts/readme_tour.py --check

bench: setup
	$(BIN)/python benchmarks/bench_convert.py

clean:
	rm -rf $(VENV) build dist *.egg-info demo
