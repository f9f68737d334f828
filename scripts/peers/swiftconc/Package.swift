// swift-tools-version:6.0
// Swift-concurrency peer for the GreenThreads benchmarks. A separate package
// on purpose: it must not depend on (or be built with) GreenThreads itself.
import PackageDescription

let package = Package(
    name: "swiftconc-peer",
    targets: [
        .executableTarget(name: "swiftconc-peer")
    ]
)
