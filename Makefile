# Steward: build, run and test. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/stewardhq/steward/services/cli.Version=$(VERSION) -X github.com/stewardhq/steward/agent/cli.Version=$(VERSION)
MODULES := contracts telemetry services agent integration
PKGS := $(foreach m,$(MODULES),./$(m)/...)
TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: help build run test vet fmt-check docs bench clean images lab lab-down lab-test

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/steward and bin/steward-agent (static, CGO_ENABLED=0)
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/steward ./services/cmd/steward
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/steward-agent ./agent/cmd/steward-agent

run: build ## run a site (embedded NATS under ./steward-data) and one local agent
	@deploy/run-local.sh

test: vet fmt-check ## vet, gofmt check, and every module's tests with -race
	$(GO) test $(TEST_FLAGS) $(PKGS)

vet: ## go vet every module
	$(GO) vet $(PKGS)

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

BENCH ?=
AGENTS ?= 2000
bench: build ## benchmark suite vs raw baselines: make bench [BENCH=name,...] [AGENTS=10000]; writes bench/results.json
	cd services && CGO_ENABLED=0 $(GO) build -o ../bin/nats-server github.com/nats-io/nats-server/v2
	CGO_ENABLED=0 $(GO) build -o bin/steward-sim ./agent/cmd/steward-sim
	$(GO) run ./integration/cmd/steward-bench -agents $(AGENTS) $(if $(BENCH),-bench $(BENCH))

docs: ## regenerate docs/cli from the commands' own help
	$(GO) test ./integration/ -run TestDocsCurrent -count=1 -update-docs

images: ## the lab's images, FROM scratch: static binaries, busybox-static (deploy/images.sh)
	@deploy/images.sh

lab: ## the lab in docker-compose: images, up, three agents online; prints how to use it
	@deploy/lab.sh up

lab-down: ## stop the lab (and the cluster variant) and delete its volumes
	@deploy/lab.sh down

lab-test: ## the lab from nothing, the scenario, the cluster variant with kills; prints its figures
	@deploy/lab-test.sh

clean: ## remove binaries (not ./steward-data)
	rm -rf bin
