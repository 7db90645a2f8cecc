# wasmkube — run `make help` for the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

TOOLS := hack/tools.sh
WITH_TOOLS := bash $(TOOLS) exec --
GO_TEST_FLAGS ?= -count=1 -timeout 40m
FUZZTIME ?= 60s

##@ Main

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*##/ {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2} /^##@/ {printf "\n%s\n", substr($$0, 5)}' $(MAKEFILE_LIST)

.PHONY: demo
demo: ## Run wasmkube on an embedded local cluster (not available yet).
	@echo "make demo is not available yet: it arrives with the local cluster and end-to-end tests." >&2
	@echo "Today, 'make test' builds the tools and runs every test on real containerd daemons." >&2
	@exit 1

.PHONY: test
test: tools lint ## Build or install every tool the tests need, lint, and run all tests.
	$(WITH_TOOLS) go test $(GO_TEST_FLAGS) ./...

##@ Development

.PHONY: tools
tools: ## Install or build the test tools into $${XDG_CACHE_HOME:-~/.cache}/wasmkube (cached by version).
	bash $(TOOLS) install

.PHONY: unit
unit: ## Run the tests that need no daemon or external binary.
	go test -short ./...

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: ## gofmt check, go vet and staticcheck.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt'ed:" $$out >&2; exit 1; fi
	go vet ./...
	bash $(TOOLS) install staticcheck
	$(WITH_TOOLS) sh -c '"$$WASMKUBE_STATICCHECK" ./...'

.PHONY: fuzz
fuzz: ## Fuzz the containerd config patcher for FUZZTIME (default 60s).
	go test ./pkg/containerdcfg -run '^$$' -fuzz '^FuzzPatch$$' -fuzztime $(FUZZTIME)
