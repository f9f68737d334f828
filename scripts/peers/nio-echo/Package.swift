// swift-tools-version:6.1
// The SwiftNIO peers: `nio-echo` for the `echo` benchmark (the event-loop way
// to serve TCP echo) and `hummingbird-hello` for the `http` benchmark (a
// Hummingbird 2 hello server). One package so both share one SwiftNIO build.
// A separate package on purpose: GreenThreads itself depends on nothing, and
// this package must not depend on (or be built with) GreenThreads.
import PackageDescription

let package = Package(
    name: "nio-echo",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
        // No default traits: they pull in swift-configuration and full
        // Foundation, which a hello server does not use.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0", traits: []),
    ],
    targets: [
        .executableTarget(
            name: "nio-echo",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "hummingbird-hello",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
