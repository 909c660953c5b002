// swift-tools-version:6.0
import PackageDescription

// Dependency arrows point one way:
// CLibPQ → DroverPostgres → DroverStore → DroverSandbox → drover (executable);
// DroverCore (plain value types) is used by all.
let package = Package(
    name: "Drover",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "drover", targets: ["drover"]),
        .library(name: "DroverStore", targets: ["DroverStore"]),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // Linux calls Swift cannot make directly (variadic `syscall`): openat2 for the sandbox.
        .target(name: "CDroverSys"),
        .target(name: "DroverCore"),
        .target(name: "DroverPostgres", dependencies: ["CLibPQ", "DroverCore"]),
        .target(name: "DroverStore", dependencies: ["DroverPostgres", "DroverCore"]),
        .target(name: "DroverSandbox", dependencies: ["CDroverSys", "DroverCore", "DroverStore"]),
        .executableTarget(name: "drover", dependencies: ["DroverSandbox", "DroverStore", "DroverPostgres", "DroverCore"]),
        // Helpers for tests: a fresh, migrated database per test on the server in DATABASE_URL.
        .target(name: "DroverTestSupport", dependencies: ["DroverSandbox", "DroverStore", "DroverPostgres", "DroverCore"]),
        .testTarget(name: "DroverCoreTests", dependencies: ["DroverCore"]),
        .testTarget(name: "DroverSandboxTests", dependencies: ["DroverSandbox", "DroverCore", "DroverTestSupport"]),
        .testTarget(name: "DroverPostgresTests", dependencies: ["DroverPostgres", "DroverTestSupport"]),
        .testTarget(
            name: "DroverStoreTests",
            dependencies: ["DroverStore", "DroverPostgres", "DroverCore", "DroverTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
