import ArgumentParser
import Credits
import HAL
import Cryptography
import FoundationEssentials
import LoRaPHY
import LoRaWAN
import Messages
import Store
import SwiftProtobuf
import TOML
import Wire

#if canImport(Glibc)
import Glibc
#endif

let defaultDataDirectory = "/var/lib/hotspotd"
let defaultConfigFile = "/etc/hotspotd/hotspotd.toml"

/// Where a command that reads the store finds it.
struct StoreLocation: ParsableArguments {
    @Option(name: .long, help: "The configuration file whose gateway.data_dir holds the store.")
    var config: String = defaultConfigFile

    @Option(name: .long, help: "The data directory (overrides the configuration).")
    var dataDir: String?

    /// Opens the existing store; a missing one is an error, not an empty new database.
    func open() throws -> Store {
        let directory = try dataDir ?? configuredDataDirectory()
        let path = directory + "/hotspotd.db"
        guard access(path, F_OK) == 0 else {
            printError("no store at \(path): has hotspotd run with gateway.data_dir = \"\(directory)\"?")
            throw ExitCode(1)
        }
        do {
            return try Store(readingFrom: path)
        } catch {
            printError(error.message)
            throw ExitCode(1)
        }
    }

    /// The data directory: `--data-dir`, or the configuration's `gateway.data_dir`.
    func directory() throws -> String {
        try dataDir ?? configuredDataDirectory()
    }

    private func configuredDataDirectory() throws -> String {
        guard access(config, F_OK) == 0 else { return defaultDataDirectory }
        let text: String
        do {
            text = try readTextFile(config)
        } catch {
            printError(error.message)
            throw ExitCode(1)
        }
        do {
            let root = try TOMLSection.parse(text, file: config)
            return try root.section("gateway")?.string("data_dir") ?? defaultDataDirectory
        } catch {
            printError(error.description)
            throw ExitCode(78)
        }
    }
}

struct DevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "devices", abstract: "List the paired sensors.")

    @OptionGroup var location: StoreLocation

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let pairings = try await location.open().pairings()
        if json {
            print(JSON.serialize(.array(pairings.map { pairing in
                .object([
                    ("dev_addr", .string(DevAddr(pairing.devAddr).description)),
                    ("dev_eui", pairing.devEUI.map { .string(EUI64($0).description) } ?? .null),
                    ("owner", .string(pairing.owner)),
                    ("checks_mic", .bool(pairing.nwkSKey != nil)),
                    ("last_fcnt", pairing.lastFCnt.map { .number(Double($0)) } ?? .null),
                    ("paired_at", .number(Double(pairing.pairedAt / 1_000_000_000))),
                ])
            })))
            return
        }
        guard !pairings.isEmpty else {
            print("no sensors paired")
            return
        }
        print("DEV_ADDR  DEV_EUI           OWNER                 MIC  LAST_FCNT")
        for pairing in pairings {
            let eui = pairing.devEUI.map { EUI64($0).description } ?? "-"
            print("\(DevAddr(pairing.devAddr))  \(eui.padding(to: 16))  \(pairing.owner.padding(to: 20))  \(pairing.nwkSKey == nil ? "no " : "yes")  \(pairing.lastFCnt.map(String.init) ?? "-")")
        }
    }
}

struct CreditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "credits", abstract: "List owners' data-credit balances.")

    @OptionGroup var location: StoreLocation

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let accounts = try await location.open().accounts()
        if json {
            print(JSON.serialize(.array(accounts.map { account in
                .object([
                    ("owner", .string(account.owner)),
                    ("balance", .number(Double(account.balance))),
                    ("charged", .number(Double(account.charged))),
                    ("chain", .string(Hex.encode(account.chain))),
                ])
            })))
            return
        }
        guard !accounts.isEmpty else {
            print("no accounts")
            return
        }
        print("OWNER                 BALANCE   CHARGED")
        for account in accounts {
            print("\(account.owner.padding(to: 20))  \(String(account.balance).padding(to: 8))  \(account.charged)")
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Check signed reports and receipts.",
        subcommands: [Verify.self]
    )

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode a signed message of hotspotd's (usage receipt, beacon or witness report), check its signature, print the signer's address and the fields.",
            discussion: "Exits 0 when the signature checks, 1 when it does not or the message is not one of these."
        )

        @Argument(help: "A file holding the message's bytes (as published), or - for standard input.")
        var file: String

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            let bytes = try readAll(file)
            guard let (kind, fields, signer) = Self.identify(bytes) else {
                printError("\(file) is not a usage receipt, beacon report or witness report")
                throw ExitCode(1)
            }
            let verdict = signer.map { "valid, signed by \(Helium.address(of: $0))" } ?? "INVALID"
            if json {
                var members: [(String, JSONValue)] = [("type", .string(kind)), ("signature_valid", .bool(signer != nil))]
                if let signer { members.append(("signer", .string(Helium.address(of: signer)))) }
                members.append(("fields", .object(fields.map { ($0.0, .string($0.1)) })))
                print(JSON.serialize(.object(members)))
            } else {
                print("type       \(kind)")
                print("signature  \(verdict)")
                for (name, value) in fields { print("\(name.padding(to: 10)) \(value)") }
            }
            if signer == nil { throw ExitCode(1) }
        }

        /// Tries each signed message type; a type is recognised by a well-formed key and signature.
        static func identify(_ bytes: [UInt8]) -> (String, [(String, String)], Ed25519PublicKey?)? {
            func plausible(_ report: some SignedReport) -> Bool {
                report.pubKey.count == 33 && report.signature.count == 64
            }
            if let receipt = try? Hotspotd_UsageReceipt(serializedBytes: bytes), plausible(receipt), !receipt.owner.isEmpty {
                return ("usage_receipt", [
                    ("gateway", receipt.gatewayID), ("owner", receipt.owner),
                    ("period", "\(receipt.periodStart) – \(receipt.periodEnd) ns"), ("uplinks", "\(receipt.uplinks)"),
                    ("bytes", "\(receipt.bytes)"), ("credits", "\(receipt.credits)"),
                    ("seq", "\(receipt.firstSeq) – \(receipt.lastSeq)"),
                    ("chain", "\(Hex.encode(receipt.previousChain)) → \(Hex.encode(receipt.chain))"),
                ], SignedReports.verify(receipt))
            }
            if let beacon = try? Helium_PocLora_lora_beacon_report_req_v1(serializedBytes: bytes), plausible(beacon), !beacon.data.isEmpty, beacon.frequency > 0, !beacon.localEntropy.isEmpty {
                return ("beacon_report", [
                    ("data", Hex.encode(beacon.data)), ("frequency", "\(beacon.frequency) Hz"), ("channel", "\(beacon.channel)"),
                    ("datarate", "\(beacon.datarate)"), ("tx_power", "\(beacon.txPower) ddBm"), ("timestamp", "\(beacon.timestamp) ns"),
                    ("tmst", "\(beacon.tmst)"), ("local", Hex.encode(beacon.localEntropy)), ("remote", Hex.encode(beacon.remoteEntropy)),
                ], SignedReports.verify(beacon))
            }
            if let witness = try? Helium_PocLora_lora_witness_report_req_v1(serializedBytes: bytes), plausible(witness), !witness.data.isEmpty {
                return ("witness_report", [
                    ("data", Hex.encode(witness.data)), ("frequency", "\(witness.frequency) Hz"), ("datarate", "\(witness.datarate)"),
                    ("signal", "\(witness.signal) ddBm"), ("snr", "\(witness.snr) ddB"), ("timestamp", "\(witness.timestamp) ns"), ("tmst", "\(witness.tmst)"),
                ], SignedReports.verify(witness))
            }
            return nil
        }

        func readAll(_ path: String) throws -> [UInt8] {
            let fd = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                printError("cannot read \(path): \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
            defer { if fd != 0 { close(fd) } }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard count > 0 else { break }
                bytes += chunk[0..<count]
                if bytes.count > 1 << 20 { break }
            }
            return bytes
        }
    }
}
