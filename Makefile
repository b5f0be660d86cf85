# Redis Manager — `make help` lists the targets.
SHELL := /bin/bash
BIN   := bin/redis-manager
GO    ?= go
SUDO  ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
DATA_DIR ?= ./redis-manager-data
LISTEN   ?= 127.0.0.1:7800
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN_DIR)/staticcheck
# promtool checks and unit-tests deploy/prometheus. Built once from the Go
# module proxy (the prometheus module tags v0.316.0 for Prometheus 3.x)
# under a versioned name, so a version bump builds the new one; a cold
# build takes minutes (docs/testing.md).
PROMTOOL_VERSION := v0.316.0
PROMTOOL := $(GOBIN_DIR)/promtool-$(PROMTOOL_VERSION)

.PHONY: test-rules bench-scale ui-vendor bench-timeseries bench-k8s bench-console screenshots test-ui help run build test test-race test-unit test-e2e lint bench chaos deps deps-test clean k8s-node-up k8s-node-down k8s-node-image test-k8s

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/redis-manager
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/redis-manager

deps: ## install redis-server from Debian's packages when missing
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server (apt-get)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server redis-tools >/dev/null; }

deps-test: deps ## install what the tests need: redis-server, mariadb-server, python3-redis, nodejs and npm (ioredis comes from npm at test time), chromium (the console's browser tests), iptables (TestAlertsReplicaLag)
	@command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || { \
		echo "installing mariadb-server (apt-get)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq mariadb-server >/dev/null; }
	@need=""; /usr/bin/python3 -c 'import redis.sentinel' 2>/dev/null || need="$$need python3-redis"; \
		command -v node >/dev/null || need="$$need nodejs"; command -v npm >/dev/null || need="$$need npm"; \
		[ -x /usr/bin/chromium ] || command -v chromium >/dev/null || need="$$need chromium"; \
		command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || need="$$need iptables"; \
		[ -z "$$need" ] || { echo "installing$$need (apt-get)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$need >/dev/null; }

run: deps build ## build, install redis-server if missing, start the manager on the embedded defaults
	@echo "starting redis-manager: REST API at http://$(LISTEN)/api/v1, data in $(DATA_DIR)"
	@echo "  token: $(DATA_DIR)/admin.token   try: $(BIN) cluster create demo"
	@echo "  console: http://$(LISTEN)/ (user admin, password in $(DATA_DIR)/admin.password)"
	$(BIN) serve --listen $(LISTEN) --data-dir $(DATA_DIR)

UNIT_PKGS = $$($(GO) list ./... | grep -v /internal/e2e)

test: deps-test lint test-rules ## what CI runs: vet, gofmt, staticcheck, promtool on deploy/prometheus, unit tests with -race, end-to-end tests with real processes, then test-k8s
	CI=true $(GO) test -race -count=1 -timeout 15m $(UNIT_PKGS)
	CI=true $(GO) test -count=1 -timeout 30m ./internal/e2e/
	CI=true $(GO) test -count=1 -timeout 10m ./internal/e2eui/
	$(MAKE) test-k8s

test-unit: ## the tests without the end-to-end package, with -race
	$(GO) test -race -count=1 $(UNIT_PKGS)

test-race: deps-test ## unit tests with -race, and e2e with a -race manager that fails tests on any data race
	CI=true REDIS_MANAGER_TEST_RACE=1 $(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -v /internal/e2ek8s)

test-e2e: ## only the end-to-end tests
	$(GO) test -count=1 -v -timeout 30m ./internal/e2e/

test-ui: deps-test ## only the console's browser tests (headless Chromium against real managers; docs/testing.md)
	CI=true $(GO) test -count=1 -v -timeout 10m ./internal/e2eui/

screenshots: deps-test ## PNGs of the console's main pages into docs/ui/ (headless Chromium, real manager and clusters)
	REDIS_MANAGER_SCREENSHOTS=$(CURDIR)/docs/ui CI=true $(GO) test -count=1 -v -timeout 10m -run 'TestConsole$$' ./internal/e2eui/

test-rules: ## promtool check rules and test rules on deploy/prometheus (promtool built once with go install, pinned)
	@[ -x $(PROMTOOL) ] || { echo "building promtool $(PROMTOOL_VERSION) into $(PROMTOOL) (go install; minutes)"; \
		tmp=$$(mktemp -d) && (cd / && GOBIN=$$tmp $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)) && \
		mv $$tmp/promtool $(PROMTOOL) && rmdir $$tmp; }
	cd deploy/prometheus && $(PROMTOOL) check rules redis-manager.rules.yml && $(PROMTOOL) test rules redis-manager.rules.test.yml

bench-console: deps-test build ## console render time (median, p99 over 200 requests) and first-load bytes, overview and cluster page, 100 clusters / 1000 instances in the store
	$(GO) run ./bench/console -bin $(BIN) -requests 200

lint: ## go vet, gofmt and staticcheck
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	@[ -x $(STATICCHECK) ] || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(STATICCHECK) ./...

bench: deps-test build ## benchmarks, each next to the plain tool: create, replica sync (1 GB), failover (10 kills × go-redis, redis-py, ioredis; plain Sentinel at 5000 and 1000 ms; 5 master-then-successor kills), backup engine and through the manager (600 MB; diskless vs redis-cli --rdb in 5 alternating pairs at 150 MB and 1 GB), restore, API under 1000 slow connections; leader takeover (5 kills); and time-series memory (bytes per instance, manager RSS with 1,000 instances' 24 h)
	$(GO) run ./bench/create -bin $(BIN) -runs 5
	$(GO) run ./bench/replica -bin $(BIN) -gb 1
	$(GO) run ./bench/failover -bin $(BIN) -runs 10 -successor-runs 5
	$(GO) run ./bench/backup -size-mb 600 -runs 3
	$(GO) run ./bench/backup -size-mb 150 -pairs 5
	$(GO) run ./bench/backup -size-mb 1000 -pairs 5
	$(GO) run ./bench/restore -bin $(BIN) -mb 600
	$(GO) run ./bench/connections -bin $(BIN) -n 1000
	$(GO) run ./bench/takeover -bin $(BIN) -runs 5
	$(GO) run ./bench/console -bin $(BIN) -requests 200
	$(GO) run ./bench/timeseries -instances 1000

chaos: deps build ## chaos test: random kills under write load for CHAOS_DURATION (default 5m)
	REDIS_MANAGER_CHAOS_DURATION=$${CHAOS_DURATION:-5m} $(GO) test -count=1 -v -timeout 30m -run 'TestChaos$$' ./internal/e2e/

# The node's binaries are cached in the invoking user's cache (also under sudo).
K8S_NODE_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/redis-manager/k8s-node
K8S_ENV := env PATH="$$PATH" K8S_NODE_CACHE=$(K8S_NODE_CACHE)

bench-scale: deps build ## 1,000 instances (20 clusters × 16 shards × 1+2, 3 Sentinels each) through the API: manager CPU and RSS next to Redis and Sentinel, /metrics scrape, GET /api/v1/clusters p99, killed-master notice (ports 28000-31999)
	$(GO) run ./bench/scale -bin $(BIN)

bench-timeseries: ## time-series memory only: bytes per instance (typical, worst) and the manager's RSS with 1,000 instances' full 24 h
	$(GO) run ./bench/timeseries -instances 1000

bench-k8s: build ## on a running node (root; KUBECONFIG, IMAGE and DNS from hack/k8s-node/up): create 1x2x3 -> Ready and replica pod deleted -> back, median of 5; master pod force-deleted under SET + WAIT 1 -> write unavailability, 10 runs next to plain Sentinel StatefulSets
	$(GO) run ./bench/k8s -bin bin/redis-manager -image "$$IMAGE" -runs 5
	$(GO) run ./bench/k8s-backup -bin bin/redis-manager -image "$$IMAGE" -mb 256 -runs 3
	$(GO) run ./bench/k8s-failover -bin bin/redis-manager -image "$$IMAGE" -dns "$$DNS" -runs 10

test-k8s: ## Kubernetes tests (./internal/e2ek8s, ./hack/k8s-node/...) on the test node: reuses a node that is up (image rebuilt) or starts one and removes it after (root)
	$(SUDO) $(K8S_ENV) CI=true REDIS_MANAGER_TEST_PORT_BASE="$$REDIS_MANAGER_TEST_PORT_BASE" \
		REDIS_MANAGER_K8S_KUBECONFIG="$$REDIS_MANAGER_K8S_KUBECONFIG" REDIS_MANAGER_K8S_DNS="$$REDIS_MANAGER_K8S_DNS" \
		hack/k8s-node/test

k8s-node-up: ## build (cached) and start a one-node Kubernetes on this machine (root); prints KUBECONFIG=, IMAGE=, DNS= last (docs/kubernetes.md)
	$(SUDO) $(K8S_ENV) hack/k8s-node/up

k8s-node-image: ## rebuild the redis-manager image from this checkout and import it into the running node; prints IMAGE= last
	$(SUDO) $(K8S_ENV) hack/k8s-node/image

k8s-node-down: ## stop and remove the node k8s-node-up started: processes, mounts, bridge, routes, rules, files
	$(SUDO) hack/k8s-node/down

clean: ## remove build output
	rm -rf bin

HTMX_VERSION  := 2.0.11
UPLOT_VERSION := 1.6.32
VENDOR_DIR    := internal/console/static/vendor

ui-vendor: ## refresh the console's vendored htmx and uPlot from npm (pinned versions; the result is committed, nothing else needs npm)
	@command -v npm >/dev/null || { echo "ui-vendor needs npm"; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	( cd "$$tmp" && npm pack --silent htmx.org@$(HTMX_VERSION) uplot@$(UPLOT_VERSION) >/dev/null ) && \
	mkdir -p "$$tmp/htmx" "$$tmp/uplot" && \
	tar -xzf "$$tmp"/htmx.org-$(HTMX_VERSION).tgz -C "$$tmp/htmx" && \
	tar -xzf "$$tmp"/uplot-$(UPLOT_VERSION).tgz -C "$$tmp/uplot" && \
	mkdir -p $(VENDOR_DIR) && \
	cp "$$tmp/htmx/package/dist/htmx.min.js" $(VENDOR_DIR)/htmx.min.js && \
	cp "$$tmp/htmx/package/LICENSE" $(VENDOR_DIR)/htmx.LICENSE && \
	cp "$$tmp/uplot/package/dist/uPlot.iife.min.js" $(VENDOR_DIR)/uPlot.iife.min.js && \
	cp "$$tmp/uplot/package/dist/uPlot.min.css" $(VENDOR_DIR)/uPlot.min.css && \
	cp "$$tmp/uplot/package/LICENSE" $(VENDOR_DIR)/uPlot.LICENSE && \
	printf 'htmx.org %s\nuplot %s\n' $(HTMX_VERSION) $(UPLOT_VERSION) > $(VENDOR_DIR)/VERSIONS && \
	echo "vendored htmx.org $(HTMX_VERSION) and uplot $(UPLOT_VERSION) into $(VENDOR_DIR)"
