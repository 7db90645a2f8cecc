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
demo: ## Start a local cluster in CLUSTER_DIR, install wasmkube with helm, run a Wasm pod; leaves the cluster up.
	bash $(TOOLS) install debian containerd kubernetes etcd helm
	@if [ -e $(CLUSTER_DIR)/cluster.json ]; then echo "==> using the local cluster in $(CLUSTER_DIR)"; \
	else $(WITH_TOOLS) go run ./test/cluster/cmd/localcluster up --work-dir $(CLUSTER_DIR); fi
	$(WITH_TOOLS) go run ./test/e2e/cmd/demo --work-dir $(CLUSTER_DIR)

.PHONY: demo-down
demo-down: cluster-down ## Stop the demo's local cluster and remove everything it created.

.PHONY: e2e
e2e: ## Only the end-to-end test, on its own local cluster (or KUBECONFIG's with WASMKUBE_E2E_EXISTING_CLUSTER=1).
	bash $(TOOLS) install debian containerd kubernetes etcd helm
	$(WITH_TOOLS) go test -count=1 -timeout 30m -v ./test/e2e/

.PHONY: test
test: tools lint verify-generate ## Build or install every tool the tests need, lint, and run all tests.
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
fuzz: ## Run every fuzz target of the tree (found with go test -list), FUZZTIME each (default 60s).
	@for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for target in $$(go test -list '^Fuzz' "$$pkg" | grep '^Fuzz'); do \
			echo "==> $$pkg $$target"; \
			go test "$$pkg" -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME); \
		done; \
	done

.PHONY: bench-restart
bench-restart: ## Time signal restarts of a supervised containerd 1.6 and 2.4.2 (SIGTERM -> CRI ready).
	bash $(TOOLS) install debian containerd
	$(WITH_TOOLS) go test ./pkg/restart -run '^$$' -bench '^BenchmarkSignalRestart$$' -benchtime 20x

.PHONY: bench-installer
bench-installer: ## Median bare restart, install, re-run and uninstall on containerd 2.4.2; last line: install/restart ratio.
	bash $(TOOLS) install debian containerd
	@table=$$(mktemp) && trap 'rm -f "$$table"' EXIT && \
	$(WITH_TOOLS) go test ./test/installer -run '^$$' -bench '^BenchmarkInstaller$$' -benchtime 1x -count 1 \
		-args -bench-table="$$table" >/dev/null && cat "$$table"

##@ Code generation

# GENERATED lists every path `make generate` writes; verify-generate fails when any of them differs from git.
# The Helm chart holds copies of the CRDs and the RBAC (see generate-copies), so a stale chart fails too.
GENERATED := api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac \
	charts/wasmkube/crds charts/wasmkube/files/rbac charts/wasmkube/files/policy

# The CRD generator reads only the API package: it would take the controller's cache records, which embed
# ObjectMeta, for API types and refuse their untagged fields.
.PHONY: generate
generate: ## Regenerate deepcopy code, the Shim CRD and the manager's RBAC with controller-gen v0.23.0.
	bash $(TOOLS) install controller-gen
	$(WITH_TOOLS) sh -c '"$$WASMKUBE_CONTROLLER_GEN" object:headerFile=hack/boilerplate.go.txt paths=./api/...'
	rm -rf config/crd/bases config/rbac
	$(WITH_TOOLS) sh -c '"$$WASMKUBE_CONTROLLER_GEN" crd paths=./api/... output:crd:artifacts:config=config/crd/bases'
	$(WITH_TOOLS) sh -c '"$$WASMKUBE_CONTROLLER_GEN" rbac:roleName=wasmkube-manager paths=./internal/controller/... \
		output:rbac:artifacts:config=config/rbac'
	$(MAKE) --no-print-directory generate-copies

.PHONY: generate-copies
generate-copies: # Copies of generated and hand-written manifests in the chart (crds/, files/).
	rm -rf charts/wasmkube/crds charts/wasmkube/files/rbac charts/wasmkube/files/policy
	mkdir -p charts/wasmkube/crds charts/wasmkube/files/rbac charts/wasmkube/files/policy
	cp config/crd/bases/*.yaml charts/wasmkube/crds/
	cp config/rbac/role.yaml charts/wasmkube/files/rbac/role.yaml
	cp config/policy/*.yaml charts/wasmkube/files/policy/

.PHONY: verify-generate
verify-generate: generate ## Fail when generated files are stale (run `make generate` and commit).
	@out=$$(git status --porcelain --untracked-files=all -- $(GENERATED)); \
	if [ -n "$$out" ]; then echo "generated files are stale; run 'make generate' and commit:" >&2; echo "$$out" >&2; exit 1; fi

##@ Images and chart

IMAGE_REGISTRY ?= ghcr.io/wasmkube
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/wasmkube/Chart.yaml)
IMAGES_OUT ?= _output/images

.PHONY: images
images: ## Build the manager and node-installer images (linux/amd64+arm64) into _output/images, without Docker.
	go run ./images/build build --registry $(IMAGE_REGISTRY) --tag $(IMAGE_TAG) --out $(IMAGES_OUT)

.PHONY: push
push: images ## Push the images: make push REGISTRY=ghcr.io/you [IMAGE_TAG=v1] [PUSH_FLAGS=--insecure].
	@if [ -z "$(REGISTRY)" ]; then echo "set REGISTRY, e.g. make push REGISTRY=ghcr.io/you" >&2; exit 1; fi
	go run ./images/build push --registry $(REGISTRY) --tag $(IMAGE_TAG) --out $(IMAGES_OUT) $(PUSH_FLAGS)

.PHONY: chart-golden
chart-golden: ## Refresh the chart's golden renderings (test/chart/testdata/golden) after a deliberate change.
	$(WITH_TOOLS) go test ./test/chart -run TestTemplateGolden -update -count=1

##@ Benchmarks

N ?= 1000 5000
RUNS ?= 3
KCM_QPS ?= 500

.PHONY: bench-shim
bench-shim: ## Container start -> first output: wazero shim (tiny, Go cold/cached) vs runc on containerd 2.4.2; last line: wasm/runc ratio.
	bash $(TOOLS) install containerd
	$(WITH_TOOLS) go test ./test/bench/shim -count=1 -timeout 30m -run '^TestShimStartup$$' -v -args -shim.bench | \
		grep -v -e '^=== RUN' -e '^--- PASS' -e '^PASS$$' -e '^ok '

.PHONY: bench-scale
bench-scale: ## Job-per-node floor, chart-default and 100% rollouts on N KWOK nodes (default "1000 5000"), RUNS times; last two lines: ratios.
	bash $(TOOLS) install kubernetes etcd kwok
	$(WITH_TOOLS) go test ./test/scale -run '^TestBenchScale$$' -count=1 -v -timeout 240m \
		-args -sizes="$(N)" -runs=$(RUNS) -kcm-qps=$(KCM_QPS) $(BENCH_SCALE_FLAGS) | \
		grep -v -e '^=== RUN' -e '^--- PASS' -e '^PASS$$' -e '^ok '

##@ Local cluster

CLUSTER_DIR ?= /tmp/wasmkube-cluster

.PHONY: cluster-up
cluster-up: ## Start a real single-node Kubernetes cluster in CLUSTER_DIR (default /tmp/wasmkube-cluster); prints KUBECONFIG.
	bash $(TOOLS) install debian containerd kubernetes etcd
	$(WITH_TOOLS) go run ./test/cluster/cmd/localcluster up --work-dir $(CLUSTER_DIR)

.PHONY: cluster-down
cluster-down: ## Stop the local cluster in CLUSTER_DIR and remove everything it created.
	$(WITH_TOOLS) go run ./test/cluster/cmd/localcluster down --work-dir $(CLUSTER_DIR)
