# One place for every command the README gives. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard chapters/*.ipynb))
# Strict nbval: every stored output is compared as text, with no lax mode and no sanitizer.
NBVAL_ONE := $(BIN)/python -m pytest -p no:cacheprovider --nbval --nbval-current-env
# Two notebooks at a time; loadscope keeps a notebook's cells on one worker.
NBVAL := $(NBVAL_ONE) -n 2 --dist loadscope chapters
# Kernel paths that a reader's CPU takes instead of this machine's: PyTorch's unvectorised kernels
# and MKL's reproducible code path. Set here only, for the test passes: nothing in attnlib, the
# notebooks or the tests pins kernels or threads, so the notebooks must print only portable digits.
OTHER_KERNELS := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE
# `make portability NB=chapters/03_scaled_dot_product.ipynb` runs each variant separately.
NB ?= chapters
VARIANTS := OMP_NUM_THREADS=1 OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=avx2 ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE

.PHONY: help install book test lint unit translations nbval portability build picture html-en html-zh \
	source pdf pdf-en pdf-zh browser notebooks lab clean

help:
	@echo "make book       set up .venv, install, build both editions (_build/html, _build/html/zh) and their PDFs"
	@echo "make test       ruff, unit tests, nbval over every notebook (1 thread; 2 threads on other CPU kernels),"
	@echo "                every English string translated (the Chinese edition), strict build of both editions,"
	@echo "                every page of the built book checked in headless Chromium"
	@echo "make portability [NB=chapters/x.ipynb]  strict nbval under each thread count and kernel path, separately"
	@echo "make notebooks  re-execute every notebook top to bottom in a fresh kernel (refresh stored outputs)"
	@echo "make lab        open the notebooks in JupyterLab"

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(STAMP)

book: $(STAMP) build pdf
	@echo
	@echo "Built. Open _build/html/index.html in a browser, or serve it:"
	@echo "  $(BIN)/python -m http.server --directory _build/html 8000   # then http://127.0.0.1:8000"

# Two editions from the same notebooks: English in _build/html, Chinese (the prose translated in
# locales/zh_CN, tools/editions.py) in _build/html/zh, so one site serves both. Sphinx builds a book
# on one core, so the two editions are built side by side, as are their PDFs (each log printed
# whole when its edition is done); `.venv/bin/python tools/book_time.py` times both against one.
SIDE_BY_SIDE := $(MAKE) --no-print-directory -j2 --output-sync=target
build: $(STAMP)
	$(SIDE_BY_SIDE) html-en html-zh
	rm -rf _build/html/zh && cp -r _build/zh/_build/html _build/html/zh
	$(MAKE) --no-print-directory source

# The landing page's picture, drawn once for both editions (each edition's build needs it).
picture: $(STAMP)
	$(BIN)/python tools/landing_picture.py

html-en: $(STAMP) picture
	$(BIN)/jupyter-book build . --all -n -W --keep-going

html-zh: $(STAMP) picture
	$(BIN)/python tools/editions.py config >/dev/null
	$(BIN)/jupyter-book build . --config _build/_config.zh_CN.yml --path-output _build/zh --all -n -W --keep-going

# The book's source as one archive, linked from the landing page: the committed files in a git
# clone, the folder's files otherwise (without .venv, _build and caches).
SOURCE := _build/html/self-attention-tested-source.tar.gz
source:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git archive --format=tar.gz --prefix=self-attention-tested/ -o $(SOURCE) HEAD; \
	else \
	  tar --exclude=./.venv --exclude=./_build --exclude=__pycache__ --exclude=.ipynb_checkpoints \
	    --transform 's,^\.,self-attention-tested,' -czf _build/source.tar.gz . && mv _build/source.tar.gz $(SOURCE); \
	fi
	@if [ -d _build/html/zh ]; then cp $(SOURCE) _build/html/zh/; fi

# The whole book as one PDF per edition (every page printed by headless Chromium, joined).
pdf: $(STAMP) build
	$(SIDE_BY_SIDE) pdf-en pdf-zh

pdf-en: $(STAMP)
	$(BIN)/python tools/print_book.py

pdf-zh: $(STAMP)
	$(BIN)/python tools/print_book.py zh

test: $(STAMP) lint unit translations nbval build browser

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP)
	$(BIN)/python -m pytest tests

# The drift gate: every English string of the book has a current Chinese translation.
translations: $(STAMP)
	$(BIN)/python tools/editions.py check

# Two passes: natively at 1 thread (two notebooks at a time), then with the thread count and the
# kernel paths changed together (2 threads, PyTorch's unvectorised kernels, MKL's reproducible
# path). The second pass runs one notebook at a time: two workers of two threads each would
# oversubscribe 2 cores, and every OpenMP barrier would then wait for a descheduled thread.
# `make portability` still runs each variant on its own.
# The second pass also runs each notebook as a reader who downloaded it alone: copied into an
# empty folder of its own outside the repository, with only the installed attnlib beside it.
nbval: $(STAMP)
	OMP_NUM_THREADS=1 $(NBVAL)
	@alone=$$(mktemp -d); for nb in $(NOTEBOOKS); do d=$$alone/$$(basename $$nb .ipynb); \
	  mkdir -p $$d && cp $$nb $$d/; done; \
	echo "== downloaded alone, 2 threads, other kernels: $$alone"; \
	OMP_NUM_THREADS=2 $(OTHER_KERNELS) $(NBVAL_ONE) $$alone; status=$$?; rm -rf $$alone; exit $$status

portability: $(STAMP)
	@for v in $(VARIANTS); do echo "== $$v"; env $$v $(NBVAL_ONE) -q $(NB) || exit 1; done

# Needs Chromium (apt-get install chromium); screenshots land in _build/screenshots/.
browser: $(STAMP) build pdf
	$(BIN)/python -m pytest -p no:cacheprovider browser_tests

notebooks: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.record_timing=False $(NOTEBOOKS)

lab: $(STAMP)
	$(BIN)/jupyter lab chapters

clean:
	rm -rf _build
