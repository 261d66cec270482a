// swift-tools-version:6.1
import PackageDescription

import Foundation

/// Hot kernels are compiled for the CPU class of the machine that builds them, as faiss and hnswlib
/// pick their SIMD width at load time: AVX2 + FMA (Haswell) on every x86_64, AVX-512 (Zen 4) when
/// an AMD CPU reports it. `DUET_PORTABLE=1 swift build` keeps the baseline target for older CPUs.
let portable = ProcessInfo.processInfo.environment["DUET_PORTABLE"] != nil
#if arch(x86_64)
func hostCPUTarget() -> String {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flagLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return "haswell" }
    let flags = Set(flagLine.split(separator: " ").map(String.init))
    let zen4 = ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_vbmi2", "gfni", "vaes"]
    return info.contains("AuthenticAMD") && zen4.allSatisfy(flags.contains) ? "znver4" : "haswell"
}
let cpuTarget: [SwiftSetting] = portable ? [] : [.unsafeFlags(["-target-cpu", hostCPUTarget()])]
#else
let cpuTarget: [SwiftSetting] = []
#endif

let upcoming: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
] + cpuTarget

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
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
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
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: upcoming
        ),
        .target(name: "DuetKernels", dependencies: ["DuetCore"], swiftSettings: upcoming),
        .target(name: "CDuetIntrinsics"),
        .target(name: "DuetSimilarity", dependencies: ["DuetCore", "DuetKernels", "CDuetIntrinsics"], swiftSettings: upcoming),
        .target(name: "DuetTraining", dependencies: ["DuetCore", "DuetKernels", "DuetSimilarity"], swiftSettings: upcoming),
        .target(
            name: "DuetStore",
            dependencies: [
                "DuetCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
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
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: upcoming
        ),
        .target(
            name: "DuetLab",
            dependencies: ["DuetCore", "DuetKernels", "DuetSimilarity", "DuetStore", "DuetTraining", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: upcoming
        ),
        .target(
            name: "DuetDashboard",
            dependencies: ["DuetCore", "DuetLab", "DuetStore", .product(name: "Hummingbird", package: "hummingbird")],
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
        .target(
            name: "DuetTestSupport",
            dependencies: [
                "DuetLab", "DuetCore", "DuetTraining", "DuetStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/DuetTestSupport",
            swiftSettings: upcoming
        ),
        .testTarget(name: "DuetCoreTests", dependencies: ["DuetCore", "DuetTestSupport"], swiftSettings: upcoming),
        .testTarget(name: "DuetKernelsTests", dependencies: ["DuetKernels", "DuetTestSupport"], swiftSettings: upcoming),
        .testTarget(name: "DuetSimilarityTests", dependencies: ["DuetSimilarity", "DuetKernels", "DuetCore", "DuetTestSupport"], swiftSettings: upcoming),
        .testTarget(name: "DuetTrainingTests", dependencies: ["DuetTraining", "DuetKernels", "DuetCore", "DuetTestSupport"], swiftSettings: upcoming),
        .testTarget(
            name: "DuetServeTests",
            dependencies: [
                "DuetServe", "DuetLab", "DuetStore", "DuetCore", "DuetKernels", "DuetSimilarity", "DuetTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "DuetDashboardTests",
            dependencies: ["DuetDashboard", "DuetLab", "DuetStore", "DuetCore", "DuetTestSupport",
                           .product(name: "HummingbirdTesting", package: "hummingbird")],
            swiftSettings: upcoming
        ),
        .testTarget(name: "DuetStoreTests", dependencies: ["DuetStore", "DuetCore", "DuetTestSupport"], swiftSettings: upcoming),
        .testTarget(name: "DuetLabTests", dependencies: ["DuetLab", "DuetStore", "DuetCore", "DuetTestSupport"], swiftSettings: upcoming),
    ],
    swiftLanguageModes: [.v6]
)
