# vault-plugin-salesforce
#   make demo   Vault + plugin + Salesforce emulator, minting a real token end to end
#   make test   vet, unit tests (-race) and end-to-end tests against a real Vault
SHELL        := /usr/bin/env bash
PLUGIN       := vault-plugin-salesforce
VERSION      ?= v0.1.0
COMMIT       := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BIN_DIR      := $(CURDIR)/bin
PLUGIN_DIR   := $(BIN_DIR)/plugins
LDFLAGS      := -X github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/version.Version=$(VERSION) \
                -X github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/version.Commit=$(COMMIT)
GO_TEST_FLAGS ?=
# Tools are built from the Go module proxy at pinned versions and cached outside the checkout,
# so fresh clones (CI) on the same machine reuse them.
TOOLS_DIR    ?= $(HOME)/.cache/vault-plugin-salesforce/tools
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(TOOLS_DIR)/golangci-lint-$(GOLANGCI_LINT_VERSION)
RELEASE_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

.PHONY: all build emulator vault terraform sf demo test unit fuzz e2e vet fmt fmtcheck lint release clean

all: build

## build: the plugin binary, in its own plugin directory (Vault resolves plugins there)
build:
	@mkdir -p $(PLUGIN_DIR)
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(PLUGIN_DIR)/$(PLUGIN) ./cmd/$(PLUGIN)

## emulator: the Salesforce emulator as a process (built with the plugin's CGO_ENABLED=0 and
##           -trimpath, so that the standard library compiled for one serves the other: half the
##           cold build of `make demo`)
emulator:
	@mkdir -p $(BIN_DIR)
	CGO_ENABLED=0 go build -trimpath -o $(BIN_DIR)/salesforce-emulator ./cmd/salesforce-emulator

## vault: the pinned Vault binary (built once from the Go module proxy, then cached)
vault:
	@scripts/vault.sh

## terraform: the pinned Terraform and Vault provider (built once, then cached); prints their folder
terraform:
	@scripts/terraform.sh

## sf: the pinned Salesforce CLI (installed once from npm, then cached); prints its folder
sf:
	@scripts/sf.sh

## demo: start Vault + plugin + emulator and mint a token end to end (DEMO_EXIT=1 to stop after)
demo: build emulator
	@scripts/demo.sh

## test: everything CI runs
test: vet unit fuzz e2e

vet:
	go vet ./...

unit:
	go test -race -count=1 $(GO_TEST_FLAGS) $$(go list ./... | grep -v -e /e2e -e /bench)

## e2e: end-to-end tests, a real Vault (dev mode and a 3-node Raft cluster) running the built plugin
##      (-parallel 8: the rotation tests mostly wait for Vault's 60 s periodic tick, not for CPU),
##      then the benchmark's smoke (correctness only, ~1.5 min: one consumer-secret rotation waits out
##      its 1-minute overlap; `make bench` is the full run)
##      Terraform + the Vault provider (built from the module proxy, ~7 min once) and the
##      Salesforce CLI (npm, ~1 min once) are made ready first, outside the tests' timeouts.
e2e: build emulator
	scripts/sf.sh >/dev/null
	VAULT_BIN="$$(scripts/vault.sh)" TERRAFORM_DIR="$$(scripts/terraform.sh)" PLUGIN_DIR=$(PLUGIN_DIR) \
	  PLUGIN_VERSION=$(VERSION) scripts/e2e.sh $(GO_TEST_FLAGS)
	VAULT_BIN="$$(scripts/vault.sh)" PLUGIN_DIR=$(PLUGIN_DIR) PLUGIN_VERSION=$(VERSION) \
	  go test -race -count=1 -timeout 10m $(GO_TEST_FLAGS) ./bench/...

## bench: the full performance benchmark against a real Vault (~15 min); writes docs/BENCHMARKS.md
bench: build emulator
	@scripts/bench.sh

## compat: the e2e core against each Vault in COMPAT_VERSIONS (built via scripts/vault.sh, ~20 min
##         cold each); writes the table in docs/COMPATIBILITY.md. Run before a release, commit it.
.PHONY: compat
compat: build emulator
	PLUGIN_DIR=$(PLUGIN_DIR) PLUGIN_VERSION=$(VERSION) scripts/compat.sh

## fuzz: each fuzz target for a bounded time (FUZZTIME, default 10s), corpus in testdata/fuzz
FUZZTIME ?= 10s
FUZZ_TARGETS := backend/keyutil:FuzzParsePrivateKeyPEM backend/keyutil:FuzzParseCertificatePEM \
                backend/salesforce:FuzzRewriteCertificate backend/salesforce:FuzzExtractRecord \
                backend/salesforce:FuzzParseErrors
fuzz:
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh $(FUZZ_TARGETS)

fmt:
	gofmt -w $$(git ls-files '*.go')

fmtcheck:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }

## lint: golangci-lint with the checks in .golangci.yml (installed on first use)
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	@mkdir -p $(TOOLS_DIR)
	GOBIN=$(TOOLS_DIR) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(TOOLS_DIR)/golangci-lint $@

## release: static plugin binaries for linux/darwin on amd64/arm64, each with a CycloneDX SBOM,
##          SHA256SUMS over all of them, signed with RELEASE_SIGNING_KEY (an OpenSSH private key)
##          into SHA256SUMS.sig, in DIST_DIR (dist/). Verifying: docs/release.md.
DIST_DIR ?= $(CURDIR)/dist
RELEASE_SIGNING_KEY ?=
CYCLONEDX_GOMOD_VERSION := v1.10.0
CYCLONEDX_GOMOD := $(TOOLS_DIR)/cyclonedx-gomod-$(CYCLONEDX_GOMOD_VERSION)
release: $(CYCLONEDX_GOMOD)
	@[ -n "$(RELEASE_SIGNING_KEY)" ] || { echo "release: set RELEASE_SIGNING_KEY to the OpenSSH private key that signs SHA256SUMS (docs/release.md)"; exit 1; }
	rm -rf $(DIST_DIR) && mkdir -p $(DIST_DIR)
	for p in $(RELEASE_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; bin=$(DIST_DIR)/$(PLUGIN)_$(VERSION)_$${os}_$${arch}; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags "$(LDFLAGS)" \
	    -o $$bin ./cmd/$(PLUGIN) || exit 1; \
	  $(CYCLONEDX_GOMOD) bin -json -version $(VERSION) -output $$bin.cdx.json $$bin || exit 1; \
	done
	cd $(DIST_DIR) && sha256sum $(PLUGIN)_* > SHA256SUMS && cat SHA256SUMS
	scripts/release.sh sign $(RELEASE_SIGNING_KEY) $(DIST_DIR)

$(CYCLONEDX_GOMOD):
	@mkdir -p $(TOOLS_DIR)
	GOBIN=$(TOOLS_DIR) go install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_GOMOD_VERSION)
	mv $(TOOLS_DIR)/cyclonedx-gomod $@

## oci-image: the plugin as an OCI image for Vault's containerized plugins (Containerfile), from
##            a `make release` in DIST_DIR; needs docker or podman (OCI_BUILDER). Not run in CI.
OCI_BUILDER ?= docker
OCI_ARCH ?= amd64
.PHONY: oci-image
oci-image:
	$(OCI_BUILDER) build -f Containerfile --platform linux/$(OCI_ARCH) --build-arg VERSION=$(VERSION) \
	  -t $(PLUGIN):$(VERSION:v%=%) $(DIST_DIR)

clean:
	rm -rf $(BIN_DIR) dist
