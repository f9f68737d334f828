// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "GreenThreads",
    products: [
        .library(name: "GreenThreads", targets: ["GreenThreads"]),
        .executable(name: "gt-bench", targets: ["gt-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CContext"),
        .target(
            name: "GreenThreads",
            dependencies: ["CContext"]
        ),
        .executableTarget(
            name: "gt-bench",
            dependencies: [
                "GreenThreads",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "GreenThreadsTests",
            dependencies: ["GreenThreads", "CContext"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
