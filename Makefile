# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Both install torch==2.11.0 into a project-local venv when it is missing (tch 0.24 links
# exactly that libtorch) and are quick when it is there.

PYTHON ?= python3.11
# Where the torch venv lives; CI points this at a cache outside the clone.
VENV ?= $(CURDIR)/.venv
TORCH_VERSION := 2.11.0
export LIBTORCH := $(VENV)/lib/python3.11/site-packages/torch
# numpy + safetensors let the tests check that Python reads our datasets.
PY_PACKAGES := torch==$(TORCH_VERSION) numpy safetensors
STAMP := $(VENV)/.installed-torch-$(TORCH_VERSION)-numpy-safetensors

CARGO ?= cargo
CARGO_FLAGS ?= --release

# The viewer's test runs it under Xvfb on Mesa's software Vulkan (lavapipe).
VIEWER_PACKAGES := xvfb xauth mesa-vulkan-drivers libvulkan1

.PHONY: demo test fuzz fuzz-readers test-no-torch test-python test-viewer viewer-deps torch bench build clean-venv

demo: $(STAMP)
	$(CARGO) run $(CARGO_FLAGS) --bin hjepa -- demo

# Formatting first (seconds; rustfmt comes with the toolchain). The dataset tests check that
# Python reads our shards with the venv's safetensors.
test: $(STAMP)
	$(CARGO) fmt --check
	HJEPA_PYTHON=$(VENV)/bin/python HJEPA_REQUIRE_PYTHON=1 $(CARGO) test $(CARGO_FLAGS)
	$(MAKE) test-no-torch
	$(MAKE) test-python
	$(MAKE) test-viewer

# The fuzz harness (tests/fuzz_inputs.rs, docs/reliability.md) with 5000 inputs per property
# instead of the 256 `make test` tries.
fuzz: $(STAMP)
	PROPTEST_CASES=5000 $(CARGO) test $(CARGO_FLAGS) --test fuzz_inputs

# libFuzzer on the readers of untrusted files (fuzz/: scene RON, dataset manifest and
# shards, recordings), each target for FUZZ_SECONDS; needs the nightly toolchain, installs
# cargo-fuzz once. Crashes land in fuzz/artifacts/ (docs/reliability.md).
FUZZ_SECONDS ?= 60
fuzz-readers:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	mkdir -p fuzz/corpus/scene_ron && cp scenes/*.ron fuzz/corpus/scene_ron/
	for t in scene_ron dataset_files recording_json; do \
	  $(CARGO) +nightly fuzz run --fuzz-dir fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 || exit 1; \
	done

# The sandbox and datasets without libtorch (`--no-default-features`, the base of the Python
# package): built in its own target folder, then run: no libtorch linked, and the torch-free
# subcommands work.
NO_TORCH_DIR = $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/no-torch
test-no-torch:
	$(CARGO) build $(CARGO_FLAGS) --no-default-features --target-dir $(NO_TORCH_DIR)
	$(CARGO) test $(CARGO_FLAGS) --no-default-features --target-dir $(NO_TORCH_DIR)
	! ldd $(NO_TORCH_DIR)/release/hjepa | grep -q torch
	cd $$(mktemp -d) && $(NO_TORCH_DIR)/release/hjepa check push_t >/dev/null \
	  && $(NO_TORCH_DIR)/release/hjepa run --scene two_rooms --episodes 2 >/dev/null \
	  && $(NO_TORCH_DIR)/release/hjepa collect --scene wall --episodes 2 --out d >/dev/null \
	  && $(NO_TORCH_DIR)/release/hjepa inspect d >/dev/null \
	  && HJEPA_BENCH_NO_PEER=1 $(NO_TORCH_DIR)/release/hjepa bench sim --seconds 0.2 >/dev/null \
	  && echo "no-torch build: check, run, collect, inspect, bench sim ok"

# The Python package (python/, docs/python.md): built with maturin into the project venv on
# the torch-free layers (sharing the no-torch build folder), then its pytest suite, which
# compares `hjepa.collect` and `hjepa.evaluate` with the no-torch CLI (HJEPA_BIN; built here
# when test-no-torch has not built it already).
PY_STAMP := $(VENV)/.installed-maturin-gymnasium-pytest
$(PY_STAMP): $(STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "maturin==1.16.*" gymnasium==1.4.0 pytest
	touch $@

test-python: $(PY_STAMP)
	cd python && $(CARGO) fmt --check
	cd python && VIRTUAL_ENV=$(VENV) PATH=$(VENV)/bin:$$PATH CARGO_TARGET_DIR=$(NO_TORCH_DIR) \
	  $(VENV)/bin/maturin develop --release --quiet
	$(CARGO) build $(CARGO_FLAGS) --no-default-features --target-dir $(NO_TORCH_DIR) --bin hjepa
	cd python && HJEPA_BIN=$(NO_TORCH_DIR)/release/hjepa HJEPA_REQUIRE_BIN=1 \
	  $(VENV)/bin/python -m pytest -q

# The viewer (cargo feature `viewer`, Bevy) under a virtual X server: builds it once and runs
# tests/viewer.rs, which starts `hjepa view` for a fixed number of frames and checks its
# screenshot. Installs the Debian packages it needs when they are missing.
test-viewer: $(STAMP) viewer-deps
	HJEPA_REQUIRE_VIEWER=1 $(CARGO) test $(CARGO_FLAGS) --features viewer --test viewer

viewer-deps:
	@if ! command -v xvfb-run >/dev/null || ! command -v xauth >/dev/null \
	    || ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 \
	    || ! ldconfig -p | grep -q 'libvulkan.so.1 '; then \
	  echo "installing $(VIEWER_PACKAGES) (once, for the viewer's test)"; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $(VIEWER_PACKAGES) >/dev/null; \
	fi

build: $(STAMP)
	$(CARGO) build $(CARGO_FLAGS)

# `make bench`: `hjepa bench sim` with gym-pusht 0.1.8 measured beside it (installed into the
# venv once; it needs only gymnasium < 2 and numpy, which the package's own pins satisfy),
# then python/bench.py: the Python envs beside gym-pusht and `hjepa bench sim`
# (docs/performance.md). Run it on an otherwise idle machine.
PUSHT_STAMP := $(VENV)/.installed-gym-pusht-0.1.8
$(PUSHT_STAMP): $(PY_STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check gym-pusht==0.1.8
	touch $@

bench: $(STAMP) $(PUSHT_STAMP)
	HJEPA_PYTHON=$(VENV)/bin/python $(CARGO) run $(CARGO_FLAGS) --bin hjepa -- bench sim
	cd python && VIRTUAL_ENV=$(VENV) PATH=$(VENV)/bin:$$PATH CARGO_TARGET_DIR=$(NO_TORCH_DIR) \
	  $(VENV)/bin/maturin develop --release --quiet
	HJEPA_BIN=$(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/release/hjepa $(VENV)/bin/python python/bench.py

torch: $(STAMP)

$(STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (needed once, to install torch==$(TORCH_VERSION) into $(VENV))" >&2; exit 2; }
	@echo "installing torch==$(TORCH_VERSION) into $(VENV) (once; ~1.5 min, ~4.7 GB)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_PACKAGES)
	@test -f $(LIBTORCH)/lib/libtorch_cpu.so || { echo "error: $(LIBTORCH)/lib/libtorch_cpu.so missing after install" >&2; exit 2; }
	touch $@

clean-venv:
	rm -rf $(VENV)
