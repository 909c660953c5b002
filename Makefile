# Drover: `make demo` runs the main job on a throwaway Postgres; `make test` runs every test.
SWIFT ?= swift
SWIFT_FLAGS ?=
BIN = .build/debug/drover
RELEASE_BIN = .build/release/drover

.PHONY: all deps build release test fuzz demo bench bench-compare chaos clean

all: build

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

release: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS)

# The server-restart test and the bounded chaos run bounce Postgres, and the fleet test runs eight
# harnesses against a server of its own, so each runs alone after the rest; so do the suites that
# load the machine on purpose (gigabytes of sandbox memory, 200 streams, a client that stalls,
# and a browser), which would otherwise starve the timing of the tests beside them on 2 cores. At
# most 8 tests run at once: each starts daemons and holds connections to one stock server.
test: deps
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	scripts/fuzz.sh 8
	scripts/with-pg.sh sh -c '$(SWIFT) test --skip-build --experimental-maximum-parallelization-width 8 --skip ServerRestartTests --skip ChaosTests --skip FleetTests \
			--skip QuotaTests --skip APIServerTests --skip ConsoleTests \
		&& $(SWIFT) test --skip-build --filter QuotaTests \
		&& $(SWIFT) test --skip-build --filter APIServerTests \
		&& $(SWIFT) test --skip-build --filter ConsoleTests \
		&& $(SWIFT) test --skip-build --filter ServerRestartTests \
		&& $(SWIFT) test --skip-build --filter FleetTests \
		&& $(SWIFT) test --skip-build --filter ChaosTests'

# Every parser of untrusted bytes under libFuzzer for five minutes each (make test runs 8 s each).
fuzz: deps
	scripts/fuzz.sh 300

# The full chaos run: 200 sessions under kills, pauses, a pool crash and a Postgres restart.
chaos: release
	scripts/with-pg.sh $(RELEASE_BIN) chaos --sessions 200

demo: build
	scripts/with-pg.sh scripts/demo.sh $(BIN)

bench: release
	scripts/with-pg.sh sh -c '$(RELEASE_BIN) bench queue && $(RELEASE_BIN) bench sandbox && $(RELEASE_BIN) bench harness && $(RELEASE_BIN) bench burst && $(RELEASE_BIN) bench work'

# Drover's no-op cycles against PgQueuer's no-op drain, side by side (installs PgQueuer from PyPI
# into .drover/pyq).
bench-compare: release
	scripts/bench-compare.sh

clean:
	rm -rf .build .build-fuzz .drover
