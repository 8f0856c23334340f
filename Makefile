# LandFuse — set-up, tests, demo, benchmarks and packaging.
# Stamps in .stamps/ keep re-runs cheap; they hold a hash of what they installed, so a changed
# requirements file re-installs.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
QGIS_VENV := .venv-qgis
QPY := $(QGIS_VENV)/bin/python
STAMPS := .stamps
SHARED_DATA := $(or $(LANDFUSE_SHARED_DATA),../shared/data)
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
APT_PACKAGES := qgis python3-qgis qgis-providers python3-gdal python3-pytest python3-mock python3-pytestqt python3-venv
export QT_QPA_PLATFORM := offscreen

.PHONY: setup setup-backend setup-qgis lint test test-backend test-plugin fuzz demo bench pretrain evaluate-generic calibrate-generic package validate clean

setup: setup-backend setup-qgis

# The backend venv. On a machine with an NVIDIA GPU (nvidia-smi answers) the GPU extras are added;
# torch stays pinned in the same pip command so pip never swaps the build behind our back.
setup-backend: $(STAMPS)/backend
$(STAMPS)/backend: backend/requirements.txt backend/requirements-gpu.txt backend/requirements-bench.txt backend/requirements-dev.txt
	@mkdir -p $(STAMPS)
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r backend/requirements.txt -r backend/requirements-bench.txt -r backend/requirements-dev.txt
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  $(VPY) -m pip install --quiet --disable-pip-version-check -r backend/requirements.txt -r backend/requirements-gpu.txt \
	    || echo "mamba-ssm did not install: the CPU selective scan will be used on the GPU too"; fi
	touch $@

# QGIS 3.22 from Debian for the plugin tests, and a venv on the system Python that sees the QGIS
# bindings (--system-site-packages) with pytest-qgis. PyQt5 is never pip-installed there.
setup-qgis: $(STAMPS)/qgis
$(STAMPS)/qgis:
	@mkdir -p $(STAMPS)
	if ! /usr/bin/python3 -c "import qgis.core, ensurepip" >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); fi
	test -x $(QPY) || /usr/bin/python3 -m venv --system-site-packages $(QGIS_VENV)
	$(QPY) -m pip install --quiet --disable-pip-version-check pytest-qgis
	touch $@

test: lint test-backend test-plugin

# ruff.toml says what is checked; fast (under a second), so it runs first and fails early.
lint: $(STAMPS)/backend
	$(VENV)/bin/ruff check .

test-backend: $(STAMPS)/backend
	$(VPY) -m pytest -q tests/backend

test-plugin: $(STAMPS)/qgis $(STAMPS)/backend
	LANDFUSE_BACKEND_PYTHON=$(abspath $(VPY)) $(QPY) -m pytest -q tests/plugin

# Damaged real files (truncated, random header bytes, wrong TIFF tags, junk ENVI headers and model.json)
# through the real commands: one error or result event, a typed code, no partial output, inputs intact.
# Seeded and bounded (FUZZ_ARGS="--cases 60 --seed 3 --budget-s 900"); not part of `make test`.
fuzz: $(STAMPS)/backend
	$(VPY) scripts/fuzz_contract.py $(FUZZ_ARGS)

# A short summary on the terminal; every JSON event in demo_output/events.jsonl.
# `make demo JSON=1` prints the raw JSON lines instead (what the plugin reads).
demo: $(STAMPS)/backend
	$(VPY) -m backend $(if $(JSON),--json,--human --events demo_output/events.jsonl) demo --out demo_output

# The bundled generic model: rebuilt by exactly the command its model.json records (deterministic
# for the seed; about 15 min on 2 CPU cores), then scored on held-out scenes, sensors and real data.
pretrain: $(STAMPS)/backend
	$(VPY) -m backend pretrain --out models/generic-landcover --seed 0

evaluate-generic: $(STAMPS)/backend
	bash scripts/evaluate_generic.sh

# The generic model's softmax temperature, fitted on 12 held-out synthetic scenes and measured on 12
# others and on Samson (real); written into its model.json and card (the weights stay as they are).
# Rerun after `make pretrain`: new weights need their own temperature.
calibrate-generic: $(STAMPS)/backend
	$(VPY) -m backend calibrate --model models/generic-landcover --scenes 12 --seed 0 \
	  --check $(SHARED_DATA)/samson/samson_1.img $(SHARED_DATA)/samson/samson_labels.tif

bench: $(STAMPS)/backend
	$(VPY) benchmarks/run.py $(BENCH_ARGS)

package:
	$(PYTHON) scripts/package_plugin.py

validate: package $(STAMPS)/backend
	$(VPY) -m pip install --quiet --disable-pip-version-check bandit
	$(VPY) scripts/validate_plugin.py dist/landfuse-$(VERSION).zip

clean:
	rm -rf $(STAMPS) demo_output dist build .pytest_cache
