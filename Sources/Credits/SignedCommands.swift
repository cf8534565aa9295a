import Clocks
import Cryptography
import FoundationEssentials
import LoRaPHY
import LoRaWAN
import Logging
import Messages
import Store
import SwiftProtobuf
import Wire

#if canImport(Glibc)
    import Glibc
#endif

/// A command from the network authority, once checked.
public enum Command: Sendable, Equatable {
    case pair(devAddr: UInt32, devEUI: UInt64?, owner: String, nwkSKey: [UInt8]?)
    case unpair(devAddr: UInt32)
    case credit(owner: String, amount: Int64)
    case entropy(data: [UInt8], timestamp: UInt64)

    public var name: String {
        switch self {
        case .pair: "pair"
        case .unpair: "unpair"
        case .credit: "credit"
        case .entropy: "entropy"
        }
    }
}

/// A command that passed every check but the nonce, which the store applies once.
public struct VerifiedCommand: Sendable, Equatable {
    public var command: Command
    public var nonce: [UInt8]
    /// Seconds since the Unix epoch.
    public var expiresAt: UInt64
}

/// Why a command was refused. The raw value is the `reason` published on `event/rejected`.
public enum CommandRefusal: String, Error, Sendable, Equatable, CaseIterable {
    case undecodable
    case wrongSigner = "wrong_signer"
    case badSignature = "bad_signature"
    case wrongGateway = "wrong_gateway"
    case expired
    case badNonce = "bad_nonce"
    case replayed
    case invalid
    case notPaired = "not_paired"
    case oversized
    /// The credit would take the balance past what a ledger holds.
    case balanceLimit = "balance_limit"
    /// An owner name with a control character (a NUL would cut it short in the store).
    case invalidOwner = "invalid_owner"
    /// The command expired before a moment the authority's later commands prove has passed.
    case outdated
    /// systemd-timesyncd says the clock is not synchronised yet: expiry cannot be judged.
    case clockUnsynchronized = "clock_unsynchronized"
    /// A pair with its NwkSKey in the clear, which every reader of the broker has seen.
    case unsealedKey = "unsealed_key"
    /// A sealed NwkSKey this gateway cannot open: sealed to another gateway's key.
    case badSeal = "bad_seal"

    public var explanation: String {
        switch self {
        case .oversized: "larger than any signed command (\(CommandAuthority.maximumSize) bytes at most)"
        case .undecodable: "not a SignedCommand"
        case .wrongSigner: "not signed by the configured network authority"
        case .badSignature: "the signature does not match the command"
        case .wrongGateway: "the command names another gateway"
        case .expired: "the command has expired"
        case .badNonce: "the nonce must be 8 to 32 bytes"
        case .replayed: "the command's nonce was applied before"
        case .invalid: "the command's fields are not valid"
        case .notPaired: "no sensor is paired at that DevAddr"
        case .balanceLimit: "the credit would take the balance past \(Store.maximumBalance) DC, the most a ledger holds"
        case .invalidOwner: "an owner is 1 to 128 bytes of text without control characters"
        case .outdated:
            """
            the command expired before the time the network authority's later commands show has passed (the clock \
            may be behind)
            """
        case .clockUnsynchronized: "the clock is not synchronised yet (systemd-timesyncd): commands wait until it is"
        case .unsealedKey:
            """
            the NwkSKey is in the clear, readable by anyone on the broker: seal it to this gateway (command sign \
            pair --seal-key, from hotspotd key show)
            """
        case .badSeal: "the NwkSKey is sealed to another key than this gateway's (hotspotd key show prints it)"
        }
    }
}

/// Checks signed commands: signed by the network authority (an Ed25519 key given as a Helium
/// address), for this gateway, not expired, with a usable nonce. Replays are the store's to
/// refuse, since only it remembers the nonces applied.
public struct CommandAuthority: Sendable {
    public let authority: Ed25519PublicKey
    public let gatewayID: String

    public static let maximumLifetimeSeconds: UInt64 = 7 * 86_400
    /// The largest signed command: a pair with the longest owner is under 300 bytes. Anything
    /// larger is refused before it is decoded.
    public static let maximumSize = 1024

    /// Opens NwkSKeys sealed to this gateway; without it, no sealed key can be taken.
    public let sealingKey: X25519PrivateKey?

    public init(authority: Ed25519PublicKey, gatewayID: String, sealingKey: X25519PrivateKey? = nil) {
        self.authority = authority
        self.gatewayID = gatewayID.lowercased()
        self.sealingKey = sealingKey
    }

    /// `now` in seconds since the Unix epoch.
    public func verify(_ bytes: [UInt8], now: UInt64) -> Result<VerifiedCommand, CommandRefusal> {
        guard bytes.count <= Self.maximumSize else { return .failure(.oversized) }
        guard let signed = try? Hotspotd_SignedCommand(serializedBytes: bytes) else { return .failure(.undecodable) }
        guard Array(signed.signer) == authority.bytes else { return .failure(.wrongSigner) }
        guard authority.isValidSignature(Array(signed.signature), for: Array(signed.body)) else {
            return .failure(.badSignature)
        }
        guard let body = try? Hotspotd_CommandBody(serializedBytes: signed.body) else { return .failure(.undecodable) }
        guard body.gatewayID.lowercased() == gatewayID else { return .failure(.wrongGateway) }
        guard body.expiresAt > now else { return .failure(.expired) }
        // A command may live a week at most: its nonce is kept until it expires.
        guard body.expiresAt <= now + Self.maximumLifetimeSeconds else { return .failure(.invalid) }
        guard (8...32).contains(body.nonce.count) else { return .failure(.badNonce) }
        let command: Command
        switch body.command {
        case .pair(let pair):
            guard Self.isValidOwner(pair.owner) else { return .failure(.invalidOwner) }
            guard pair.devEui.isEmpty || pair.devEui.count == 8 else { return .failure(.invalid) }
            // A key in the clear has been read by everyone on the broker, who could then make
            // frames that pass its MIC and charge the owner: it is refused, not used.
            guard pair.nwkSKey.isEmpty else { return .failure(.unsealedKey) }
            var nwkSKey: [UInt8]?
            if !pair.sealedNwkSKey.isEmpty {
                guard let sealingKey,
                    let opened = try? SecretSeal.open(Array(pair.sealedNwkSKey), with: sealingKey, gatewayID: gatewayID)
                else {
                    return .failure(.badSeal)
                }
                nwkSKey = opened
            }
            command = .pair(
                devAddr: pair.devAddr,
                devEUI: pair.devEui.isEmpty ? nil : pair.devEui.reduce(0) { $0 << 8 | UInt64($1) },
                owner: pair.owner,
                nwkSKey: nwkSKey
            )
        case .unpair(let unpair):
            command = .unpair(devAddr: unpair.devAddr)
        case .credit(let credit):
            guard Self.isValidOwner(credit.owner) else { return .failure(.invalidOwner) }
            guard credit.amount > 0, credit.amount <= UInt64(Int64.max / 2) else { return .failure(.invalid) }
            command = .credit(owner: credit.owner, amount: Int64(credit.amount))
        case .entropy(let entropy):
            guard !entropy.data.isEmpty, entropy.data.count <= 64 else { return .failure(.invalid) }
            command = .entropy(data: Array(entropy.data), timestamp: entropy.timestamp)
        case nil:
            return .failure(.invalid)
        }
        return .success(VerifiedCommand(command: command, nonce: Array(body.nonce), expiresAt: body.expiresAt))
    }
}

extension CommandAuthority {
    /// 1 to 128 bytes, no control character: a NUL is stored whole but read back cut (C
    /// strings), so "alice\0x" would charge alice; other controls would garble logs and listings.
    public static func isValidOwner(_ owner: String) -> Bool {
        !owner.isEmpty && owner.utf8.count <= 128
            && !owner.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }
}

/// Builds signed commands, as the network authority (or `hotspotd command sign`) does.
public enum CommandSigner {
    /// A pair's NwkSKey is sealed to `sealingKey` (the gateway's, from `hotspotd key show`);
    /// without one it goes in the clear, which gateways refuse.
    public static func sign(
        _ command: Command, gatewayID: String, key: Ed25519PrivateKey, expiresAt: UInt64,
        nonce: [UInt8] = secureRandomBytes(16),
        sealingKey: [UInt8]? = nil
    ) throws -> [UInt8] {
        var body = Hotspotd_CommandBody()
        body.gatewayID = gatewayID.lowercased()
        body.nonce = Data(nonce)
        body.expiresAt = expiresAt
        switch command {
        case .pair(let devAddr, let devEUI, let owner, let nwkSKey):
            var pair = Hotspotd_PairCommand()
            pair.devAddr = devAddr
            if let devEUI { pair.devEui = Data((0..<8).map { UInt8(truncatingIfNeeded: devEUI >> (56 - 8 * $0)) }) }
            pair.owner = owner
            if let nwkSKey {
                if let sealingKey {
                    pair.sealedNwkSKey = Data(try SecretSeal.seal(nwkSKey, to: sealingKey, gatewayID: gatewayID))
                } else {
                    pair.nwkSKey = Data(nwkSKey)
                }
            }
            body.pair = pair
        case .unpair(let devAddr):
            var unpair = Hotspotd_UnpairCommand()
            unpair.devAddr = devAddr
            body.unpair = unpair
        case .credit(let owner, let amount):
            var credit = Hotspotd_CreditCommand()
            credit.owner = owner
            credit.amount = UInt64(max(amount, 0))
            body.credit = credit
        case .entropy(let data, let timestamp):
            var entropy = Hotspotd_EntropyCommand()
            entropy.data = Data(data)
            entropy.timestamp = timestamp
            body.entropy = entropy
        }
        let bodyBytes: [UInt8] = try body.serializedBytes()
        var signed = Hotspotd_SignedCommand()
        signed.body = Data(bodyBytes)
        signed.signature = Data(key.signature(for: bodyBytes))
        signed.signer = Data(key.publicKey.bytes)
        return try signed.serializedBytes()
    }
}

/// Applies signed commands arriving on the command topics: verifies them, applies them under
/// their nonce in the store, and reports every refusal on `event/rejected` through the outbox.
public struct CommandProcessor: Sendable {
    public let store: Store
    public let authority: CommandAuthority
    public let topics: Topics
    public let encoding: MessageEncoding
    /// Refusals are reported within its limits, so that a flood of bad commands fills neither
    /// the outbox nor the journal.
    public let limiter: RefusalLimiter
    private let now: @Sendable () -> Int64
    private let logger: Logger
    /// Whether the wall clock may be trusted to judge expiry; false only when the system says
    /// it is not synchronised (`ClockSynchronization.timesyncd`).
    private let clockSynchronized: @Sendable () -> Bool

    /// `now` is the wall clock in nanoseconds since the Unix epoch.
    public init(
        store: Store, authority: CommandAuthority, topics: Topics, encoding: MessageEncoding = .protobuf,
        logger: Logger = Logger(label: "hotspotd.commands"), limiter: RefusalLimiter = RefusalLimiter(),
        now: @escaping @Sendable () -> Int64,
        clockSynchronized: @escaping @Sendable () -> Bool = { true }
    ) {
        self.clockSynchronized = clockSynchronized
        self.limiter = limiter
        self.store = store
        self.authority = authority
        self.topics = topics
        self.encoding = encoding
        self.logger = logger
        self.now = now
    }

    /// Handles a command received on `topic`. A command of another kind than its topic names
    /// is refused as invalid.
    public func process(_ bytes: [UInt8], topic: String) async throws(StoreError) -> Result<Command, CommandRefusal> {
        let time = now()
        // A Pi without a real-time clock boots with an old time: until NTP sets it, an expired
        // command would look valid.
        guard clockSynchronized() else {
            try await reject(.clockUnsynchronized, topic: topic, nonce: [], command: nil, at: time)
            return .failure(.clockUnsynchronized)
        }
        switch authority.verify(bytes, now: UInt64(Nanoseconds.seconds(max(time, 0)))) {
        case .failure(let refusal):
            try await reject(refusal, topic: topic, nonce: [], command: nil, at: time)
            return .failure(refusal)
        case .success(let verified):
            let expected: String? =
                switch topic {
                case topics.pair: "pair"
                case topics.unpair: "unpair"
                case topics.credit: "credit"
                case topics.entropy: "entropy"
                default: nil
                }
            if let expected, expected != verified.command.name {
                try await reject(
                    .invalid, topic: topic, nonce: verified.nonce, command: verified.command, at: time,
                    detail: "a \(verified.command.name) command on the \(expected) topic")
                return .failure(.invalid)
            }
            let expiresAt = Int64(clamping: verified.expiresAt)
            let application: CommandApplication
            switch verified.command {
            case .pair(let devAddr, let devEUI, let owner, let nwkSKey):
                application = try await store.pair(
                    Pairing(devAddr: devAddr, devEUI: devEUI, owner: owner, nwkSKey: nwkSKey, pairedAt: time),
                    nonce: verified.nonce, expiresAt: expiresAt)
            case .unpair(let devAddr):
                application = try await store.unpair(
                    devAddr: devAddr, nonce: verified.nonce, expiresAt: expiresAt, at: time)
            case .credit(let owner, let amount):
                application = try await store.credit(
                    owner: owner, amount: amount, nonce: verified.nonce, expiresAt: expiresAt, at: time)
            case .entropy:
                application = try await store.recordNonce(
                    verified.nonce, command: "entropy", expiresAt: expiresAt, at: time)
            }
            let refusal: CommandRefusal
            switch application {
            case .applied:
                logger.info("command applied: \(verified.command.name)", metadata: Self.metadata(verified.command))
                return .success(verified.command)
            case .replayed: refusal = .replayed
            case .notPaired: refusal = .notPaired
            case .balanceLimit: refusal = .balanceLimit
            case .outdated: refusal = .outdated
            }
            try await reject(refusal, topic: topic, nonce: verified.nonce, command: verified.command, at: time)
            return .failure(refusal)
        }
    }

    static func metadata(_ command: Command?) -> Logger.Metadata {
        switch command {
        case .pair(let devAddr, let devEUI, let owner, _):
            var metadata: Logger.Metadata = ["DEV_ADDR": "\(DevAddr(devAddr).description)", "OWNER": "\(owner)"]
            if let devEUI { metadata["DEV_EUI"] = "\(EUI64(devEUI).description)" }
            return metadata
        case .unpair(let devAddr): return ["DEV_ADDR": "\(DevAddr(devAddr).description)"]
        case .credit(let owner, let amount): return ["OWNER": "\(owner)", "AMOUNT": "\(amount)"]
        case .entropy, nil: return [:]
        }
    }

    /// Refuses a message too large to be read at all (the client did not copy it).
    public func refuseOversized(size: Int, topic: String) async throws(StoreError) {
        try await reject(
            .oversized, topic: topic, nonce: [], command: nil, at: now(),
            detail: "a message of \(size) bytes, \(CommandRefusal.oversized.explanation)")
    }

    private func reject(
        _ refusal: CommandRefusal, topic: String, nonce: [UInt8], command: Command?, at time: Int64,
        detail: String? = nil
    ) async throws(StoreError) {
        let (report, unreported) = limiter.admit()
        guard report else { return }
        var metadata = Self.metadata(command)
        metadata["REASON"] = "\(refusal.rawValue)"
        metadata["TOPIC"] = "\(topic)"
        var detail = detail ?? refusal.explanation
        if unreported > 0 {
            detail += " (and \(unreported) more refusals not reported, to keep a flood out of the outbox)"
        }
        logger.notice("command refused: \(detail)", metadata: metadata)
        var rejection = Hotspotd_Rejection()
        rejection.reason = refusal.rawValue
        rejection.detail = detail
        rejection.nonce = Data(nonce)
        rejection.time = UInt64(max(time, 0))
        rejection.topic = topic
        switch command {
        case .pair(let devAddr, _, let owner, _):
            rejection.devAddr = DevAddr(devAddr).description
            rejection.owner = owner
        case .unpair(let devAddr):
            rejection.devAddr = DevAddr(devAddr).description
        case .credit(let owner, _):
            rejection.owner = owner
        default:
            break
        }
        guard let payload = try? encoding.encode(rejection) else { return }
        let id = nonce.isEmpty ? "\(time)" : Hex.encode(nonce)
        try await store.enqueue(
            [
                NewMessage(
                    kind: .rejected, topic: topics.rejected, messageID: "rejected-\(refusal.rawValue)-\(id)",
                    payload: payload)
            ], at: time)
    }
}

/// What the system says of its clock.
public enum ClockSynchronization {
    /// systemd-timesyncd's view: where it runs (its state directory exists), the clock is
    /// synchronised once it has created `synchronized` there. Elsewhere nothing says the clock
    /// is wrong, and it is taken as right: the kernel's own flag (adjtimex) is unset on many
    /// machines that keep good time, and refusing every command there would lock them out.
    public static func timesyncd(directory: String = "/run/systemd/timesync") -> Bool {
        var status = stat()
        guard stat(directory, &status) == 0 else { return true }
        return access(directory + "/synchronized", F_OK) == 0
    }
}
