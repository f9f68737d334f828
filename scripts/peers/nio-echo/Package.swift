// swift-tools-version:6.0
// SwiftNIO peer for the `echo` benchmark: the event-loop way to serve TCP echo.
// A separate package on purpose: GreenThreads itself depends on nothing, and
// this package must not depend on (or be built with) GreenThreads.
import PackageDescription

let package = Package(
    name: "nio-echo",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "nio-echo",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
