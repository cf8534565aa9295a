import Foundation
// swift-tools-version: 6.0
import PackageDescription

/// The libgpiod API the GPIO shim compiles against: "1" for libgpiod 1.x (Debian 12,
/// Raspberry Pi OS bookworm), "2" for libgpiod 2.x (Raspberry Pi OS trixie).
/// Taken from `HOTSPOTD_GPIOD_API` when set, otherwise from the version pkg-config reports.
/// The shim's header cross-checks the choice against the installed gpiod.h.
func gpiodAPI() -> String {
    if let forced = ProcessInfo.processInfo.environment["HOTSPOTD_GPIOD_API"], !forced.isEmpty {
        return forced
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["pkg-config", "--modversion", "libgpiod"]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = Pipe()
    do {
        try process.run()
        process.waitUntilExit()
    } catch {
        return "1"
    }
    let version = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return version.hasPrefix("2.") || version.hasPrefix("3.") ? "2" : "1"
}

let package = Package(
    name: "hotspotd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hotspotd", targets: ["hotspotd"]),
        .executable(name: "hotspot-bench", targets: ["hotspot-bench"]),
        .executable(name: "hotspot-fuzz", targets: ["hotspot-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C shims: system libraries and the two helpers Swift cannot express directly.
        .target(
            name: "CSPI",
            path: "Sources/CShims/CSPI"
        ),
        .target(
            name: "CI2C",
            path: "Sources/CShims/CI2C"
        ),
        .target(
            name: "CSignals",
            path: "Sources/CShims/CSignals"
        ),
        .target(
            name: "CGPIO",
            path: "Sources/CShims/CGPIO",
            cSettings: [.define("HOTSPOTD_GPIOD_API", to: gpiodAPI())],
            linkerSettings: [.linkedLibrary("gpiod")]
        ),
        .systemLibrary(
            name: "CMosquitto",
            path: "Sources/CShims/CMosquitto",
            pkgConfig: "libmosquitto",
            providers: [.apt(["libmosquitto-dev"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CShims/CSQLite",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CCrypto",
            path: "Sources/CShims/CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),

        // Pure Swift building blocks.
        .target(name: "Clocks"),
        .target(name: "TOML"),
        .target(name: "LoRaPHY", dependencies: ["Wire"]),
        .target(name: "Wire"),
        .target(name: "Cryptography", dependencies: ["CCrypto", "Wire"]),
        .target(name: "LoRaWAN", dependencies: ["LoRaPHY", "Cryptography", "Wire"]),
        // What a radio hears and is asked to send, below every radio.
        .target(name: "Frames", dependencies: ["LoRaPHY"]),
        // Protobuf messages generated from proto/ by scripts/generate-protos (committed).
        .target(name: "Messages", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // ChirpStack's gw.proto messages to and from hotspotd's types: its one home.
        .target(
            name: "ChirpStack",
            dependencies: [
                "Clocks", "Frames", "LoRaPHY", "Messages", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        // The hardware abstraction layer and its two backends.
        .target(name: "HAL", dependencies: ["TOML", "Clocks"]),
        .target(name: "HALLinux", dependencies: ["HAL", "Clocks", "CSPI", "CI2C", "CGPIO"]),
        .target(name: "HALMock", dependencies: ["HAL", "Clocks", "LoRaPHY", "Cryptography"]),
        // The ATECC608 secure element that holds a Helium hotspot's identity, over I2C.
        .target(name: "SecureElement", dependencies: ["HAL", "Clocks", "Cryptography"]),

        // Radios and the packet forwarders' backend.
        .target(
            name: "Radio",
            dependencies: [
                "Wire", "HAL", "Clocks", "Frames", "LoRaPHY", .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "SemtechUDP",
            dependencies: [
                "HAL", "Clocks", "Frames", "LoRaPHY", "Radio", "Wire", .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Metering and the store: rows in, rows out; no radio, no broker.
        .target(name: "Store", dependencies: ["CSQLite", "Clocks", "Cryptography"]),
        .target(
            name: "Credits",
            dependencies: [
                "Wire",
                "Store", "Clocks", "Frames", "LoRaWAN", "LoRaPHY", "Cryptography", "Messages", "ChirpStack",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The broker: carries the outbox out and hands what arrives to a handler; decides nothing.
        .target(
            name: "Transport",
            dependencies: ["CMosquitto", "Clocks", "Store", .product(name: "Logging", package: "swift-log")]),

        // Proof of coverage: beacons sent through a radio, witnesses, signed reports.
        .target(
            name: "Coverage",
            dependencies: [
                "Wire",
                "Credits", "ChirpStack", "Clocks", "Cryptography", "Frames", "LoRaPHY", "Messages", "Radio", "Store",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The agent's services and their wiring.
        .target(
            name: "Agent",
            dependencies: [
                "Wire",
                "TOML", "Clocks", "Cryptography", "Frames", "LoRaPHY", "LoRaWAN", "Radio", "HAL", "HALLinux", "HALMock",
                "SemtechUDP", "SecureElement",
                "Store", "Credits", "ChirpStack", "Transport", "Coverage", "Messages",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        // The command-line program.
        .executableTarget(
            name: "hotspotd",
            dependencies: [
                "HAL", "HALLinux", "HALMock", "Radio", "LoRaPHY", "TOML", "SemtechUDP", "LoRaWAN", "Cryptography",
                "SecureElement",
                "Wire", "Credits", "Store", "Messages", "Agent", "Transport", "CSignals", "Clocks", "ChirpStack",
                "Frames", "Coverage", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // The benchmark: `swift run -c release hotspot-bench`.
        .executableTarget(
            name: "hotspot-bench",
            dependencies: [
                "Credits", "Clocks", "ChirpStack", "Frames", "HALMock", "LoRaPHY", "LoRaWAN", "Messages", "Radio",
                "Store", "Wire", "CMosquitto",
                "CSQLite", "TestSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // The parsers of what arrives from outside, as fuzz targets: `scripts/fuzz`.
        .target(
            name: "FuzzTargets",
            dependencies: [
                "Agent", "ChirpStack", "Credits", "Cryptography", "HAL", "LoRaPHY", "LoRaWAN", "Messages", "Radio",
                "SemtechUDP", "Transport", "SecureElement",
                "Wire",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(name: "hotspot-fuzz", dependencies: ["FuzzTargets"]),

        .target(
            name: "TestSupport", dependencies: [.product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport"),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets", "TestSupport"], exclude: ["Regressions"]),
        .testTarget(name: "ArchitectureTests"),
        .testTarget(name: "TOMLTests", dependencies: ["TOML", "TestSupport"]),
        .testTarget(name: "LoRaPHYTests", dependencies: ["LoRaPHY"]),
        .testTarget(name: "HALTests", dependencies: ["Clocks", "TestSupport", "HAL"]),
        .testTarget(
            name: "HALLinuxTests", dependencies: ["HAL", "HALLinux", "CSPI", "CI2C", "CGPIO", "CMosquitto", "CCrypto"]),
        .testTarget(name: "HALMockTests", dependencies: ["Clocks", "TestSupport", "HALMock", "HAL", "LoRaPHY"]),
        .testTarget(
            name: "SecureElementTests",
            dependencies: ["SecureElement", "HALMock", "HAL", "Cryptography", "Clocks", "Wire", "TestSupport"]),
        .testTarget(
            name: "RadioTests",
            dependencies: [
                "Clocks", "Frames", "TestSupport", "Radio", "HALMock", "HAL", "LoRaPHY",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "WireTests", dependencies: ["Wire"]),
        .testTarget(name: "CryptographyTests", dependencies: ["Wire", "Cryptography", "TestSupport"]),
        .testTarget(
            name: "CreditsTests",
            dependencies: [
                "Wire", "Clocks", "Frames", "ChirpStack", "Credits", "Store", "LoRaWAN", "LoRaPHY", "Cryptography",
                "Messages", "Radio", "TestSupport", "CSQLite",
            ]),
        .testTarget(name: "StoreTests", dependencies: ["Clocks", "Store", "Cryptography", "CSQLite", "TestSupport"]),
        .testTarget(name: "LoRaWANTests", dependencies: ["Wire", "LoRaWAN", "LoRaPHY", "Cryptography"]),
        .testTarget(
            name: "SemtechUDPTests",
            dependencies: [
                "Clocks", "Frames", "TestSupport", "SemtechUDP", "Radio", "LoRaPHY", "Wire",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "TransportTests",
            dependencies: [
                "Wire", "CMosquitto", "Agent", "Clocks", "Frames", "ChirpStack",
                "Transport", "Credits", "Store", "Messages", "Radio", "HAL", "HALMock", "LoRaPHY", "LoRaWAN",
                "Cryptography", "TestSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "CoverageTests",
            dependencies: [
                "Wire", "Agent", "Clocks", "Frames", "ChirpStack",
                "Coverage", "Credits", "Cryptography", "LoRaPHY", "Messages", "Radio", "Store", "HAL", "HALMock",
                "Transport", "TestSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "CSQLite", "Clocks", "Frames", "ChirpStack", "Transport", "Store", "Messages", "Credits", "Agent",
                "TOML", "Radio", "LoRaPHY", "LoRaWAN", "HALMock", "Coverage", "TestSupport", "Cryptography", "HAL",
                "SecureElement",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        .testTarget(
            name: "hotspotdTests",
            dependencies: [
                "Agent", "Clocks", "Frames", "ChirpStack", "Transport",
                "TestSupport", "hotspotd", "Coverage", "Credits", "Cryptography", "LoRaWAN", "Messages", "SemtechUDP",
                "HALMock",
                "Store", "Wire",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
    ]
)
