import ArgumentParser
import Clocks
import Credits
import Cryptography
import Wire

#if canImport(Glibc)
    import Glibc
#endif

struct CommandCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "command",
        abstract: "Build signed commands for a gateway, as the network authority.",
        subcommands: [Sign.self]
    )

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign a pair, unpair, credit or entropy command.",
            discussion: """
                Writes the command's bytes to standard output, for `mosquitto_pub -s`:
                  hotspotd command sign --key authority.key --gateway 0016c001ff10a235 \\
                    credit --owner alice --amount 1000 \\
                    | mosquitto_pub -t eu868/gateway/0016c001ff10a235/command/credit -s
                pair: --dev-addr, --owner, optionally --dev-eui, and --nwk-s-key with --seal-key (the
                gateway's sealing key, from `hotspotd key show`: the NwkSKey is sealed so that only that
                gateway can read it); unpair: --dev-addr; credit: --owner, --amount; entropy: --data.
                """
        )

        enum Kind: String, ExpressibleByArgument, CaseIterable {
            case pair, unpair, credit, entropy
        }

        @Option(name: .long, help: "The network authority's key file (Helium keypair format).")
        var key: String

        @Option(name: .long, help: "The gateway ID the command is for (16 hex digits).")
        var gateway: String

        @Argument(help: "pair, unpair, credit or entropy.")
        var kind: Kind

        @Option(name: .customLong("dev-addr"), help: "pair, unpair: the DevAddr, 8 hex digits.")
        var devAddr: String?

        @Option(name: .customLong("dev-eui"), help: "pair: the DevEUI, 16 hex digits (its join requests are charged).")
        var devEUI: String?

        @Option(
            name: .customLong("nwk-s-key"),
            help: "pair: the NwkSKey, 32 hex digits (MICs and frame counters are checked).")
        var nwkSKey: String?

        @Option(
            name: .customLong("seal-key"),
            help: "pair: the gateway's sealing key (hotspotd key show), 64 hex digits: the NwkSKey is sealed to it.")
        var sealKey: String?

        @Option(help: "pair, credit: the owner's account.")
        var owner: String?

        // Unconditional, so that `--amount -5` is read as a value (and refused as negative)
        // rather than as an unknown option.
        @Option(parsing: .unconditional, help: "credit: data credits to add, a positive whole number.")
        var amount: Int64?

        @Option(help: "entropy: the entropy, hex (up to 64 bytes).")
        var data: String?

        @Option(name: .long, help: "How long the command stays valid, in seconds.")
        var expiresIn: UInt64 = 3600

        @Flag(name: .long, help: "Write Base64 instead of raw bytes.")
        var base64 = false

        func run() throws {
            guard gateway.count == 16, gateway.allSatisfy(\.isHexDigit) else {
                throw ValidationError("--gateway must be 16 hex digits, not '\(gateway)'")
            }
            let command = try makeCommand()
            // As openssl does: binary on a terminal is garbage to the reader and can upset it.
            if !base64 && isatty(1) == 1 {
                throw ValidationError(
                    """
                    the signed command is binary and standard output is a terminal: pipe it (| mosquitto_pub -s …),\
                     redirect it to a file, or add --base64
                    """
                )
            }
            let authority: Ed25519PrivateKey
            do {
                authority = try KeyFile.read(key)
            } catch {
                printError(error.message)
                throw ExitCode(1)
            }
            guard (1...CommandAuthority.maximumLifetimeSeconds).contains(expiresIn) else {
                throw ValidationError(
                    """
                    --expires-in must be 1 to \(CommandAuthority.maximumLifetimeSeconds) seconds (a gateway \
                    refuses commands that live longer than a week)
                    """
                )
            }
            var sealingKey: [UInt8]?
            if case .pair(_, _, _, .some) = command {
                guard let sealKey, let key = Hex.decode(sealKey), key.count == 32 else {
                    throw ValidationError(
                        """
                        --nwk-s-key needs --seal-key, the gateway's sealing key from `hotspotd key show` (64 hex \
                        digits): a NwkSKey in the clear is refused, since every reader of the broker would see it
                        """
                    )
                }
                sealingKey = key
            }
            let bytes = try CommandSigner.sign(
                command, gatewayID: gateway, key: authority, expiresAt: UInt64(wallClockSeconds()) + expiresIn,
                sealingKey: sealingKey)
            if base64 {
                print(Base64.encode(bytes))
            } else {
                bytes.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
            }
        }

        func makeCommand() throws -> Command {
            func address() throws -> UInt32 {
                guard let devAddr, devAddr.count == 8, let value = UInt32(devAddr, radix: 16) else {
                    throw ValidationError("\(kind.rawValue) needs --dev-addr, 8 hex digits")
                }
                return value
            }
            func account() throws -> String {
                guard let owner, !owner.isEmpty else { throw ValidationError("\(kind.rawValue) needs --owner") }
                guard CommandAuthority.isValidOwner(owner) else {
                    throw ValidationError(
                        """
                        --owner must be 1 to 128 bytes of text without control characters (a gateway refuses \
                        others as invalid_owner)
                        """
                    )
                }
                return owner
            }
            switch kind {
            case .pair:
                var eui: UInt64?
                if let devEUI {
                    guard devEUI.count == 16, let value = UInt64(devEUI, radix: 16) else {
                        throw ValidationError("--dev-eui must be 16 hex digits")
                    }
                    eui = value
                }
                var sessionKey: [UInt8]?
                if let nwkSKey {
                    guard let bytes = Hex.decode(nwkSKey), bytes.count == 16 else {
                        throw ValidationError("--nwk-s-key must be 32 hex digits")
                    }
                    sessionKey = bytes
                }
                return .pair(devAddr: try address(), devEUI: eui, owner: try account(), nwkSKey: sessionKey)
            case .unpair:
                return .unpair(devAddr: try address())
            case .credit:
                guard let amount else {
                    throw ValidationError("credit needs --amount, a positive number of data credits")
                }
                guard amount > 0, amount <= Int64.max / 2 else {
                    throw ValidationError(
                        "--amount must be a positive number of data credits (1 to \(Int64.max / 2)), not \(amount)")
                }
                return .credit(owner: try account(), amount: amount)
            case .entropy:
                guard let data, let bytes = Hex.decode(data), !bytes.isEmpty, bytes.count <= 64 else {
                    throw ValidationError("entropy needs --data, 1 to 64 bytes of hex")
                }
                return .entropy(data: bytes, timestamp: UInt64(Nanoseconds.fromSeconds(Int64(wallClockSeconds()))))
            }
        }
    }
}

func wallClockSeconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return now.tv_sec
}
