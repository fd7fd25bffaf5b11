# Set-up, build and test for the book. Every target creates .venv/ first if it is missing.
#   make book      render the book to _build/html/
#   make test      Ruff lint and format check + unit tests + nbval over every chapter + hygiene
#                  + strict book build opened in headless Chromium (installed if missing, as root)
#   make execute   re-execute every chapter in place (refreshes the stored outputs);
#                  make execute NOTEBOOKS=chapters/NN-name.ipynb runs just that one
#   make check     nbval + hygiene rules; NOTEBOOKS=... limits it to some chapters
#   make benchmark run the speed benchmarks in benchmarks/
#   make lint      only the Ruff checks that make test starts with
#   make format    let Ruff format the Python files and notebooks and fix what it can

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.benchmark-installed
NOTEBOOKS = $(shell $(BIN)/python tools/book.py notebooks)

# Quiet a debugger warning that Python 3.11+ kernels print on stderr; fix hashing for reproducible runs.
export PYDEVD_DISABLE_FILE_VALIDATION := 1
export PYTHONHASHSEED := 0

.PHONY: book test browser execute check benchmark lint format clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=/path/to/python3.11")'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	# Make the repository's helpers/ importable from every notebook kernel that uses this venv.
	$(BIN)/python -c 'import site, pathlib; pathlib.Path(site.getsitepackages()[0], "hybrid_qnn_book.pth").write_text(str(pathlib.Path.cwd()) + "\n")'
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# The strict book build (-W -n) runs inside the tests: tests/test_browser.py builds the book
# into _build/html and opens every page in headless Chromium.
test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest tests $(NOTEBOOKS) --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600 -p no:cacheprovider
	@echo "The book is at $(CURDIR)/_build/html/index.html; screenshots in _build/screenshots/"

# Chromium and chromedriver for the browser test: Debian's packages, installed when this runs as
# root on Debian or Ubuntu. Elsewhere the test fails with a message that says how to get them.
browser:
	@if command -v chromedriver >/dev/null && { command -v chromium || command -v chromium-browser \
		|| command -v google-chrome; } >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Chromium and chromedriver for the browser test (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	else \
		echo "No Chromium here and no way to install it: tests/test_browser.py will say how."; \
	fi

execute: $(STAMP)
	$(BIN)/python tools/book.py sync
	$(BIN)/python tools/book.py execute $(NOTEBOOKS)

# nbval and the hygiene rules for the chapters in NOTEBOOKS (all of them unless given).
check: $(STAMP)
	$(BIN)/python -m pytest tests/test_hygiene.py $(NOTEBOOKS) --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600 -p no:cacheprovider -q

# Benchmark-only packages (PennyLane) on top of the book's pins, which they may not move.
$(BENCH_STAMP): $(STAMP) benchmarks/requirements.txt
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt -c requirements.txt
	touch $(BENCH_STAMP)

benchmark: $(BENCH_STAMP)
	$(BIN)/python benchmarks/quantum_layer.py
	$(BIN)/python benchmarks/hybrid_mnist.py
	$(BIN)/python benchmarks/layer_memory.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf _build
