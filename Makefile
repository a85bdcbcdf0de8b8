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

.PHONY: demo test torch bench build clean-venv

demo: $(STAMP)
	$(CARGO) run $(CARGO_FLAGS) --bin hjepa -- demo

# The dataset tests check that Python reads our shards with the venv's safetensors.
test: $(STAMP)
	HJEPA_PYTHON=$(VENV)/bin/python HJEPA_REQUIRE_PYTHON=1 $(CARGO) test $(CARGO_FLAGS)

build: $(STAMP)
	$(CARGO) build $(CARGO_FLAGS)

bench: $(STAMP)
	$(CARGO) run $(CARGO_FLAGS) --bin hjepa -- bench sim

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
