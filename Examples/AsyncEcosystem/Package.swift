// swift-tools-version:6.1
import PackageDescription

// GreenThreads beside the async Swift server ecosystem: a crawler whose
// green threads fetch with AsyncHTTPClient, and a Hummingbird route whose
// handler fans its work out to green threads. A package of its own, so the
// library's build never pulls in SwiftNIO: `swift test` in this folder (or
// scripts/examples-package.sh from the repository's root) builds and checks
// both against a server on 127.0.0.1.
let package = Package(
    name: "AsyncEcosystem",
    platforms: [.macOS(.v15)],
    dependencies: [
        // The repository's root package, by path: the examples build against
        // the library as it is in this checkout.
        .package(name: "GreenThreads", path: "../.."),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // No default traits: they add swift-configuration and Foundation
        // support that these examples never use.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
    ],
    targets: [
        // The site the crawler crawls and the helper that serves a router on
        // an ephemeral loopback port, shared by the executables and tests.
        .target(
            name: "LocalSite",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "GreenCrawler",
            dependencies: [
                .product(name: "GreenThreads", package: "GreenThreads"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "FanoutRoute",
            dependencies: [
                .product(name: "GreenThreads", package: "GreenThreads"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .executableTarget(
            name: "green-crawler",
            dependencies: [
                "GreenCrawler", "LocalSite",
                .product(name: "GreenThreads", package: "GreenThreads"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(
            name: "fanout-route",
            dependencies: [
                "FanoutRoute",
                .product(name: "GreenThreads", package: "GreenThreads"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "AsyncEcosystemTests",
            dependencies: [
                "GreenCrawler", "FanoutRoute", "LocalSite",
                .product(name: "GreenThreads", package: "GreenThreads"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
