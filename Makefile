# hearth: `make run` starts it on the sample config; `make test` runs every test.
GO  ?= go
BIN := bin/hearth
WEB := webclient

.PHONY: run build web test vet fuzz soak bench clean

run: build
	./$(BIN) serve -config config.yaml

# The web chat is bundled into webclient/dist, which the binary embeds.
build: web
	$(GO) build -o $(BIN) ./cmd/hearth

web: $(WEB)/node_modules/.package-lock.json
	cd $(WEB) && npm run build

$(WEB)/node_modules/.package-lock.json: $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund

test: vet web
	$(GO) test -race -count=1 ./...

# Each fuzz target for FUZZTIME; crashers land in testdata/fuzz and then run
# with every `make test`.
FUZZTIME ?= 15s
FUZZ_TARGETS := .:FuzzParsePayload .:FuzzParseTopic .:FuzzCanSubscribe ./api:FuzzParseQuery ./history:FuzzPage
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg)"; \
		$(GO) test -run XXX -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

# Long stress runs: the 10 x 10,000 bursts (chat, and the conformance row
# on hearth and mosquitto, both protocol versions), and a race-prone test
# repeated.
SOAKCOUNT ?= 25
soak: web
	HEARTH_BURST_EACH=10000 $(GO) test -count=1 -timeout 30m -v -run 'TestBurstToSmallReceiveMaximum' ./cmd/hearth
	HEARTH_BURST_EACH=10000 $(GO) test -count=1 -timeout 30m -v -run 'TestConformance/burst' ./broker
	$(GO) test -race -count=$(SOAKCOUNT) -run 'TestPublishingSubscriber' ./cmd/hearth

# hearth against Debian's mosquitto, side by side (README: Performance);
# BENCHFLAGS passes flags to cmd/hearthbench, e.g. BENCHFLAGS="-rounds 5".
BENCHFLAGS ?=
bench: build
	$(GO) build -o bin/hearthbench ./cmd/hearthbench
	./bin/hearthbench -hearth $(BIN) $(BENCHFLAGS)
	$(GO) test -run XXX -bench . -benchtime 2s ./history ./broker .

# Releases (README: Releases): static binaries for PCs and the Raspberry Pi,
# a .deb for each (nfpm, pinned here) and SHA256SUMS, in dist/. VERSION is
# the git tag (git describe), v0.0.0-<commit> before the first one; commit
# and date are the commit's, so one commit builds the same files.
.PHONY: release image package-test
NFPM_VERSION := v2.45.2
NFPM := bin/nfpm-$(NFPM_VERSION)
VERSION := $(shell { git describe --tags --always --dirty 2>/dev/null || echo unknown; } | sed -E '/^v[0-9]/!s/^/v0.0.0-/')
# Debian's order: 0.0.0~c0ffee < 0.1.0~rc1 < 0.1.0 < 0.1.0+3.gc0ffee
DEB_VERSION := $(shell echo '$(VERSION)' | sed -E 's/^v//; s/-([0-9]+)-g([0-9a-f]+)/+\1.g\2/; s/-dirty$$/+dirty/; s/-/~/g')
COMMIT := $(shell c=$$(git rev-parse HEAD 2>/dev/null) && { git diff --quiet HEAD 2>/dev/null || c=$$c+dirty; echo $$c; })
DATE := $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
RELEASE_LDFLAGS := -s -w $(foreach v,version=$(VERSION) commit=$(COMMIT) date=$(DATE),-X github.com/hearth-home/hearth.$(v))
# name:GOARCH:GOARM:nfpm's arch (arm7 is Debian's armhf)
RELEASE_TARGETS := amd64:amd64::amd64 arm64:arm64::arm64 armv7:arm:7:arm7

release: web $(NFPM)
	rm -rf dist && mkdir -p dist
	@set -e; for t in $(RELEASE_TARGETS); do IFS=:; set -- $$t; unset IFS; name=$$1 goarch=$$2 goarm=$$3 debarch=$$4; \
		bin=dist/hearth_$(VERSION)_linux_$$name; echo "== $$bin"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$goarch GOARM=$$goarm $(GO) build -trimpath -ldflags '$(RELEASE_LDFLAGS)' -o $$bin ./cmd/hearth; \
		SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) DEB_VERSION='$(DEB_VERSION)' ARCH=$$debarch BIN=$$bin \
			./$(NFPM) package --config packaging/nfpm.yaml --packager deb --target dist/; \
	done
	cd dist && sha256sum hearth_* > SHA256SUMS && cat SHA256SUMS

$(NFPM):
	GOBIN=$(CURDIR)/bin $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	mv bin/nfpm $@

# The container image hearth:VERSION (and :latest) from the amd64 binary.
image: release
	mkdir -p dist/image/data
	cp /etc/ssl/certs/ca-certificates.crt dist/image/
	podman build --build-arg VERSION=$(VERSION) -t hearth:$(VERSION) -t hearth:latest -f Containerfile .

# Installs the amd64 .deb on this machine, checks it and removes it, then
# checks the image (README: Releases). Needs root, dpkg, systemd-analyze
# and podman.
package-test: image
	.ci/packages dist/hearth_$(DEB_VERSION)_amd64.deb hearth:$(VERSION)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './$(WEB)/node_modules/*'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin $(WEB)/node_modules
	find $(WEB)/dist -mindepth 1 ! -name .gitkeep -delete
