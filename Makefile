# Developer commands. `make test` is what CI runs (through .ci/run): it installs what a fresh Debian
# machine lacks, then runs the linters and every test, real dockerd and Consul included.

CACHE   ?= $(or $(ECSR_CACHE),$(HOME)/.cache/ecs-registrator)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO      ?= go
export ECSR_CACHE := $(CACHE)

IMAGE   ?= ecs-registrator:latest
# `make image` builds one image per architecture, tagged $(IMAGE)-<arch> (ecs-registrator:latest-amd64,
# ecs-registrator:latest-arm64), and tags $(IMAGE) itself as the one the Docker daemon runs natively
# (the demo and the smoke test run it). ECS hosts pull a manifest list of them: packaging/README.md.
IMAGE_ARCHS ?= amd64 arm64
# The CA bundle the image carries (TLS to the ECS API and to a Consul agent with HTTPS).
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

FUZZTIME ?= 1m

# The current Docker Engine (the Engine 29 line, API 1.5x, as on current ECS-optimized AMIs) that
# scripts/setup.sh builds from the Go module proxy and starts beside Debian's docker.io 20.10 (API 1.41).
# The core end-to-end tests run against it too: registration, drain, health mirroring, ID races, ECS
# enrichment, the mesh and the gliderlabs corpus. (Tests that start a private dockerd use Debian's.)
ENGINE_HOST  ?= unix:///run/ecsr-engine.sock
ENGINE_TESTS ?= ^(TestRegistersBridgeContainerAndRemovesIt|TestSeveralPortsAndUDP|TestOptInIgnoreAndBadLabelsStayPerContainer|TestForeignServicesAreNeverTouched|TestSIGTERMExitsCleanlyAndLeavesRegistrations|TestDrainOnStopBeforeTheContainerDies|TestDrainMaintenanceKeepsServiceVisibleButNotPassing|TestHostDrainSpotInterruption|TestHostDrainAutoScalingTerminated|TestHTTPAndTCPChecksFollowTheEndpoint|TestDockerHealthcheckMirrored|TestMirrorTTLRefreshedUntilTheDaemonStops|TestServiceIDClashPairs|TestECS(NetworkModes|ServiceConnectBridge|DrainOnDesiredStopped|HealthMirrored|TagsFromTaskMetadata)|TestConnectMeshEndToEnd|TestGliderlabs(Corpus|CorpusFlags|DropIn|MigrationNoGap|CommandLine))$$

.PHONY: build image image-context test check lint setup bench fuzz demo clean clean-all

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/ecs-registrator ./cmd/ecs-registrator

# The images, built offline and without emulation: the base is scratch (no RUN step), so each
# architecture's image is its cross-compiled static binary and the host's CA bundle, in a build context
# of its own (dist/image/linux-<arch>/), built by the legacy builder with --platform so that the image
# records that architecture (the Dockerfile says why its instructions come in the order they do).
image:
	@command -v docker >/dev/null || { echo "make image needs the docker CLI (scripts/setup.sh installs it)"; exit 1; }
	@test -r $(CA_BUNDLE) || { echo "no $(CA_BUNDLE) (apt-get install ca-certificates)"; exit 1; }
	@case "$(notdir $(IMAGE))" in *:*) ;; *) echo "IMAGE=$(IMAGE) needs a tag (name:tag): each architecture's image is tagged <tag>-<arch>"; exit 1;; esac
	@set -e; \
	native=$$(docker version -f '{{.Server.Arch}}'); \
	case " $(IMAGE_ARCHS) " in *" $$native "*) ;; *) echo "the Docker daemon is $$native, which IMAGE_ARCHS ($(IMAGE_ARCHS)) lacks"; exit 1;; esac; \
	revision=$$(git rev-parse HEAD 2>/dev/null || echo unknown); \
	for arch in $(IMAGE_ARCHS); do \
		dir=dist/image/linux-$$arch; \
		mkdir -p $$dir; \
		echo "GOOS=linux GOARCH=$$arch go build -> $$dir/ecs-registrator"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" \
			-o $$dir/ecs-registrator ./cmd/ecs-registrator; \
		$(call image_context,$$dir) || exit 1; \
		DOCKER_BUILDKIT=0 docker build -q --platform linux/$$arch -t $(IMAGE)-$$arch --build-arg VERSION=$(VERSION) \
			--build-arg REVISION=$$revision -f Dockerfile $$dir >/dev/null; \
		got=$$(docker image inspect -f '{{.Os}}/{{.Architecture}}' $(IMAGE)-$$arch); \
		if [ "$$got" != "linux/$$arch" ]; then echo "$(IMAGE)-$$arch records $$got, not linux/$$arch"; exit 1; fi; \
		docker image inspect -f "$(IMAGE)-$$arch: {{.Os}}/{{.Architecture}}, {{.Size}} bytes" $(IMAGE)-$$arch; \
	done; \
	docker tag $(IMAGE)-$$native $(IMAGE); \
	echo "$(IMAGE): $(IMAGE)-$$native, the Docker daemon's architecture"

# The rest of an image's build context, beside the binary make image puts in DIR: the CA bundle, and
# bin/registrator, a symbolic link to /ecs-registrator, so that a task definition written for
# gliderlabs/registrator's image (entryPoint ["/bin/registrator"]) runs this daemon unchanged. A link
# in a directory survives the Dockerfile's COPY of that directory (the builder copies a directory as
# a tar stream, links kept); a link named as a COPY source would be followed and the 13 MB binary
# copied a second time. packaging's TestImageAnswersAtBothPaths builds a context with this target
# and copies it as the Dockerfile says. (A function, not a recursive make in the image recipe: make
# runs a line that names $(MAKE) even under -n, and `make -n image` must build nothing.)
image_context = cp $(CA_BUNDLE) $(1)/ca-certificates.crt && mkdir -p $(1)/bin && ln -sfn /ecs-registrator $(1)/bin/registrator
image-context:
	@test -n "$(DIR)" || { echo "image-context needs DIR=<build context>"; exit 1; }
	$(call image_context,$(DIR))

# Everything the tests need (scripts/setup.sh says what); make demo sets up only its own part.
setup:
	@bash scripts/setup.sh test

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(CACHE)/bin/staticcheck ./...

# Test artifacts (the status page's screenshots) are kept in artifacts/. Packages run one at a time
# (-p 1; the tests inside each still run in parallel): on 2 cores, cmd's and registrator's end-to-end
# tests together overload one dockerd, and their timing bounds failed by turns on a slower machine.
test: setup lint
	mkdir -p artifacts
	@echo "== docker engine $$(docker version -f '{{.Server.Version}} API {{.Server.APIVersion}}') at $${DOCKER_HOST:-unix:///var/run/docker.sock}: every test"
	$(GO) test -p 1 -race -shuffle=on -count=1 -timeout 15m -artifacts -outputdir $(CURDIR)/artifacts ./...
	@echo "== docker engine $$(DOCKER_HOST=$(ENGINE_HOST) docker version -f '{{.Server.Version}} API {{.Server.APIVersion}}') at $(ENGINE_HOST): the core end-to-end tests"
	DOCKER_HOST=$(ENGINE_HOST) $(GO) test -p 1 -race -shuffle=on -count=1 -timeout 10m -run '$(ENGINE_TESTS)' ./registrator/ ./registrator/desired/ ./cmd/ecs-registrator/

check: test

# Go micro-benchmarks (6 runs each, for medians) and the end-to-end harness; outputs kept in bin/.
# ECSR_GLIDERLABS_BIN=/path/to/registrator adds gliderlabs/registrator's figures to the harness's cost table.
# pipefail: a failing benchmark fails make, not just tee.
bench: SHELL := /bin/bash
bench: .SHELLFLAGS := -o pipefail -c
bench: setup
	mkdir -p bin
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./registrator/ ./registrator/desired/ ./ecsmeta/ | tee bin/bench-go.txt
	ECSR_E2E_BENCH=1 $(GO) test -count=1 -timeout 30m -run TestEndToEnd -v ./internal/bench/ | tee bin/bench-e2e.txt

# Every fuzz target for FUZZTIME each (CI runs their seed corpora as part of make test).
fuzz:
	@set -e; for pkg in ./registrator/desired ./internal/tmpl ./health ./ecsmeta; do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# The demo needs Docker Engine and Consul only: not the second engine, Chromium, staticcheck or the
# metadata emulator that the tests need. It builds Consul only when no agent answers on 127.0.0.1:8500.
# Setup comes first: on a fresh machine the build needs its CA certificates to reach the module proxy.
demo:
	@bash scripts/setup.sh demo
	@$(MAKE) --no-print-directory build
	@bash scripts/demo.sh

clean:
	rm -rf bin artifacts dist

# Undoes what demo, test and bench set up and started on this machine, but for the Debian packages
# and Go's caches, whose removal it prints (scripts/clean-all.sh says what and why).
clean-all:
	@IMAGE='$(IMAGE)' IMAGE_ARCHS='$(IMAGE_ARCHS)' bash scripts/clean-all.sh
	rm -rf bin artifacts dist
