// swift-tools-version:6.0
import PackageDescription

// Dependency arrows point one way:
// CDroverSys → DroverIO (the event loop, with PoolClient, what a harness needs of a pool) → DroverPostgres,
// DroverHarness, DroverSandbox, DroverModel, DroverScriptedModel;
// CLibPQ, DroverIO → DroverPostgres (libpq on the loop) → DroverStore → DroverSandbox, DroverAPI → drover (executable);
// DroverResources (the API's resources, typed) → DroverStore;
// CCurl → DroverTLS (with DroverIO: libcurl on the loop, TLS to a host) → DroverSandbox (TLS upstreams), DroverModel;
// DroverModel → DroverMCP → DroverHarness, DroverAPI, drover;
// the pool daemon (DroverSandbox: isolation, egress) is linked only by the executables that run it,
// never by the harness.
// DroverCore (plain value types) is used by all.
let package = Package(
    name: "Drover",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "drover", targets: ["drover"]),
        .executable(name: "drover-dev", targets: ["drover-dev"]),
        .library(name: "DroverStore", targets: ["DroverStore"]),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // Linux calls Swift cannot make directly (variadic `syscall`): openat2 for the sandbox.
        .target(name: "CDroverSys"),
        .target(name: "DroverCore"),
        .target(name: "DroverPostgres", dependencies: ["CLibPQ", "DroverIO", "DroverCore"]),
        .target(name: "DroverStore", dependencies: ["DroverResources", "DroverPostgres", "DroverCore"]),
        // The Managed Agents API's resources as Swift values mirroring the SDK's models: what the
        // store reads and the API writes.
        .target(name: "DroverResources", dependencies: ["DroverCore"]),
        // Sockets, the event loop and the one HTTP server, blocking work on own threads, child
        // daemons: shared by every daemon.
        .target(name: "DroverIO", dependencies: ["CDroverSys", "DroverCore"]),
        // libcurl: its transfers on the event loop (CurlLoop), TLS to a host (the egress proxy's
        // upstreams) and pinning a handle to checked addresses.
        .target(name: "DroverTLS", dependencies: ["CCurl", "DroverIO", "DroverCore"]),
        // The sandbox pool daemon: bubblewrap, seccomp, cgroups, the egress proxy.
        .target(name: "DroverSandbox", dependencies: ["CDroverSys", "DroverIO", "DroverTLS", "DroverCore", "DroverStore"]),
        // Model providers over HTTP (libcurl).
        .target(name: "DroverModel", dependencies: ["CCurl", "DroverTLS", "DroverIO", "DroverCore"]),
        // A test rig, apart from production code: the scripted model server (tests, the offline
        // demo, benches), as strict as the real APIs it imitates.
        .target(name: "DroverScriptedModel", dependencies: ["DroverIO", "DroverCore"]),
        // `drover api`: the Managed Agents-compatible HTTP API (tenancy, resources, event streams).
        .target(name: "DroverAPI", dependencies: ["DroverMCP", "DroverStore", "DroverResources", "DroverPostgres", "DroverModel", "DroverIO", "DroverCore"], resources: [.copy("Console")]),
        // Tenants' MCP servers and their OAuth token endpoints, over HTTP: the harness connects
        // agents' servers, `drover api` validates vaults' credentials against them.
        .target(name: "DroverMCP", dependencies: ["DroverModel", "DroverStore", "DroverCore"]),
        // The agent loop and the harness daemon.
        .target(name: "DroverHarness", dependencies: ["DroverMCP", "DroverModel", "DroverStore", "DroverIO", "DroverCore"]),
        // Subcommands, their arguments and their output, shared by both executables.
        .target(name: "DroverCLI", dependencies: ["DroverStore", "DroverPostgres", "DroverIO", "DroverCore"]),
        // The production binary: the daemons (api, harness, sandbox-pool) and the operator's commands.
        .executableTarget(
            name: "drover",
            dependencies: [
                "DroverCLI", "DroverAPI", "DroverHarness", "DroverModel", "DroverSandbox", "DroverIO", "DroverStore", "DroverPostgres", "DroverCore",
            ]),
        // The test rigs, apart from production code: benchmarks, chaos, the offline demo and the
        // scripted model server; they start the `drover` beside them, and `drover` runs this for them.
        .executableTarget(
            name: "drover-dev",
            dependencies: [
                "DroverCLI", "DroverScriptedModel", "DroverTestSupport", "DroverHarness", "DroverSandbox", "DroverModel", "DroverIO",
                "DroverStore", "DroverPostgres", "DroverCore", "CDroverSys",
            ]),
        // A test rig, apart from production code: fuzz targets for every parser of untrusted bytes
        // (libFuzzer when built by scripts/fuzz.sh, a corpus replayer otherwise).
        .target(name: "CDroverFuzz"),
        .executableTarget(name: "drover-fuzz", dependencies: ["CDroverFuzz", "DroverModel", "DroverIO", "DroverCore"]),
        // Helpers for tests: a fresh, migrated database per test on the server in DATABASE_URL.
        .target(
            name: "DroverTestSupport",
            dependencies: ["DroverModel", "DroverScriptedModel", "DroverIO", "DroverSandbox", "DroverStore", "DroverPostgres", "DroverCore"]),
        .testTarget(name: "DroverCoreTests", dependencies: ["DroverCore"]),
        .testTarget(name: "DroverSandboxTests", dependencies: ["DroverSandbox", "DroverCore", "DroverTestSupport"]),
        .testTarget(name: "DroverModelTests", dependencies: ["DroverModel", "DroverScriptedModel", "DroverIO", "DroverCore", "DroverTestSupport"]),
        .testTarget(
            name: "DroverHarnessTests",
            dependencies: ["DroverHarness", "DroverModel", "DroverScriptedModel", "DroverStore", "DroverCore", "DroverTestSupport"]),
        .testTarget(name: "DroverPostgresTests", dependencies: ["DroverPostgres", "DroverTestSupport"]),
        .testTarget(
            name: "DroverAPITests",
            dependencies: [
                "DroverAPI", "DroverSandbox", "DroverScriptedModel", "DroverStore", "DroverResources", "DroverIO", "DroverCore", "DroverTestSupport",
            ]),
        .testTarget(
            name: "DroverStoreTests",
            dependencies: ["DroverStore", "DroverPostgres", "DroverCore", "DroverTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
