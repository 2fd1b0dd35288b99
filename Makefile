# Gradients by Hand: every command a reader, an author or CI needs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000
# nbval over both cores; --dist loadfile keeps every notebook in one worker (one kernel, in order).
NBVAL_WORKERS ?= 2
NBVAL_REPORT := _build/nbval-report.xml

.PHONY: help book book-strict test test-threads unit pairs pages nbval audit browser pdf serve notebook notebooks learner lab bench clean venv
.DEFAULT_GOAL := book

# torch: on Linux, the CPU build from PyTorch's CPU index when it answers within
# TORCH_PROBE_SECONDS (PyPI's Linux wheel pulls gigabytes of CUDA packages), else the configured
# indexes alone; macOS and Windows use the configured indexes (tools/torch_index.py).
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PROBE_SECONDS ?= 5

$(STAMP): requirements.txt constraints.txt pyproject.toml tools/torch_index.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@extra="$$($(PY) -m tools.torch_index "$(TORCH_CPU_INDEX)" $(TORCH_PROBE_SECONDS))"; \
	  echo "$(PY) -m pip install --quiet $$extra -r requirements.txt setuptools wheel"; \
	  $(PY) -m pip install --quiet $$extra -r requirements.txt setuptools wheel
	@touch $@

## create .venv and install the pinned requirements (gradlab editable, CPU torch)
venv: $(STAMP)

# Every target the README names, from the `##` comment above each.
## list every target with one line each
help:
	@awk 'BEGIN {FS = ":.*"} /^## / {doc = substr($$0, 4); next} /^[a-z-]+:/ && doc {printf "  make %-14s %s\n", $$1, doc} {doc = ""}' $(MAKEFILE_LIST)

# Everything the built book depends on. With nothing newer than the last good build, make book
# is a no-op; a failed build removes Sphinx's saved state, so its warnings come back next time.
BOOK_SOURCES := _config.yml _toc.yml references.bib $(wildcard *.md chapters/*.md chapters/*.ipynb _ext/*.py) \
	$(shell find _static -type f 2>/dev/null)
BOOK_STAMP := _build/.book-stamp
BOOK_PDF := _build/pdf/gradients-by-hand.pdf
SITE_PDF := _build/html/gradients-by-hand.pdf

## build the HTML book and its PDF (warnings are errors)
book: $(SITE_PDF)
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html (or run: make serve)"

$(BOOK_STAMP): $(STAMP) $(BOOK_SOURCES)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going || { rm -rf _build/.doctrees $@; exit 1; }
	@touch $@

# A cold build from scratch with warnings as errors: what make test trusts.
## a cold build from scratch with warnings as errors (part of make test)
book-strict: $(STAMP)
	rm -f $(BOOK_STAMP)
	$(VENV)/bin/jupyter-book build . --all --warningiserror --keep-going
	@touch $(BOOK_STAMP)

## unit tests of gradlab and the tools
unit: $(STAMP)
	$(PY) -m pytest -q -n $(NBVAL_WORKERS) tests --ignore=tests/browser

## the pair check: every chapter's .ipynb matches its .md and was executed
pairs: $(STAMP)
	$(PY) -m tools.check_pairs

# Every chapter fits one sitting and a clean page (budgets, widths, tracebacks, paths, 2x figures).
## the page check: budgets, honest stated time, stubs, widths, clean outputs
pages: $(STAMP)
	$(PY) -m tools.check_pages

## re-execute every chapter and compare every stored output
nbval: $(STAMP)
	@mkdir -p _build
	@notebooks="$$($(PY) -m tools.toc)"; \
	$(PY) -m pytest -q -n $(NBVAL_WORKERS) --dist loadfile --nbval --nbval-current-env -p tools.nbval_hints \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -o junit_family=xunit1 --junitxml=$(NBVAL_REPORT) \
	  $$notebooks

## check that nbval validated every code cell of every chapter
audit:
	$(PY) -m tools.check_nbval_report $(NBVAL_REPORT)

# The whole book as one PDF, printed by headless Chromium from a single-page build
# (tools/pdf.py, which checks it), and its copy in the HTML book, whose download menus link it.
$(BOOK_PDF): $(STAMP) $(BOOK_SOURCES) tools/pdf.py tools/chromium.py
	$(PY) -m tools.pdf --out $@

$(SITE_PDF): $(BOOK_STAMP) $(BOOK_PDF)
	cp $(BOOK_PDF) $@

## the whole book as one PDF: _build/pdf/gradients-by-hand.pdf
pdf: $(SITE_PDF)
	@echo "The book as one PDF: $(CURDIR)/$(BOOK_PDF) (and in the HTML book: $(SITE_PDF))"

# The browser first (tools/chromium.py: found, or installed through apt or Playwright), so that
# an install shows its progress; a missing browser fails the test, it is never skipped.
## the browser test of every page and of the PDF (headless Chromium)
browser: $(SITE_PDF)
	@chromium="$$($(PY) -m tools.chromium)"; echo "browser: $$chromium"
	$(PY) -m pytest -q tests/browser

## the whole suite: unit, pairs, pages, nbval, audit, strict build, browser
test: $(STAMP)
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory pairs
	$(MAKE) --no-print-directory pages
	$(MAKE) --no-print-directory nbval
	$(MAKE) --no-print-directory audit
	$(MAKE) --no-print-directory book-strict
	$(MAKE) --no-print-directory browser

# The output policy, shown to hold: nbval with 1, 3 and 4 PyTorch threads inside every kernel
# (torch.set_num_threads through an IPython startup file: OMP_NUM_THREADS is capped at the core
# count), then with PyTorch's default (non-vectorised) CPU kernels, then once more as usual.
THREAD_PROFILE := _build/ipython-threads
## nbval with 1, 3 and 4 threads and default CPU kernels (CI runs it)
test-threads: $(STAMP)
	@$(PY) -m tools.thread_profile $(THREAD_PROFILE) >/dev/null
	@for t in 1 3 4; do echo "== nbval with torch.set_num_threads($$t) in every kernel"; \
	  IPYTHONDIR=$(CURDIR)/$(THREAD_PROFILE) GBH_TORCH_THREADS=$$t $(MAKE) --no-print-directory nbval audit; done
	@echo "== nbval with PyTorch's default CPU kernels (ATEN_CPU_CAPABILITY=default)"
	@ATEN_CPU_CAPABILITY=default $(MAKE) --no-print-directory nbval audit
	@echo "== nbval once more"
	@$(MAKE) --no-print-directory nbval audit

## serve the built book on http://127.0.0.1:8000 (PORT=... to change)
serve:
	@test -f _build/html/index.html || { echo "No built book in _build/html: run make book first (about a minute)."; exit 2; }
	@echo "Serving the book on http://127.0.0.1:$(PORT)/ (Ctrl-C to stop)"
	$(PY) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

## regenerate and execute one chapter: make notebook NB=chapters/NN-name.md
notebook: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make notebook NB=chapters/<chapter>.md"; exit 2; }
	$(PY) -m tools.notebook $(NB)

## regenerate and execute every chapter
notebooks: $(STAMP)
	@sources="$$($(PY) -m tools.toc --sources)"; $(PY) -m tools.notebook $$sources

# The learner edition (gitignored): every toc chapter without its solutions, as plain notebooks.
## the learner notebooks in learner/; never changes one you edited (FORCE=1 keeps a .bak)
learner: $(STAMP)
	$(PY) -m tools.learner $(if $(FORCE),--force)

# JupyterLab on the repository, with jupytext's contents manager (a chapter .md opens as a notebook).
LAB_PORT ?= 8888
# tools/jupyterlab/overrides.json makes a double-click on a chapter .md open it as a notebook.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
## JupyterLab on the learner notebooks and the chapters
lab: learner
	@mkdir -p $(LAB_SETTINGS) && cp tools/jupyterlab/overrides.json $(LAB_SETTINGS)/overrides.json
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) --ServerApp.port=$(LAB_PORT) \
	  $(if $(filter 0,$(shell id -u)),--allow-root) learner/00-getting-started.ipynb

## time every chapter and the book build
bench: $(STAMP)
	$(PY) -m benchmarks.bench

## remove _build
clean:
	rm -rf _build
