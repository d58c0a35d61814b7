# The two commands a newcomer runs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGINS := plugins/image[digits] plugins/video[digits] plugins/audio plugins/pointcloud plugins/timeseries[parquet] plugins/multimodal[digits]
# torch comes first and pinned: on our machines these wheels are on local disk (see README, "Install").
TORCH := torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.0

.PHONY: venv demo test bench table methods lint format clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml)
	@# open3d (the point-cloud plugin) needs Debian's libusb-1.0-0.
	@ldconfig -p | grep -q libusb-1.0 || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
		apt-get install -y -qq libusb-1.0-0 >/dev/null; else echo "please install libusb-1.0-0 (open3d needs it)"; exit 1; fi; }
	@# The report's browser test (tests/image/test_report.py) opens the page in Debian's chromium; skipped without it.
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else echo "hint: install chromium (apt-get install chromium) so the report's browser test runs"; fi; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[test]' $(foreach p,$(PLUGINS),-e '$(p)')
	touch $@

demo: $(STAMP)
	$(BIN)/anymae fit --config examples/image/mae_tiny_digits.yaml
	$(BIN)/anymae knn --config examples/image/knn_digits.yaml --model.encoder.checkpoint latest --compare-random
	$(BIN)/anymae report latest

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	ANYMAE_STRICT_PLUGINS=1 $(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadgroup

table: $(STAMP)
	$(BIN)/anymae table --suite examples/suite.yaml

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

methods: $(STAMP)
	$(BIN)/python benchmarks/methods.py --study

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) lightning_logs .pytest_cache .ruff_cache
