// swift-tools-version:6.0
import PackageDescription

/// The fold and codec modules: release builds skip the dynamic exclusivity checks (about
/// 2 % of a rebuild's CPU in `swift_beginAccess`/`AccessSet`); debug builds, which run the
/// tests, keep them, so a violation still traps there.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "touchstone",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "touchstone", targets: ["touchstone"]),
        .executable(name: "touchstone-datagen", targets: ["DataGen"]),
        .executable(name: "touchstone-bench", targets: ["Bench"]),
        .executable(name: "touchstone-replay", targets: ["Replay"]),
        .library(name: "LMDB", targets: ["LMDB"]),
        .library(name: "EventLog", targets: ["EventLog"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.86.0"),
    ],
    targets: [
        // C libraries from Debian: liblmdb-dev, libzstd-dev, libjemalloc-dev.
        .systemLibrary(name: "CLMDB", path: "Sources/CLMDB", pkgConfig: "lmdb",
                       providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        // The process's allocator (see `Allocator` in EventLog).
        .systemLibrary(name: "CJemalloc", path: "Sources/CJemalloc", pkgConfig: "jemalloc",
                       providers: [.apt(["libjemalloc-dev"])]),

        .target(name: "JSONCore", swiftSettings: hotPath),
        .target(name: "JSONSchema", dependencies: ["JSONCore"], swiftSettings: hotPath),
        .target(name: "LMDB", dependencies: ["CLMDB"]),
        .target(name: "EventLog", dependencies: ["LMDB", "CZstd", "CJemalloc", "JSONCore", "JSONSchema", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: hotPath),

        .target(name: "Projections", dependencies: ["EventLog", "LMDB", "JSONCore", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: hotPath),
        .target(name: "Server", dependencies: [
            "EventLog", "Projections", "LMDB", "JSONCore",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CompressNIO", package: "compress-nio"),
            .product(name: "Configuration", package: "swift-configuration"),
        ]),

        .executableTarget(name: "touchstone", dependencies: [
            "EventLog", "LMDB", "JSONCore", "Projections", "Server",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),

        .executableTarget(name: "DataGen", path: "Tools/DataGen"),
        .executableTarget(name: "Replay", dependencies: [
            "EventLog", "LMDB", "JSONCore", "Projections",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Tools/Replay"),
        .executableTarget(name: "Bench", dependencies: [
            "EventLog", "LMDB", "JSONCore", "Projections",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ], path: "Tools/Bench"),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "JSONCoreTests", dependencies: ["JSONCore", "TestSupport"]),
        .testTarget(name: "JSONSchemaTests", dependencies: ["JSONSchema", "JSONCore"]),
        .testTarget(name: "LMDBTests", dependencies: ["LMDB"]),
        .testTarget(name: "EventLogTests", dependencies: ["EventLog", "LMDB", "JSONCore"]),
        .testTarget(name: "DataGenTests", dependencies: ["EventLog", "JSONCore"]),
        .testTarget(name: "ProjectionsTests", dependencies: ["Projections", "EventLog", "LMDB", "JSONCore", "TestSupport"]),
        .testTarget(name: "ReplayTests", dependencies: ["Projections", "EventLog", "LMDB", "JSONCore"]),
        .testTarget(name: "ServerTests", dependencies: [
            "Server", "EventLog", "JSONCore",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
