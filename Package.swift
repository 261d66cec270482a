// swift-tools-version:6.3
import PackageDescription

// Hot kernels are C (CDuetIntrinsics), compiled once per instruction set and chosen at run time,
// so the build needs no CPU-specific flags: one binary runs on any x86-64 or arm64 machine.
//
// PostgreSQL is the trait `Postgres` (`swift build --traits Postgres`; CI and the container enable
// it). postgres-nio brings swift-nio-ssl and a second BoringSSL: about 230 s of a 2-core cold
// release build, which a newcomer's first `swift run duet demo` on the embedded SQLite never uses.
let upcoming: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Duet",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "duet", targets: ["duet"]),
        .library(name: "DuetCore", targets: ["DuetCore"]),
        .library(name: "DuetStore", targets: ["DuetStore"]),
        .library(name: "DuetKernels", targets: ["DuetKernels"]),
        .library(name: "DuetSimilarity", targets: ["DuetSimilarity"]),
        .library(name: "DuetTraining", targets: ["DuetTraining"]),
        .library(name: "DuetLab", targets: ["DuetLab"]),
        .library(name: "DuetServe", targets: ["DuetServe"]),
        .library(name: "DuetDashboard", targets: ["DuetDashboard"]),
    ],
    traits: [
        .trait(name: "Postgres", description: "The PostgreSQL registry and event log, for several machines (postgres-nio)."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        // Without its default traits Hummingbird skips swift-configuration, which Duet does not use.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        .target(
            name: "DuetCore",
            dependencies: ["CDuetDigest"],
            swiftSettings: upcoming
        ),
        .target(name: "DuetKernels", dependencies: ["DuetCore", "CDuetIntrinsics"], swiftSettings: upcoming),
        .target(name: "CDuetIntrinsics"),
        .target(name: "CDuetDigest"),
        .target(name: "DuetSimilarity", dependencies: ["DuetCore", "DuetKernels", "CDuetIntrinsics"], swiftSettings: upcoming),
        .target(name: "DuetTraining", dependencies: ["DuetCore", "DuetKernels", "DuetSimilarity"], swiftSettings: upcoming),
        .target(
            name: "DuetStore",
            dependencies: [
                "DuetCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),
        .target(
            name: "DuetServe",
            dependencies: [
                "DuetCore", "DuetKernels", "DuetSimilarity",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: upcoming
        ),
        .target(
            name: "DuetLab",
            dependencies: ["DuetCore", "DuetKernels", "DuetSimilarity", "DuetStore", "DuetTraining"],
            swiftSettings: upcoming
        ),
        .target(
            name: "DuetDashboard",
            dependencies: ["DuetCore", "DuetLab", "DuetStore", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HTTPTypes", package: "swift-http-types")],
            swiftSettings: upcoming
        ),
        .target(
            name: "DuetCommandLine",
            dependencies: [
                "DuetCore", "DuetStore", "DuetTraining", "DuetLab",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),
        .target(
            name: "DuetBench",
            dependencies: [
                "DuetCore", "DuetKernels", "DuetSimilarity", "DuetStore", "DuetTraining", "DuetLab", "DuetServe", "DuetCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "duet",
            dependencies: [
                "DuetCore", "DuetKernels", "DuetSimilarity", "DuetStore", "DuetTraining", "DuetLab", "DuetServe", "DuetDashboard",
                "DuetCommandLine", "DuetBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: upcoming
        ),
        // Test support in layers, so each test target builds only what it tests.
        .target(name: "DuetTestSupport", path: "Tests/DuetTestSupport", swiftSettings: upcoming),
        .target(
            name: "DuetStoreTestSupport",
            dependencies: [
                "DuetStore", "DuetCore", "DuetTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/DuetStoreTestSupport",
            swiftSettings: upcoming
        ),
        // Our own HTTP test client: HummingbirdTesting brings AsyncHTTPClient, swift-nio-ssl and a BoringSSL.
        .target(
            name: "DuetHTTPTestSupport",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/DuetHTTPTestSupport",
            swiftSettings: upcoming
        ),
        .target(
            name: "DuetLabTestSupport",
            dependencies: ["DuetLab", "DuetCore", "DuetStore", "DuetTraining", "DuetTestSupport"],
            path: "Tests/DuetLabTestSupport",
            swiftSettings: upcoming
        ),
        .testTarget(name: "DuetCoreTests", dependencies: ["DuetCore", "DuetTestSupport"], swiftSettings: upcoming),
        .testTarget(name: "DuetKernelsTests", dependencies: ["DuetKernels", "DuetCore", "CDuetIntrinsics"], swiftSettings: upcoming),
        .testTarget(name: "DuetSimilarityTests", dependencies: ["DuetSimilarity", "DuetKernels", "DuetCore", "DuetTestSupport", "CDuetIntrinsics"], swiftSettings: upcoming),
        .testTarget(name: "DuetTrainingTests", dependencies: ["DuetTraining", "DuetKernels", "DuetCore"], swiftSettings: upcoming),
        .testTarget(name: "DuetStoreTests", dependencies: ["DuetStore", "DuetCore", "DuetTestSupport", "DuetStoreTestSupport"], swiftSettings: upcoming),
        .testTarget(
            name: "DuetServeTests",
            dependencies: ["DuetServe", "DuetStore", "DuetCore", "DuetTestSupport"],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "DuetLabTests",
            dependencies: ["DuetLab", "DuetStore", "DuetCore", "DuetTraining", "DuetTestSupport", "DuetStoreTestSupport", "DuetLabTestSupport"],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "DuetDashboardTests",
            dependencies: ["DuetDashboard", "DuetLab", "DuetStore", "DuetCore", "DuetTestSupport", "DuetLabTestSupport",
                           "DuetHTTPTestSupport"],
            swiftSettings: upcoming
        ),
        // Serve and the Lab end to end: a Lab home, Serve built over it, HTTP through our test client.
        .testTarget(
            name: "DuetIntegrationTests",
            dependencies: [
                "DuetServe", "DuetLab", "DuetStore", "DuetCore", "DuetKernels", "DuetSimilarity", "DuetTraining",
                "DuetTestSupport", "DuetStoreTestSupport", "DuetLabTestSupport",
                "DuetHTTPTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: upcoming
        ),
    ],
    swiftLanguageModes: [.v6]
)
