import Agent
import ChirpStack
import Clocks
import Credits
import Cryptography
import Foundation
import Messages
import Store
import TestSupport
import Testing
import Transport

/// Runs the built `hotspotd` from `directory`, with the environment given (nothing of the
/// test's own HOTSPOTD_* variables).
func runHotspotd(_ arguments: [String], in directory: String, environment extra: [String: String] = [:]) async throws
    -> (status: Int32, stdout: String, stderr: String)
{
    try await offThePool { try runHotspotdBlocking(arguments, in: directory, environment: extra) }
}

private func runHotspotdBlocking(_ arguments: [String], in directory: String, environment extra: [String: String])
    throws -> (status: Int32, stdout: String, stderr: String)
{
    let process = Process()
    process.executableURL = productsDirectory.appendingPathComponent("hotspotd")
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HOTSPOTD_") }
    environment.merge(extra) { $1 }
    process.environment = environment
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

/// The command line as one tool: one error style, errors that say where and why, and output a
/// person reads.
@Suite(.capturingLogs, .serialized) struct CommandLineStyleTests {
    let directory: String = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-style-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }()
    let authority = "13WvV82S7QN3VMzMSieiGxvuaPKknMtf213E5JwPnboDkUfesKw"

    func write(_ text: String, to name: String) throws -> String {
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func usageErrorsNameTheSubcommandAndShowItsUsage() async throws {
        let result = try await runHotspotd(["airtime", "--sf", "7"], in: directory)
        #expect(result.status == 64)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.first == "hotspotd: missing expected argument '--size <size>' (hotspotd airtime)")
        #expect(lines.dropFirst().first?.hasPrefix("usage: hotspotd airtime [--sf <sf>]") == true, "\(result.stderr)")
        #expect(!result.stderr.contains("Error:"))
        let unknown = try await runHotspotd(
            ["command", "sign", "--key", "k", "--gateway", "0016c001ff10a235", "credit", "--frobnicate"], in: directory)
        #expect(
            unknown.stderr.hasPrefix("hotspotd: unknown option '--frobnicate' (hotspotd command sign)"),
            "\(unknown.stderr)")
        #expect(unknown.stderr.contains("usage: hotspotd command sign"))
    }

    @Test func aNegativeAmountIsRefusedWithItsReason() async throws {
        let result = try await runHotspotd(
            [
                "command", "sign", "--key", "k", "--gateway", "0016c001ff10a235", "credit", "--owner", "alice",
                "--amount", "-5",
            ], in: directory)
        #expect(result.status == 64)
        #expect(
            result.stderr.hasPrefix(
                """
                hotspotd: --amount must be a positive number of data credits (1 to 4611686018427387903), not -5 \
                (hotspotd command sign)
                """
            ), "\(result.stderr)")
    }

    @Test func aSignedCommandIsNotWrittenToATerminal() async throws {
        let keyFile = directory + "/authority.key"
        #expect(try await runHotspotd(["key", "generate", "--key-file", keyFile], in: directory).status == 0)
        let binary = productsDirectory.appendingPathComponent("hotspotd").path
        // `script` gives the command a terminal as its standard output.
        let command =
            """
            \(binary) command sign --key \(keyFile) --gateway 0016c001ff10a235 credit --owner alice --amount 5; \
            echo \"exit $?\"
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-q", "-e", "-c", command, "/dev/null"]
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(text.contains("standard output is a terminal"), "\(text)")
        #expect(text.contains("--base64"))
        #expect(text.contains("exit 64"))
    }

    @Test func airtimeTakesTheBandwidthInHertzToo() async throws {
        let kHz = try await runHotspotd(["airtime", "--sf", "7", "--bw", "125", "--size", "20"], in: directory)
        let hertz = try await runHotspotd(["airtime", "--sf", "7", "--bw", "125000", "--size", "20"], in: directory)
        #expect(kHz.status == 0 && hertz.status == 0, "\(hertz.stderr)")
        #expect(kHz.stdout == hertz.stdout)
        #expect(kHz.stdout == "56.576\n")
    }

    @Test func frameDecodeNamesTheFCtrlBitsAlikeInBothOutputs() async throws {
        // An unconfirmed uplink with the ClassB bit set (FCtrl 0x10).
        let uplink = "40DA1B012610010002" + "AABBCCDD"
        let text = try await runHotspotd(["frame", "decode", uplink], in: directory)
        let json = try await runHotspotd(["frame", "decode", "--json", uplink], in: directory)
        #expect(text.stdout.contains("ClassB=true"), "\(text.stdout)\(text.stderr)")
        #expect(json.stdout.contains(#""class_b":true"#), "\(json.stdout)")
        #expect(!json.stdout.contains("f_pending"))
    }

    @Test func boardProfilesAreFoundFromAnyDirectoryAndListedByName() async throws {
        let result = try await runHotspotd(["board", "list"], in: "/")
        #expect(result.status == 0, "\(result.stderr)")
        let names = result.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
        #expect(names.contains("mock") && names.contains("rak2287"))
        #expect(names == names.sorted())
        #expect(names.firstIndex(of: "mock")! < names.firstIndex(of: "mock-sx1262")!)
    }

    @Test func keyGenerateMakesTheDirectoryItNeeds() async throws {
        let keyFile = directory + "/state/hotspotd/gateway.key"
        let result = try await runHotspotd(["key", "generate", "--key-file", keyFile], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/state/hotspotd")
        #expect((attributes[.posixPermissions] as? Int) == 0o700)
        #expect(try await runHotspotd(["key", "show", "--key-file", keyFile], in: directory).status == 0)
    }

    @Test func anUnknownBoardNamesTheFileTheLineAndTheKey() async throws {
        let config = try write(
            """
            [gateway]\nregion = \"EU868\"\nboard = \"nosuch\"\ndata_dir = \"\(directory)/data\"\nkey_file = \
            \"\(directory)/data/gateway.key\"\n\n[credits]\nauthority = \"\(authority)\"\n
            """,
            to: "board.toml")
        let run = try await runHotspotd(["run", "--config", config], in: directory)
        #expect(run.status == 78)
        #expect(run.stderr.contains("no board profile named 'nosuch'"), "\(run.stderr)")
        #expect(run.stderr.contains("(\(config):3: gateway.board)"), "\(run.stderr)")
        let check = try await runHotspotd(["config", "check", "--no-broker", "--config", config], in: directory)
        #expect(check.status == 78)
        #expect(check.stderr.contains("(\(config):3: gateway.board)"), "\(check.stderr)")
    }

    @Test func aMisspeltEnvironmentVariableIsRefusedWithTheNearestName() async throws {
        let config = try write(
            """
            [gateway]\ndata_dir = \"\(directory)/data\"\nkey_file = \
            \"\(directory)/data/gateway.key\"\n[credits]\nauthority = \"\(authority)\"\n
            """,
            to: "env.toml")
        let result = try await runHotspotd(
            ["run", "--config", config], in: directory, environment: ["HOTSPOTD_MQTT_SERVR": "mqtt://broker"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("HOTSPOTD_MQTT_SERVR"), "\(result.stderr)")
        #expect(result.stderr.contains("did you mean HOTSPOTD_MQTT_SERVER?"))
    }

    @Test func aBareNumberForADurationSaysWhatIsWanted() async throws {
        let config = try write("[stats]\ninterval = 10\n[credits]\nauthority = \"\(authority)\"\n", to: "duration.toml")
        let result = try await runHotspotd(["config", "check", "--no-broker", "--config", config], in: directory)
        #expect(result.status == 78)
        #expect(
            result.stderr.contains(
                #"""
                expected a duration as a string with its unit, such as "10s" (units: ms, s, m, h, d), found an \#
                integer (\#(config):2: stats.interval)
                """#
            ), "\(result.stderr)")
    }

    @Test func configCheckSaysEveryProblemAtOnce() async throws {
        let config = try write(
            """
            [gateway]
            regoin = "EU868"
            board = "nosuch"
            data_dir = "\(directory)/data"
            key_file = "\(directory)/data/gateway.key"

            [mqtt]
            qos = 2

            [credits]
            authority = "nope"
            """, to: "many.toml")
        let result = try await runHotspotd(["config", "check", "--no-broker", "--config", config], in: directory)
        #expect(result.status == 78)
        let problems = result.stderr.split(separator: "\n").filter { $0.hasPrefix("hotspotd: ") }
        #expect(problems.count == 4, "\(result.stderr)")
        #expect(result.stderr.contains("unknown key; did you mean 'region'?"))
        #expect(result.stderr.contains("(\(config):2: gateway.regoin)"))
        #expect(result.stderr.contains("(\(config):8: mqtt.qos)"))
        #expect(result.stderr.contains("(\(config):11: credits.authority)"))
        #expect(result.stderr.contains("(\(config):3: gateway.board)"))
        #expect(
            !FileManager.default.fileExists(atPath: directory + "/data/gateway.key"), "config check creates nothing")
    }

    @Test func configCheckConnectsToTheBrokerOnce() async throws {
        let broker = try Broker()
        let config = try write(
            """
            [gateway]
            board = "mock"
            data_dir = "\(directory)/data"
            key_file = "\(directory)/data/gateway.key"
            [mqtt]
            server = "mqtt://127.0.0.1:\(broker.port)"
            [credits]
            authority = "\(authority)"
            """, to: "good.toml")
        let good = try await runHotspotd(["config", "check", "--config", config], in: directory)
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.contains("mqtt://127.0.0.1:\(broker.port): connected"))
        #expect(good.stdout.contains("does not exist yet: the first start creates it"))
        #expect(good.stdout.hasSuffix("configuration OK\n"))
        broker.stop()
        let down = try await runHotspotd(
            ["config", "check", "--config", config, "--broker-timeout", "2"], in: directory)
        #expect(down.status == 78)
        #expect(
            down.stderr.contains("cannot connect to the broker at mqtt://127.0.0.1:\(broker.port)"), "\(down.stderr)")
        #expect(down.stderr.contains("(\(config):6: mqtt.server)"))
    }

    @Test func configShowPrintsWhatIsInEffectAndWhereItCameFrom() async throws {
        let config = try write(
            "[mqtt]\nusername = \"hotspot\"\npassword = \"s3cret\"\n[credits]\nauthority = \"\(authority)\"\n",
            to: "show.toml")
        let result = try await runHotspotd(
            ["config", "show", "--config", config], in: directory,
            environment: ["HOTSPOTD_MQTT_SERVER": "mqtts://broker.example:8883"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.contains("s3cret"))
        #expect(result.stdout.contains(#"password = "********""#))
        #expect(result.stdout.contains(#"server = "mqtts://broker.example:8883""#))
        #expect(result.stdout.contains("# from HOTSPOTD_MQTT_SERVER"))
        #expect(result.stdout.contains("# \(config):2"))
        #expect(result.stdout.contains(#"shutdown_timeout = "5s""#))
    }

    @Test func reportVerifyTakesEverySignedMessageInEitherEncoding() async throws {
        let key = Ed25519PrivateKey.generate()
        let signer = Helium.address(of: key.publicKey)

        // A usage receipt as the agent publishes it with mqtt.json = true.
        let summary = ReceiptSummary(
            owner: "alice", periodStart: 1_764_547_200_000_000_000, periodEnd: 1_764_547_800_000_000_000, uplinks: 3,
            bytes: 60, credits: 3, firstSeq: 1, lastSeq: 3, previousChain: [UInt8](repeating: 0, count: 32),
            chain: [UInt8](repeating: 7, count: 32))
        let receipt = try ReceiptIssuer.receipt(summary, signer: key, gatewayID: "0016c001ff10a235")
        let receiptFile = try write(try receipt.jsonString(), to: "receipt.json")
        let fromJSON = try await runHotspotd(["report", "verify", receiptFile], in: directory)
        #expect(fromJSON.status == 0, "\(fromJSON.stderr)")
        #expect(fromJSON.stdout.contains("type       usage_receipt (JSON)"))
        #expect(fromJSON.stdout.contains("valid, signed by \(signer)"))
        #expect(
            fromJSON.stdout.contains("period     2025-12-01T00:00:00.000Z to 2025-12-01T00:10:00.000Z"),
            "\(fromJSON.stdout)")

        // A witness report, in protobuf: signal and SNR in the units people read.
        var witness = Helium_PocLora_lora_witness_report_req_v1()
        witness.pubKey = Data([Helium.ed25519Tag] + key.publicKey.bytes)
        witness.data = Data([UInt8](repeating: 0xE0, count: 52))
        witness.timestamp = 1_764_547_200_123_000_000
        witness.signal = -1047
        witness.snr = 92
        witness.frequency = 868_100_000
        witness.datarate = .sf12Bw125
        let signedWitness = try SignedReports.sign(witness, with: key)
        let witnessFile = directory + "/witness.bin"
        try Data(try signedWitness.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: witnessFile))
        let witnessResult = try await runHotspotd(["report", "verify", witnessFile], in: directory)
        #expect(witnessResult.status == 0, "\(witnessResult.stderr)")
        for expected in [
            "signal     -104.7 dBm", "snr        9.2 dB", "frequency  868.100 MHz", "datarate   SF12BW125",
            "timestamp  2025-12-01T00:00:00.123Z",
        ] {
            #expect(witnessResult.stdout.contains(expected), "\(expected) in \(witnessResult.stdout)")
        }

        // A signed command, as `command sign` writes it: raw bytes and Base64.
        let keyFile = directory + "/authority.key"
        #expect(try await runHotspotd(["key", "generate", "--key-file", keyFile], in: directory).status == 0)
        let authorityAddress = Helium.address(of: try KeyFile.read(keyFile).publicKey)
        let base64 = try await runHotspotd(
            [
                "command", "sign", "--key", keyFile, "--gateway", "0016c001ff10a235", "credit", "--owner", "alice",
                "--amount", "1000", "--base64",
            ], in: directory)
        let commandFile = try write(base64.stdout, to: "credit.b64")
        let fromBase64 = try await runHotspotd(["report", "verify", commandFile], in: directory)
        #expect(fromBase64.status == 0, "\(fromBase64.stderr)")
        #expect(fromBase64.stdout.contains("type       signed_command (Base64 of protobuf)"))
        #expect(fromBase64.stdout.contains("valid, signed by \(authorityAddress)"))
        #expect(fromBase64.stdout.contains("amount     1000 DC"))
        let raw = try #require(Data(base64Encoded: base64.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        try raw.write(to: URL(fileURLWithPath: directory + "/credit.bin"))
        let fromBytes = try await runHotspotd(["report", "verify", "--json", directory + "/credit.bin"], in: directory)
        #expect(fromBytes.status == 0)
        #expect(
            fromBytes.stdout.contains(#""type":"signed_command""#)
                && fromBytes.stdout.contains(#""signature_valid":true"#), "\(fromBytes.stdout)")

        // Garbage is none of these: exit 65, the file named.
        let garbage = try write("hello", to: "garbage.txt")
        let refused = try await runHotspotd(["report", "verify", garbage], in: directory)
        #expect(refused.status == 65)
        #expect(refused.stderr.hasPrefix("hotspotd: not a usage receipt"))
        #expect(refused.stderr.contains("(\(garbage))"))
    }
}

@Suite(.capturingLogs) struct ShellCompletionTests {
    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScriptsKnowEverySubcommand(shell: String) async throws {
        let result = try await runHotspotd(["--generate-completion-script", shell], in: "/")
        #expect(result.status == 0, "\(result.stderr)")
        for subcommand in [
            "run", "status", "config", "check", "show", "board", "key", "frame", "command", "devices", "credits",
            "report", "verify", "airtime",
        ] {
            #expect(result.stdout.contains(subcommand), "\(shell): \(subcommand)")
        }
    }
}

/// Errors about files say what went wrong, then the file: `hotspotd: <what> (<where>)`.
@Suite(.capturingLogs) struct FileErrorStyleTests {
    @Test(arguments: [
        (
            ["run", "--config", "/nonexistent/hotspotd.toml"],
            "hotspotd: the configuration cannot be read: no such file (/nonexistent/hotspotd.toml)", Int32(78)
        ),
        (
            ["config", "check", "--config", "/nonexistent/hotspotd.toml"],
            "hotspotd: the configuration cannot be read: no such file (/nonexistent/hotspotd.toml)", 78
        ),
        (
            ["key", "show", "--key-file", "/nonexistent/gateway.key"],
            """
            hotspotd: no key file; `hotspotd key generate --key-file /nonexistent/gateway.key` creates one \
            (/nonexistent/gateway.key)
            """,
            1
        ),
        (
            ["devices", "--data-dir", "/nonexistent"],
            """
            hotspotd: no store here: has hotspotd run with gateway.data_dir = \"/nonexistent\"? \
            (/nonexistent/hotspotd.db)
            """,
            1
        ),
        (
            ["status", "--data-dir", "/nonexistent"],
            "hotspotd: no status: hotspotd has not run with this data directory (/nonexistent/status.json)", 1
        ),
    ])
    func fileErrorsNameTheFileLast(arguments: [String], expected: String, status: Int32) async throws {
        let result = try await runHotspotd(arguments, in: "/")
        #expect(result.status == status)
        #expect(result.stderr == expected + "\n")
    }
}
