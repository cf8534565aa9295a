import ArgumentParser
import Clocks
import Credits
import Cryptography
import FoundationEssentials
import HAL
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
            printError("no store here: has hotspotd run with gateway.data_dir = \"\(directory)\"? (\(path))")
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
        let text = try readConfigurationText(config, exitCode: 1)
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
            print(
                JSON.serialize(
                    .array(
                        pairings.map { pairing in
                            .object([
                                ("dev_addr", .string(DevAddr(pairing.devAddr).description)),
                                ("dev_eui", pairing.devEUI.map { .string(EUI64($0).description) } ?? .null),
                                ("owner", .string(pairing.owner)),
                                ("checks_mic", .bool(pairing.nwkSKey != nil)),
                                ("last_fcnt", pairing.lastFCnt.map { .number(Double($0)) } ?? .null),
                                ("paired_at", .number(Double(Nanoseconds.seconds(pairing.pairedAt)))),
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
            print(
                """
                \(DevAddr(pairing.devAddr))  \(eui.padding(to: 16))  \(pairing.owner.padding(to: 20))  \
                \(pairing.nwkSKey == nil ? "no " : "yes")  \(pairing.lastFCnt.map(String.init) ?? "-")
                """
            )
        }
    }
}

struct CreditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credits", abstract: "List owners' data-credit balances.")

    @OptionGroup var location: StoreLocation

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let accounts = try await location.open().accounts()
        if json {
            print(
                JSON.serialize(
                    .array(
                        accounts.map { account in
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
            abstract:
                """
                Check a signed message of hotspotd's: a usage receipt, a beacon or witness report, or a signed \
                command.
                """,
            discussion: """
                Takes the message as published or accepted, in either encoding: protobuf bytes, protobuf's JSON \
                mapping (mqtt.json = true), or Base64 of the bytes (`command sign --base64`). Prints the kind, \
                whether the signature checks and whose it is, and the fields in units a person reads. \
                Exits 0 when the signature checks, 1 when it does not, 65 when the input is none of these messages.
                """
        )

        @Argument(help: "A file holding the message (as published), or - for standard input.")
        var file: String

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            let bytes = try readAll(file)
            guard let message = Self.identify(bytes) else {
                printError(
                    """
                    not a usage receipt, beacon report, witness report or signed command, in protobuf, JSON or \
                    Base64 (\(file))
                    """
                )
                throw ExitCode(65)
            }
            if json {
                var members: [(String, JSONValue)] = [
                    ("type", .string(message.kind)), ("encoding", .string(message.encoding)),
                    ("signature_valid", .bool(message.signer != nil)),
                ]
                if let signer = message.signer {
                    members.append(("signer", .string(signer.address)))
                    members.append(("key_type", .string(signer.keyType.rawValue)))
                }
                members.append(("fields", .object(message.fields.map { ($0.0, .string($0.1)) })))
                print(JSON.serialize(.object(members)))
            } else {
                print("type       \(message.kind) (\(message.encoding))")
                let verdict = message.signer.map { "valid, signed by \($0.address) (\($0.keyType.rawValue))" }
                print("signature  \(verdict ?? "INVALID")")
                for (name, value) in message.fields { print("\(name.padding(to: 10)) \(value)") }
            }
            if message.signer == nil { throw ExitCode(1) }
        }

        struct Identified {
            var kind: String
            var encoding: String
            var fields: [(String, String)]
            /// The key whose signature checks; nil when it does not.
            var signer: HeliumPublicKey?
        }

        /// The ways the input may hold a message: JSON text, Base64 text of the bytes, the bytes.
        static func readings(of bytes: [UInt8]) -> [(
            encoding: String, decode: (any SwiftProtobuf.Message.Type) -> (any SwiftProtobuf.Message)?
        )] {
            let whole = String(decoding: bytes, as: UTF8.self).drop(while: \.isWhitespace)
            let text = String(whole.dropLast(whole.reversed().prefix(while: \.isWhitespace).count))
            if text.hasPrefix("{") {
                var options = JSONDecodingOptions()
                options.ignoreUnknownFields = false
                return [("JSON", { type in try? type.init(jsonUTF8Bytes: Array(text.utf8), options: options) })]
            }
            var readings:
                [(encoding: String, decode: (any SwiftProtobuf.Message.Type) -> (any SwiftProtobuf.Message)?)] = []
            if !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+/=".contains($0)) }),
                let decoded = Base64.decode(text)
            {
                readings.append(("Base64 of protobuf", { type in try? type.init(serializedBytes: decoded) }))
            }
            readings.append(("protobuf", { type in try? type.init(serializedBytes: bytes) }))
            return readings
        }

        /// Tries each signed message type in each reading; a type is recognised by a well-formed
        /// key and signature, and the fields it cannot do without.
        static func identify(_ bytes: [UInt8]) -> Identified? {
            /// A Helium key, and a signature of its kind's size: Ed25519's 64 bytes, or DER (at most
            /// 72 bytes) for ecc_compact.
            func plausible(_ report: some SignedReport) -> Bool {
                report.pubKey.count == 33 && (8...72).contains(report.signature.count)
            }
            for (encoding, decode) in readings(of: bytes) {
                if let receipt = decode(Hotspotd_UsageReceipt.self) as? Hotspotd_UsageReceipt, plausible(receipt),
                    !receipt.owner.isEmpty
                {
                    return Identified(
                        kind: "usage_receipt", encoding: encoding,
                        fields: [
                            ("gateway", receipt.gatewayID), ("owner", receipt.owner),
                            ("period", "\(Self.time(receipt.periodStart)) to \(Self.time(receipt.periodEnd))"),
                            ("uplinks", "\(receipt.uplinks)"),
                            ("bytes", "\(receipt.bytes)"), ("credits", "\(receipt.credits) DC"),
                            ("seq", "\(receipt.firstSeq) to \(receipt.lastSeq)"),
                            ("chain", "\(Hex.encode(receipt.previousChain)) → \(Hex.encode(receipt.chain))"),
                        ], signer: SignedReports.verify(receipt))
                }
                if let beacon = decode(Helium_PocLora_lora_beacon_report_req_v1.self)
                    as? Helium_PocLora_lora_beacon_report_req_v1,
                    plausible(beacon), !beacon.data.isEmpty, beacon.frequency > 0, !beacon.localEntropy.isEmpty
                {
                    return Identified(
                        kind: "beacon_report", encoding: encoding,
                        fields: [
                            ("data", Hex.encode(beacon.data)), ("frequency", Self.megahertz(beacon.frequency)),
                            ("channel", "\(beacon.channel)"),
                            ("datarate", Self.dataRate(beacon.datarate)),
                            ("tx_power", Self.tenths(Int64(beacon.txPower), unit: "dBm")),
                            ("timestamp", Self.time(beacon.timestamp)),
                            ("tmst", "\(beacon.tmst) µs (concentrator counter)"),
                            ("local", Hex.encode(beacon.localEntropy)), ("remote", Hex.encode(beacon.remoteEntropy)),
                        ], signer: SignedReports.verify(beacon))
                }
                if let witness = decode(Helium_PocLora_lora_witness_report_req_v1.self)
                    as? Helium_PocLora_lora_witness_report_req_v1,
                    plausible(witness), !witness.data.isEmpty
                {
                    return Identified(
                        kind: "witness_report", encoding: encoding,
                        fields: [
                            ("data", Hex.encode(witness.data)), ("frequency", Self.megahertz(witness.frequency)),
                            ("datarate", Self.dataRate(witness.datarate)),
                            ("signal", Self.tenths(Int64(witness.signal), unit: "dBm")),
                            ("snr", Self.tenths(Int64(witness.snr), unit: "dB")),
                            ("timestamp", Self.time(witness.timestamp)),
                            ("tmst", "\(witness.tmst) µs (concentrator counter)"),
                        ], signer: SignedReports.verify(witness))
                }
                if let command = decode(Hotspotd_SignedCommand.self) as? Hotspotd_SignedCommand,
                    command.signer.count == 32, command.signature.count == 64,
                    let body = try? Hotspotd_CommandBody(serializedBytes: command.body), !body.gatewayID.isEmpty
                {
                    let key = try? Ed25519PublicKey(bytes: Array(command.signer))
                    let valid =
                        key.map { $0.isValidSignature(Array(command.signature), for: Array(command.body)) } ?? false
                    return Identified(
                        kind: "signed_command", encoding: encoding, fields: Self.fields(of: body),
                        signer: valid ? key.map(HeliumPublicKey.ed25519) : nil)
                }
            }
            return nil
        }

        /// A command's fields. A pair's NwkSKey is said to be there, not printed.
        static func fields(of body: Hotspotd_CommandBody) -> [(String, String)] {
            let (expiresAt, overflow) = body.expiresAt.multipliedReportingOverflow(by: UInt64(Nanoseconds.perSecond))
            var fields: [(String, String)] = [
                ("gateway", body.gatewayID),
                ("expires", overflow ? "\(body.expiresAt) s after 1970 (out of range)" : Self.time(expiresAt)),
                ("nonce", Hex.encode(body.nonce)),
            ]
            switch body.command {
            case .pair(let pair):
                fields.insert(("command", "pair"), at: 0)
                fields += [("dev_addr", "\(DevAddr(pair.devAddr))"), ("owner", pair.owner)]
                if pair.devEui.count == 8 { fields.append(("dev_eui", Hex.encode(pair.devEui))) }
                fields.append(
                    (
                        "nwk_s_key",
                        pair.nwkSKey.isEmpty ? "none (MICs not checked)" : "\(pair.nwkSKey.count) bytes (not shown)"
                    ))
            case .unpair(let unpair):
                fields.insert(("command", "unpair"), at: 0)
                fields.append(("dev_addr", "\(DevAddr(unpair.devAddr))"))
            case .credit(let credit):
                fields.insert(("command", "credit"), at: 0)
                fields += [("owner", credit.owner), ("amount", "\(credit.amount) DC")]
            case .entropy(let entropy):
                fields.insert(("command", "entropy"), at: 0)
                fields += [("data", Hex.encode(entropy.data)), ("timestamp", Self.time(entropy.timestamp))]
            case nil:
                fields.insert(("command", "none"), at: 0)
            }
            return fields
        }

        /// Nanoseconds since the Unix epoch as ISO 8601 in UTC, to the millisecond.
        static func time(_ nanoseconds: UInt64) -> String {
            let time = Int64(clamping: nanoseconds)
            var seconds = time_t(Nanoseconds.seconds(time))
            var parts = tm()
            gmtime_r(&seconds, &parts)
            func digits(_ value: Int, _ count: Int) -> String {
                let text = String(value)
                return String(repeating: "0", count: max(0, count - text.count)) + text
            }
            let milliseconds = Int(Nanoseconds.fraction(time) / 1_000_000)
            return
                """
                \(digits(Int(parts.tm_year) + 1900, 4))-\(digits(Int(parts.tm_mon) + 1, 2))-\
                \(digits(Int(parts.tm_mday), 2))T
                """
                    + """
                    \(digits(Int(parts.tm_hour), 2)):\(digits(Int(parts.tm_min), 2)):\
                    \(digits(Int(parts.tm_sec), 2)).\(digits(milliseconds, 3))Z
                    """
        }

        /// Tenths of a unit (ddBm, ddB) as the unit with one decimal: -1047 → "-104.7 dBm".
        static func tenths(_ value: Int64, unit: String) -> String {
            let sign = value < 0 ? "-" : ""
            return "\(sign)\(abs(value) / 10).\(abs(value) % 10) \(unit)"
        }

        /// Hz as MHz with three decimals: 868100000 → "868.100 MHz".
        static func megahertz(_ hertz: UInt64) -> String {
            let kHz = hertz / 1000 + (hertz % 1000 >= 500 ? 1 : 0)
            let fraction = String(kHz % 1000)
            return "\(kHz / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction) MHz"
        }

        /// Helium's data_rate by its name in the .proto: SF12BW125 …
        static func dataRate(_ rate: Helium_data_rate) -> String {
            let names = [
                "SF12BW125", "SF11BW125", "SF10BW125", "SF9BW125", "SF8BW125", "SF7BW125", "SF12BW250", "SF11BW250",
                "SF10BW250",
                "SF9BW250", "SF8BW250", "SF7BW250", "SF12BW500", "SF11BW500", "SF10BW500", "SF9BW500", "SF8BW500",
                "SF7BW500",
                "LRFHSS1BW137", "LRFHSS2BW137", "LRFHSS1BW336", "LRFHSS2BW336", "LRFHSS1BW1523", "LRFHSS2BW1523",
                "FSK50",
            ]
            return names.indices.contains(rate.rawValue) ? names[rate.rawValue] : "data rate \(rate.rawValue)"
        }

        func readAll(_ path: String) throws -> [UInt8] {
            let fd = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                printError("cannot read: \(String(cString: strerror(errno))) (\(path))")
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
