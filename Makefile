# Drover: `make demo` runs the main job on a throwaway Postgres; `make test` runs every test.
SWIFT ?= swift
SWIFT_FLAGS ?=
BIN = .build/debug/drover
RELEASE_BIN = .build/release/drover

.PHONY: all deps build release test demo bench clean

all: build

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

release: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS)

# The server-restart test bounces Postgres, so it runs alone after the rest.
test: deps
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	scripts/with-pg.sh sh -c '$(SWIFT) test --skip-build --skip ServerRestartTests && $(SWIFT) test --skip-build --filter ServerRestartTests'

demo: build
	scripts/with-pg.sh scripts/demo.sh $(BIN)

bench: release
	scripts/with-pg.sh $(RELEASE_BIN) bench queue

clean:
	rm -rf .build .drover
