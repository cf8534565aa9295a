import Agent
import ChirpStack
import Clocks
import Credits
import Cryptography
import Foundation
import Messages
import TestSupport
import Testing
import Transport

/// The README's examples of what hotspotd prints, held to what it prints today: exactly where
/// the output is the same on every machine, by its shape (the rows, the style) where it holds
/// times, keys and counts of its own.
@Suite(.capturingLogs, .serialized) struct ReadmeExamplesTests {
    let readme = (try? String(contentsOfFile: repositoryRoot + "/README.md", encoding: .utf8)) ?? ""
    let directory: String = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-readme-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }()

    /// The fenced block whose first line starts with `firstLine`: the command (with its `\`
    /// continuations joined) and the lines it printed.
    func example(startingWith firstLine: String) -> (command: String, output: [String])? {
        examples(startingWith: firstLine).first
    }

    /// Every fenced block whose first line starts with `firstLine`, in the README's order.
    func examples(startingWith firstLine: String) -> [(command: String, output: [String])] {
        var blocks: [[String]] = []
        var current: [String]?
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("```") {
                if let block = current {
                    blocks.append(block)
                    current = nil
                } else {
                    current = []
                }
            } else {
                current?.append(line)
            }
        }
        return blocks.filter { $0.first?.hasPrefix(firstLine) == true }.map { block in
            var lines = block
            var command = String(lines.removeFirst().dropFirst(2))
            while command.hasSuffix("\\"), !lines.isEmpty {
                command =
                    String(command.dropLast()).trimmingCharacters(in: .whitespaces) + " "
                    + lines.removeFirst().trimmingCharacters(in: .whitespaces)
            }
            return (command, lines)
        }
    }

    @Test func theFrameDecodeAndAirtimeExamplesAreWhatTheyPrint() async throws {
        let blocks = examples(startingWith: "$ hotspotd frame decode") + examples(startingWith: "$ hotspotd airtime")
        #expect(blocks.count == 3)
        for block in blocks {
            let arguments = block.command.split(separator: " ").dropFirst().map(String.init)
            let result = try await runHotspotd(arguments, in: directory)
            #expect(result.stdout.split(separator: "\n").map(String.init) == block.output, "\(block.command)")
        }
    }

    @Test func theStatusExampleHasTheRowsStatusPrints() async throws {
        let block = try #require(example(startingWith: "$ sudo hotspotd status"))
        let now = Int(Date().timeIntervalSince1970)
        let status = """
            {"pid":\(getpid()),"version":"0.1.0","gateway_id":"0a2c3e0aca4a4acf","board":"dragino-lora-gps-hat",
             "region":"EU868","broker":"mqtt://127.0.0.1:1883","started_at":\(now - 18000),"updated_at":\(now - 2),
             "update_interval_seconds":10,"running":true,"radio_answering":true,"broker_connected":true,
             "frames_received":18234,"uplinks_forwarded":18102,"uplinks_refused":132,"outbox_depth":0,
             "last_uplink_at":\(now - 4),"last_beacon_at":\(now - 3600),"last_witness_at":\(now - 1500)}
            """
        try status.write(toFile: directory + "/status.json", atomically: true, encoding: .utf8)
        let result = try await runHotspotd(["status", "--data-dir", directory], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        // The label is what stands before the run of spaces that aligns the values.
        func label(_ line: String) -> String {
            guard let range = line.range(of: "  ") else { return line }
            return String(line[..<range.lowerBound])
        }
        let printed = result.stdout.split(separator: "\n").map { label(String($0)) }
        let documented = block.output.map(label)
        #expect(printed.filter { $0 != "pairings" } == documented.filter { $0 != "pairings" }, "\(result.stdout)")
        #expect(result.stdout.contains("frames received    18234"))
        #expect(result.stdout.contains("broker             mqtt://127.0.0.1:1883, connected"))
    }

    @Test func theConfigurationErrorExampleIsInTheStyleRunUses() async throws {
        let documented = try #require(
            readme.split(separator: "\n").first { $0.hasPrefix("hotspotd: 42 is not a LoRaWAN spreading factor") })
        let config = directory + "/hotspotd.toml"
        let text =
            """
            [gateway]\nboard = \"mock\"\ndata_dir = \"\(directory)/data\"\nkey_file = \
            \"\(directory)/data/gateway.key\"\n\n[credits]\nauthority = \
            \"13WvV82S7QN3VMzMSieiGxvuaPKknMtf213E5JwPnboDkUfesKw\"\n\n[radio]\nfrequency = \
            868100000\n\nspreading_factor = 42\n
            """
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let result = try await runHotspotd(["run", "--config", config], in: directory)
        #expect(result.status == 78)
        #expect(
            result.stderr == documented.replacingOccurrences(of: "/etc/hotspotd/hotspotd.toml", with: config) + "\n")
    }

    @Test func theReportVerifyExampleHasTheRowsItPrints() async throws {
        let block = try #require(example(startingWith: "$ mosquitto_sub -h broker -t eu868/gateway/+/event/witness"))
        let key = Ed25519PrivateKey.generate()
        var witness = Helium_PocLora_lora_witness_report_req_v1()
        witness.pubKey = Data([Helium.ed25519Tag] + key.publicKey.bytes)
        witness.data = Data([UInt8](repeating: 0xE0, count: 52))
        witness.timestamp = 1_796_167_588_627_349_015
        witness.tmst = 1_627_553_096
        witness.signal = -1047
        witness.snr = 75
        witness.frequency = 868_100_000
        let file = directory + "/witness.json"
        try SignedReports.sign(witness, with: key).jsonString().write(
            toFile: file, atomically: true, encoding: .utf8)
        let result = try await runHotspotd(["report", "verify", file], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        func row(_ line: String) -> String { String(line.prefix { $0 != " " }) }
        let printed = result.stdout.split(separator: "\n").map { row(String($0)) }
        #expect(printed == block.output.dropFirst().map(row))
        // The figures as the example shows them.
        for line in block.output.dropFirst()
        where ["frequency", "datarate", "signal", "snr", "timestamp", "tmst"].contains(row(line)) {
            #expect(result.stdout.contains(line), "\(line) in \(result.stdout)")
        }
        #expect(result.stdout.contains("type       witness_report (JSON)"))
    }

    @Test func theProfileExampleAndItsRefusalAreWhatTheProgramSays() async throws {
        let start = try #require(readme.range(of: "```toml\nname = \"my-hat\""))
        let body = readme[readme.index(start.lowerBound, offsetBy: 8)...]
        let profile = String(body[..<body.range(of: "```")!.lowerBound])
        try profile.write(toFile: directory + "/my-hat.toml", atomically: true, encoding: .utf8)
        // The profile as written is accepted (probing fails only for want of the hardware).
        let good = try await runHotspotd(
            ["board", "list"], in: directory, environment: ["HOTSPOTD_BOARD_DIR": directory])
        #expect(good.stdout.contains("my-hat"), "\(good.stdout)\(good.stderr)")
        #expect(!good.stdout.contains("invalid"))
        // With the SPI speed the README gives, the refusal is the one it shows.
        try profile.replacingOccurrences(of: "speed_hz = 8_000_000", with: "speed_hz = 20_000_000").write(
            toFile: directory + "/my-hat.toml", atomically: true, encoding: .utf8)
        let block = try #require(example(startingWith: "$ hotspotd board probe --board ./my-hat.toml"))
        let refused = try await runHotspotd(
            block.command.split(separator: " ").dropFirst().map(String.init), in: directory)
        #expect(refused.status != 0)
        #expect(refused.stderr.split(separator: "\n").map(String.init) == block.output)
    }

    /// The full configuration the README shows, and the one the package installs once its
    /// authority is set, pass `config check`.
    @Test func theDocumentedConfigurationsPassConfigCheck() async throws {
        let start = try #require(readme.range(of: "```toml\n[gateway]\nboard = \"mock\""))
        let body = readme[readme.index(start.lowerBound, offsetBy: 8)...]
        let full = String(body[..<body.range(of: "```")!.lowerBound])
            .replacingOccurrences(of: "/var/lib/hotspotd", with: directory + "/data")
        try full.write(toFile: directory + "/full.toml", atomically: true, encoding: .utf8)
        let checked = try await runHotspotd(
            ["config", "check", "--no-broker", "--config", directory + "/full.toml"], in: directory)
        #expect(checked.status == 0, "\(checked.stderr)")
        #expect(checked.stdout.hasSuffix("configuration OK\n"))

        let packaged = try String(contentsOfFile: repositoryRoot + "/packaging/hotspotd.toml", encoding: .utf8)
        // The owner's one edit: the authority's line, commented out as installed.
        #expect(packaged.contains("\n# authority = "))
        let withAuthority = packaged.replacingOccurrences(of: "/var/lib/hotspotd", with: directory + "/data")
            .replacingOccurrences(of: "\n# authority = ", with: "\nauthority = ")
        try withAuthority.write(toFile: directory + "/packaged.toml", atomically: true, encoding: .utf8)
        let packagedChecked = try await runHotspotd(
            ["config", "check", "--no-broker", "--config", directory + "/packaged.toml"], in: directory)
        #expect(packagedChecked.status == 0, "\(packagedChecked.stderr)")
    }
}
