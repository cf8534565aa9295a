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

    /// With a region: its data rates by index, its payload limits and its dwell time.
    @Test func airtimeKnowsEachRegionsRules() async throws {
        let as923 = try await runHotspotd(["airtime", "--region", "AS923-2", "--dr", "0", "--size", "40"])
        #expect(as923.status == 1, "an SF12 frame of 40 bytes is over AS923's 400 ms dwell time")
        #expect(as923.stdout.hasPrefix("1974.272\n"))
        #expect(as923.stdout.contains("data rate    AS923-2 DR0 = SF12BW125"))
        #expect(as923.stdout.contains("dwell time   400 ms: OVER"))
        let us = try await runHotspotd(["airtime", "--region", "US915", "--dr", "0", "--size", "30"])
        #expect(us.status == 1 && us.stdout.contains("30 of at most 24 bytes: TOO LONG"))
        let eu = try await runHotspotd(["airtime", "--region", "eu433", "--sf", "7", "--size", "51"])
        #expect(eu.status == 0 && eu.stdout.contains("EU433 DR5 = SF7BW125") && eu.stdout.contains("dwell time   none"))
        let cn = try await runHotspotd(["airtime", "--region", "CN470", "--sf", "7", "--bw", "250", "--size", "10"])
        #expect(cn.status == 1 && cn.stdout.contains("SF7BW250 is not a data rate of CN470"))
        let alone = try await runHotspotd(["airtime", "--dr", "3", "--size", "3"])
        #expect(alone.status != 0 && alone.stderr.contains("--dr needs --region"))
        let unknown = try await runHotspotd(["airtime", "--region", "XX1", "--dr", "3", "--size", "3"])
        #expect(unknown.status != 0 && unknown.stderr.contains("AS923-1B"))
    }

    /// With a region: the data rate's limit, RX1 and RX2 for an uplink, where a beacon goes.
    @Test func frameDecodeKnowsEachRegionsRules() async throws {
        let uplink = "40F17DBE4900020001954378762B11FF0D"
        let cn = try await runHotspotd(["frame", "decode", uplink, "--region", "CN470", "--dr", "5", "--freq", "480.3"])
        #expect(cn.status == 0, "\(cn.stderr)")
        #expect(cn.stdout.contains("DataRate    DR5 = SF7BW125, 17 of at most 255 bytes, 51.456 ms on air"))
        #expect(cn.stdout.contains("RX1         500.7 MHz DR5 (SF7BW125) with RX1DROffset 0"), "channel 50 mod 48")
        #expect(cn.stdout.contains("RX2         505.3 MHz DR0 (SF12BW125)"))
        let us = try await runHotspotd([
            "frame", "decode", uplink, "--region", "US915", "--dr", "SF9BW125", "--freq", "904.1", "--json",
        ])
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(us.stdout.utf8)) as? [String: Any], "\(us.stderr)")
        #expect((json["rx1"] as? [String: Any])?["frequency"] as? Double == 923_900_000)
        #expect((json["rx1"] as? [String: Any])?["data_rate"] as? Double == 11)
        #expect((json["data_rate"] as? [String: Any])?["maximum_size"] as? Double == 66)
        let beacon = try await runHotspotd([
            "frame", "decode", "E0" + String(repeating: "42", count: 51), "--region", "EU868",
        ])
        #expect(beacon.stdout.contains("a beacon of this data goes on 867.5 MHz (channel 2) at SF12BW125"))
        #expect(!beacon.stdout.contains("RX2"))
        let alone = try await runHotspotd(["frame", "decode", uplink, "--dr", "5"])
        #expect(alone.status != 0 && alone.stderr.contains("--dr and --freq need --region"))
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
