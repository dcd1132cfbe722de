# biounet: the two set-up commands are `make demo` and `make test`; both create .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch (see README, "GPU", for a CUDA build).
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.biounet-installed
# The peers that `make bench` measures biounet against (MONAI, smp), beside the same torch (--no-deps).
PEERS  := $(VENV)/.biounet-peers
# The nuclei specialists of the "specialists" section (StarDist on TensorFlow CPU, Cellpose 3), --no-deps
# too (see the file's comments); `make bench` installs them, `make test` does not (no TensorFlow in CI).
SPECIALISTS := $(VENV)/.biounet-specialists

.PHONY: install demo test lint bench bench-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,distributed,napari,bioimageio]"
	@touch $(STAMP)

$(PEERS): $(STAMP) benchmarks/requirements-peers.txt
	$(BIN)/python -m pip install --quiet --no-deps -r benchmarks/requirements-peers.txt
	@touch $(PEERS)

$(SPECIALISTS): $(STAMP) benchmarks/requirements-specialists.txt
	$(BIN)/python -m pip install --quiet --no-deps -r benchmarks/requirements-specialists.txt
	@touch $(SPECIALISTS)

demo: install
	$(BIN)/biounet demo --out demo-output

# lint only: the code is wrapped by hand at 120 columns (ruff format would rewrap 37 files)
lint: install
	$(BIN)/ruff check src tests benchmarks

# the suite runs `benchmarks/run.py --quick` (tests/benchmarks), so it needs the peers too
test: install $(PEERS)
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-xvfb.sh
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q --durations=25

bench: install $(PEERS) $(SPECIALISTS)
	$(BIN)/python benchmarks/run.py --out benchmarks/RESULTS

bench-quick: install $(PEERS) $(SPECIALISTS)
	$(BIN)/python benchmarks/run.py --quick --out benchmarks/quick

clean:
	rm -rf demo-output benchmarks/quick .pytest_cache
