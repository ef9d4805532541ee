# Two commands for a fresh machine: `make demo` (the main job on bundled photos) and `make test`.
# Both set themselves up idempotently: OpenJPEG for glymur, a virtual environment, pip install.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: demo test setup openjpeg clean bench

demo: $(STAMP)
	mkdir -p $(OUT)
	$(BIN)/rankgen distort -o $(OUT)/corpus.h5 --overwrite
	$(BIN)/rankgen info $(OUT)/corpus.h5
	$(BIN)/rankgen preview $(OUT)/corpus.h5 -o $(OUT)/contact_sheet.png

test: $(STAMP)
	$(BIN)/python -m pytest

setup: $(STAMP)

# glymur needs OpenJPEG's libopenjp2 at run time; the Debian/Ubuntu package provides it.
openjpeg:
	@if ! ldconfig -p 2>/dev/null | grep -q libopenjp2; then \
	  echo "installing libopenjp2 (OpenJPEG) for JPEG 2000"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q libopenjp2-7 >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q libopenjp2-7 >/dev/null; } || \
	  { echo "could not install libopenjp2-7: install OpenJPEG 2.4+ with your package manager"; exit 1; }; \
	fi

$(STAMP): setup.cfg pyproject.toml | openjpeg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python -c "import glymur, numpy as np, tempfile, os; d=tempfile.mkdtemp(); p=os.path.join(d,'t.jp2'); glymur.Jp2k(p, data=np.zeros((64,64,3),np.uint8), cratios=[10]); assert glymur.Jp2k(p)[:].shape==(64,64,3)" \
	  || { echo "glymur cannot encode JPEG 2000: is libopenjp2 installed?"; exit 1; }
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/python benchmarks/distort_throughput.py

clean:
	rm -rf $(OUT) .pytest_cache .hypothesis
