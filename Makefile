# mpgo developer targets. `make help` lists them.
PY      ?= python3
GO      ?= go
export GOFLAGS ?= -mod=mod
PYTEST  = PYTHONPATH=$(CURDIR)/python $(PY) -m pytest

.PHONY: help build capi test test-go test-race test-c test-py bench lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build the engine in place (python/mpgo/_native)
	$(PY) tools/buildext.py --python $(PY)
	@# Children import mpgo afresh; without .pyc files each one recompiles it.
	$(PY) -m compileall -q python/mpgo

capi: ## build libmpgo.so and capi/include/mpgo.h for C users
	$(GO) build -buildmode=c-shared -o _build/libmpgo.so ./capi
	rm -f _build/libmpgo.h

test-c: capi ## run the C test against libmpgo.so
	$(CC) -Wall -Werror -o _build/ctest capi/ctest/ctest.c -Icapi/include -L_build -lmpgo -Wl,-rpath,$(CURDIR)/_build
	./_build/ctest

test-go: ## go test ./... (without -race)
	$(GO) test ./...

test-race: ## go test -race ./...
	$(GO) test -race ./...

test-py: build ## pytest on the Python API and the tutorials
	$(PYTEST) -q tests

test: lint test-race test-c test-py ## everything CI runs

bench: build ## benchmarks against the standard library, side by side
	PYTHONPATH=$(CURDIR)/python $(PY) bench/run.py

.PHONY: soak
soak: build ## 100k Queues and Pipes, a Pool through 1M tasks: RSS and fds vs the stdlib
	PYTHONPATH=$(CURDIR)/python $(PY) bench/soak.py

lint: ## gofmt, go vet and the one-way dependency rule
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	@! $(GO) list -deps ./core/... | grep -E '^C$$|/capi|/pybind|go-python' || (echo "core must not import cgo, capi, pybind or gopy"; exit 1)

fmt: ## gofmt -w
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build products
	rm -rf _build build dist python/mpgo/_native *.egg-info python/*.egg-info
