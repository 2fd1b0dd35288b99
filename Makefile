# Gradients by Hand: every command a reader, an author or CI needs.
#   make book     create .venv, install the pinned requirements, build the HTML book
#   make test     the whole suite (unit tests, pair check, nbval, strict book build, browser, Jupyter)
#   make serve    serve the built book on http://127.0.0.1:8000
#   make notebook NB=chapters/01-chain-rule.md   regenerate and execute one chapter's .ipynb
#   make notebooks                               ... every chapter's
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

.PHONY: book book-strict test test-threads unit pairs nbval audit browser serve notebook notebooks bench clean venv
.DEFAULT_GOAL := book

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

venv: $(STAMP)

# Everything the built book depends on. With nothing newer than the last good build, make book
# is a no-op; a failed build removes Sphinx's saved state, so its warnings come back next time.
BOOK_SOURCES := _config.yml _toc.yml references.bib $(wildcard *.md chapters/*.md chapters/*.ipynb _ext/*.py) \
	$(shell find _static -type f 2>/dev/null)
BOOK_STAMP := _build/.book-stamp

book: $(BOOK_STAMP)
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html (or run: make serve)"

$(BOOK_STAMP): $(STAMP) $(BOOK_SOURCES)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going || { rm -rf _build/.doctrees $@; exit 1; }
	@touch $@

# A cold build from scratch with warnings as errors: what make test trusts.
book-strict: $(STAMP)
	rm -f $(BOOK_STAMP)
	$(VENV)/bin/jupyter-book build . --all --warningiserror --keep-going
	@touch $(BOOK_STAMP)

unit: $(STAMP)
	$(PY) -m pytest -q -n $(NBVAL_WORKERS) tests --ignore=tests/browser

pairs: $(STAMP)
	$(PY) -m tools.check_pairs

nbval: $(STAMP)
	@mkdir -p _build
	$(PY) -m pytest -q -n $(NBVAL_WORKERS) --dist loadfile --nbval --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -o junit_family=xunit1 --junitxml=$(NBVAL_REPORT) \
	  $$($(PY) -m tools.toc)

audit:
	$(PY) -m tools.check_nbval_report $(NBVAL_REPORT)

browser: $(BOOK_STAMP)
	$(PY) -m pytest -q tests/browser

test: $(STAMP)
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory pairs
	$(MAKE) --no-print-directory nbval
	$(MAKE) --no-print-directory audit
	$(MAKE) --no-print-directory book-strict
	$(MAKE) --no-print-directory browser

# The output policy, shown to hold: nbval with 1, 2 and 4 threads per kernel, then once more.
test-threads: $(STAMP)
	@for t in 1 2 4 2; do echo "== nbval with OMP_NUM_THREADS=$$t"; OMP_NUM_THREADS=$$t $(MAKE) --no-print-directory nbval audit; done

serve:
	@test -f _build/html/index.html || $(MAKE) --no-print-directory book
	@echo "Serving the book on http://127.0.0.1:$(PORT)/ (Ctrl-C to stop)"
	$(PY) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

notebook: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make notebook NB=chapters/<chapter>.md"; exit 2; }
	$(PY) -m tools.notebook $(NB)

notebooks: $(STAMP)
	$(PY) -m tools.notebook $$($(PY) -m tools.toc | sed 's/\.ipynb$$/.md/')

bench: $(STAMP)
	$(PY) -m benchmarks.bench

clean:
	rm -rf _build
