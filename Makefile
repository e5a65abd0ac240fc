# The front door. `make run` and `make test` are all a fresh Debian 12/13 machine needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CORPUS ?= ../shared/corpus

# Build and test needs, from Debian (nothing vendored).
BUILD_PACKAGES := $(shell grep -v '^\#' native/build-packages.txt)
TEST_PACKAGES := libjpeg-turbo-progs
# The local machine image: bake it with Packer, boot it under QEMU (docs/local-image.md).
IMAGE_PACKAGES := packer qemu-system-x86 qemu-utils mmdebstrap extlinux fdisk e2fsprogs \
	socat openssh-client shellcheck
# Peers the benchmark measures us against.
BENCH_PACKAGES := libvips42 imagemagick nodejs npm wrk nginx-light util-linux

NATIVE_SOURCES := $(shell find native -name '*.cc' -o -name '*.h' -o -name CMakeLists.txt)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: packages
packages: ## install the Debian packages the build and tests need (if absent)
	@scripts/install-packages.sh $(BUILD_PACKAGES) $(TEST_PACKAGES)

$(PY):
	@scripts/install-packages.sh $(BUILD_PACKAGES) $(TEST_PACKAGES)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The package, installed editable: Python edits need nothing; native edits rebuild.
$(VENV)/.built: $(PY) pyproject.toml $(NATIVE_SOURCES)
	@scripts/install-packages.sh $(BUILD_PACKAGES) $(TEST_PACKAGES)
	$(PIP) install --quiet scikit-build-core pybind11 ninja
	$(PIP) install --quiet --no-build-isolation --editable '.[test,dev]'
	@touch $@

.PHONY: build
build: $(VENV)/.built ## build the native extension into the virtual environment

.PHONY: run
run: build ## serve the sample images on http://127.0.0.1:8080/ (Ctrl-C stops)
	@echo "Try:"
	@echo "  http://127.0.0.1:8080/o_dragonfly.jpg?width=800&format=auto"
	@echo "  http://127.0.0.1:8080/o_picos.jpg?w=400&h=400&fit=crop&crop=top"
	@echo "  http://127.0.0.1:8080/p_gulp_alpha.png?width=600&format=webp"
	@echo "  http://127.0.0.1:8080/metrics"
	$(VENV)/bin/appliance serve --origin-dir $(CORPUS) --host 127.0.0.1 --port 8080

.PHONY: test
test: build ## run the whole test suite (the booted image test is `make image-test`)
	@scripts/install-packages.sh shellcheck
	$(PY) -m pytest -q -m "not slow" --ignore=tests/image

.PHONY: image
image: build ## bake the local QEMU image with the AMI's provisioning (.cache/image/output)
	@scripts/install-packages.sh $(IMAGE_PACKAGES)
	$(PY) -m tests.image.harness build

.PHONY: image-test
image-test: build ## bake the local image, boot it twice under QEMU, check it with testinfra
	@scripts/install-packages.sh $(IMAGE_PACKAGES)
	$(PY) -m pytest -q -p no:cacheprovider tests/image

.PHONY: test-slow
test-slow: build ## run the long tests too (1,000 damaged files)
	$(PY) -m pytest -q

.PHONY: bench
bench: build ## benchmark the transcoder against Pillow, libvips, sharp, ImageMagick
	@scripts/install-packages.sh $(BENCH_PACKAGES)
	$(PIP) install --quiet -r bench/requirements.txt
	npm install --prefix bench --no-audit --no-fund --silent
	$(PY) -m bench --corpus $(CORPUS)

.PHONY: bench-http
bench-http: build ## the server over HTTP against thumbor, nginx as the ceiling (~2.5 min)
	@scripts/install-packages.sh $(BENCH_PACKAGES)
	$(PY) -m bench.http

.PHONY: soak
soak: build ## ten minutes at saturation: worker RSS must stay flat, answers 200/304/503 only
	$(PY) -m bench.http.soak --corpus $(CORPUS)

.PHONY: asan
asan: build ## the core under AddressSanitizer (damaged-file loop) and ThreadSanitizer
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/run-asan.sh $(CORPUS)

.PHONY: lint
lint: build ## ruff and mypy
	$(VENV)/bin/ruff check appliance tests bench
	$(VENV)/bin/ruff format --check appliance tests bench
	$(VENV)/bin/mypy appliance

.PHONY: fmt
fmt: build ## format the Python code
	$(VENV)/bin/ruff format appliance tests bench
	$(VENV)/bin/ruff check --fix appliance tests bench

.PHONY: clean
clean: ## remove build outputs (keeps the virtual environment)
	rm -rf build $(VENV)/.built appliance/_native*.so
