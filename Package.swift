// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "GreenThreads",
    products: [
        .library(name: "GreenThreads", targets: ["GreenThreads"]),
        .executable(name: "gt-bench", targets: ["gt-bench"]),
        .library(name: "GreenThreadsMetrics", targets: ["GreenThreadsMetrics"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation --target GreenThreads` builds
        // the DocC catalog in Sources/GreenThreads/GreenThreads.docc.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
        // Only GreenThreadsMetrics uses these: the GreenThreads library
        // itself depends on nothing but CContext.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        // numa.h, which Sources/CContext/numa.c is compiled against. The
        // library itself is opened at run time (dlopen), not linked: a
        // machine without it runs with one node (numa.c says why).
        .systemLibrary(name: "CNuma", providers: [.apt(["libnuma-dev"])]),
        .target(
            name: "CContext",
            dependencies: [.target(name: "CNuma", condition: .when(platforms: [.linux]))]
        ),
        // The neutral echo load generator: POSIX sockets and epoll on OS
        // threads, no GreenThreads, so it measures every server alike.
        .target(name: "CEpoll"),
        .target(name: "LoadGenerator", dependencies: ["CEpoll"]),
        .target(
            name: "GreenThreads",
            dependencies: ["CContext"]
        ),
        // Runtime statistics as swift-metrics gauges and counters, and the
        // runtime's reports (unjoined failures, hand-offs) as swift-log
        // lines: a separate target, so GreenThreads keeps no dependency.
        .target(
            name: "GreenThreadsMetrics",
            dependencies: [
                "GreenThreads",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "gt-bench",
            dependencies: [
                "GreenThreads",
                "LoadGenerator",
                "NetExamples",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Examples: each is `swift run NAME`.
        .executableTarget(name: "generator-pipeline", dependencies: ["GreenThreads"], path: "Examples/generator-pipeline"),
        .executableTarget(name: "fibonacci-generator", dependencies: ["GreenThreads"], path: "Examples/fibonacci-generator"),
        .executableTarget(name: "generator-producer-consumer", dependencies: ["GreenThreads"], path: "Examples/generator-producer-consumer"),
        .executableTarget(name: "BunShop", dependencies: ["GreenThreads"], path: "Examples/BunShop"),
        .executableTarget(name: "PrimeSieve", dependencies: ["GreenThreads"], path: "Examples/PrimeSieve"),
        .executableTarget(name: "WorkerPool", dependencies: ["GreenThreads"], path: "Examples/WorkerPool"),
        .executableTarget(name: "ChargingStation", dependencies: ["GreenThreads"], path: "Examples/ChargingStation"),
        // The network examples share their serving and HTTP code through
        // NetExamples, which the tests (and gt-bench's echo benchmark) use
        // too. The library itself never depends on it.
        .target(name: "NetExamples", dependencies: ["GreenThreads"], path: "Examples/NetExamples"),
        .executableTarget(name: "echo-server", dependencies: ["GreenThreads", "NetExamples"], path: "Examples/echo-server"),
        .executableTarget(name: "http-hello", dependencies: ["GreenThreads", "NetExamples"], path: "Examples/http-hello"),
        .executableTarget(name: "crawler", dependencies: ["GreenThreads", "NetExamples"], path: "Examples/crawler"),
        .executableTarget(name: "fanout-server", dependencies: ["GreenThreads", "NetExamples"], path: "Examples/fanout-server"),
        .testTarget(
            name: "GreenThreadsTests",
            dependencies: ["GreenThreads", "CContext"],
            // Copies of /sys/devices/system/node from real machines, read by
            // the topology tests through their source path.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "GreenThreadsMetricsTests",
            dependencies: [
                "GreenThreadsMetrics",
                "GreenThreads",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "NetExamplesTests",
            dependencies: ["NetExamples", "GreenThreads", "LoadGenerator"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
