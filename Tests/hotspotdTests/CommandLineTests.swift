import Agent
import ChirpStack
import Clocks
import Foundation
import TestSupport
import Testing
import Transport

/// Runs the built `hotspotd` binary from the repository root, with the repository's board
/// profiles, as an owner would.
func runHotspotd(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await runHotspotd(arguments, in: repositoryRoot, environment: ["HOTSPOTD_BOARD_DIR": repositoryRoot + "/Board"])
}

/// The build products folder: the test bundle sits in it, next to the hotspotd binary.
let productsDirectory: URL = {
    let bundle = Bundle.main.bundleURL
    return bundle.pathExtension == "xctest" ? bundle.deletingLastPathComponent() : bundle
}()

@Suite(.capturingLogs, .serialized) struct CommandLineTests {
    @Test func boardProbeSucceedsOnTheMockBoard() async throws {
        let result = try await runHotspotd(["board", "probe", "--board", "mock"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("mock: SX1276 answered"))
        #expect(result.stdout.contains("RegVersion 0x12"))
    }

    @Test func boardProbeOfTheMockSX1262() async throws {
        let result = try await runHotspotd(["board", "probe", "--board", "mock-sx1262"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("SX1262 answered"))
    }

    @Test func boardProbeWithoutHardwareExplainsAndFails() async throws {
        let result = try await runHotspotd(["board", "probe", "--board", "dragino-lora-gps-hat"])
        #expect(result.status == 1)
        // This machine has no GPIO chips: the probe stops at the reset line, and says why.
        #expect(result.stderr.contains("dragino-lora-gps-hat: no GPIO chip for the reset line"))
        #expect(result.stdout.isEmpty)
    }

    @Test func withoutABoardTheConfiguredOneIsProbed() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hotspotd-config-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("hotspotd.toml")
        try "[gateway]\nboard = \"mock-sx1262\"\n".write(to: config, atomically: true, encoding: .utf8)
        let result = try await runHotspotd(["board", "probe", "--config", config.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("mock-sx1262: SX1262 answered"))

        let missing = try await runHotspotd([
            "board", "probe", "--config", directory.appendingPathComponent("none.toml").path,
        ])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no --board given"))
    }

    @Test func unknownBoardIsNamed() async throws {
        let result = try await runHotspotd(["board", "probe", "--board", "no-such-board"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("no board profile named 'no-such-board'"))
    }

    @Test func boardListShowsEveryProfileOnALine() async throws {
        let result = try await runHotspotd(["board", "list"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        let names = Set(lines.map { String($0.prefix { $0 != " " }) })
        #expect(
            names.isSuperset(of: [
                "mock", "mock-sx1262", "dragino-lora-gps-hat", "adafruit-rfm95w-bonnet", "waveshare-sx1262-lorawan-hat",
                "rak2287", "seeed-wm1302",
            ]))
        let mock = try #require(lines.first { $0.hasPrefix("mock ") })
        #expect(mock.contains("sx1276"))
        #expect(mock.contains("mock/sx127x"))
        #expect(lines.contains { $0.hasPrefix("seeed-wm1302") && $0.contains("semtech_udp") })
    }

    @Test func boardListReportsAnInvalidProfile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hotspotd-boards-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "name = \"broken\"\nradio = \"sx1276\"\nfoo = 1\n".write(
            to: directory.appendingPathComponent("broken.toml"), atomically: true, encoding: .utf8)
        let result = try await runHotspotd(["board", "list", "--board-dir", directory.path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("broken.toml"))
    }

    @Test func airtimePrintsMilliseconds() async throws {
        let result = try await runHotspotd(["airtime", "--sf", "7", "--bw", "125", "--cr", "4/5", "--size", "20"])
        #expect(result.status == 0)
        #expect(result.stdout == "56.576\n")
        let bad = try await runHotspotd(["airtime", "--sf", "13", "--size", "20"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("--sf must be 5 to 12"))
    }

    @Test func frameDecodeChecksTheMICAndDecrypts() async throws {
        let result = try await runHotspotd([
            "frame", "decode", "40F17DBE4900020001954378762B11FF0D", "--nwk-s-key", "44024241ed4ce9a68c6a8bc055233fd3",
            "--app-s-key", "ec925802ae430ca77fd3dd73cb2cc588",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("DevAddr     49BE7DF1"))
        #expect(result.stdout.contains("MIC         2b11ff0d (valid)"))
        #expect(result.stdout.contains("\"test\""))
        let wrongKey = try await runHotspotd([
            "frame", "decode", "QPF9vkkAAgABlUN4disR/w0=", "--nwk-s-key", "00000000000000000000000000000000", "--json",
        ])
        #expect(wrongKey.status == 0)
        #expect(wrongKey.stdout.contains("\"valid\":false"), "Base64 input, and a MIC that fails with the wrong key")
    }

    @Test func frameDecodeRefusesGarbage() async throws {
        let result = try await runHotspotd(["frame", "decode", "40F1"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("not a LoRaWAN frame"))
        let badKey = try await runHotspotd([
            "frame", "decode", "40F17DBE4900020001954378762B11FF0D", "--nwk-s-key", "1234",
        ])
        #expect(badKey.stderr.contains("32 hex digits"))
    }
}
