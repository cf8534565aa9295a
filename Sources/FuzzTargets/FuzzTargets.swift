import Agent
import ChirpStack
import Clocks
import Credits
import Cryptography
import FoundationEssentials
import HAL
import LoRaPHY
import LoRaWAN
import Messages
import Radio
import SecureElement
import SemtechUDP
import SwiftProtobuf
import Transport
import Wire

/// The parsers that read what arrives from outside: each takes arbitrary bytes, must never
/// crash, and must keep the invariants checked here. `hotspot-fuzz` runs them under libFuzzer;
/// the tests run them over their seeds and over every input that once broke them.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A datagram from a packet forwarder: the GWMP header, then the PUSH_DATA JSON and its rxpk.
    case gwmp
    /// A LoRaWAN PHYPayload as a radio hands it on, with its MAC commands and MIC.
    case lorawan
    /// A signed command as it arrives on a command topic.
    case command
    /// A `command/down` payload in protobuf.
    case downlinkProtobuf = "downlink-protobuf"
    /// A `command/down` payload in protobuf's JSON mapping (`mqtt.json = true`).
    case downlinkJSON = "downlink-json"
    /// A board profile (TOML).
    case boardProfile = "board-profile"
    /// The agent's configuration file (TOML).
    case config
    /// A signed report or receipt handed to `report verify`: Helium's key forms, DER signatures.
    case signedReport = "signed-report"
    /// What a secure element answers on the I2C bus, a broken or hostile chip's included.
    case secureElement = "secure-element"
    /// The first byte chooses: a `command/config` channel plan (0), a forwarder's
    /// global_conf.json the plan is written into (1), a request to the metrics port (2).
    case channelPlan = "channel-plan"

    /// A broken invariant: the parser accepted the input but said something inconsistent.
    public struct Violation: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs one input. Throws when an invariant breaks; a crash is a crash.
    public func run(_ input: [UInt8]) throws(Violation) {
        switch self {
        case .gwmp: try Self.gwmp(input)
        case .lorawan: try Self.lorawan(input)
        case .command: try Self.command(input)
        case .downlinkProtobuf: try Self.downlink(input, encoding: .protobuf)
        case .downlinkJSON: try Self.downlink(input, encoding: .json)
        case .boardProfile: Self.boardProfile(input)
        case .config: Self.config(input)
        case .signedReport: try Self.signedReport(input)
        case .secureElement: try Self.secureElement(input)
        case .channelPlan: try Self.channelPlan(input)
        }
    }

    static func gwmp(_ input: [UInt8]) throws(Violation) {
        guard let datagram = try? GWMP.parse(input) else { return }
        switch datagram {
        case .pushData(let version, let token, let gateway, let json):
            guard input.count >= 12, version == input[0], token == GWMP.Token(input[1], input[2]) else {
                throw Violation(description: "PUSH_DATA header read wrongly")
            }
            guard let contents = try? PushDataContents(json: json, gateway: gateway) else { return }
            for frame in contents.frames {
                guard frame.payload.count <= 255 else {
                    throw Violation(description: "a frame of \(frame.payload.count) bytes")
                }
                guard frame.gatewayEUI == gateway else {
                    throw Violation(description: "a frame credited to another gateway")
                }
            }
            // What the parser accepted, written out again, reads back the same.
            if let value = try? JSON.parse(json) {
                let again: JSONValue
                do {
                    again = try JSON.parse(Array(JSON.serialize(value).utf8))
                } catch {
                    throw Violation(description: "serialized JSON does not parse: \(error)")
                }
                guard again == value else { throw Violation(description: "JSON changed on a round trip") }
            }
        case .txAck(_, _, _, let json):
            _ = Downlink.outcome(ofAcknowledgement: json, requestedPowerDBm: 14)
        case .pullData:
            break
        }
    }

    static let fuzzKey: [UInt8] = Array(repeating: 0x2B, count: 16)

    static func lorawan(_ input: [UInt8]) throws(Violation) {
        guard let frame = try? PHYPayload.decode(input) else { return }
        guard frame.bytes == input, frame.mic.count == 4 || frame.mic.isEmpty,
            frame.bytesWithoutMIC.count + frame.mic.count == input.count
        else {
            throw Violation(description: "PHYPayload does not account for its bytes")
        }
        switch frame.message {
        case .data(let data):
            guard data.fOpts.count == data.fCtrl.fOptsLength else {
                throw Violation(description: "FOpts length differs from FCtrl's")
            }
            _ = MACCommand.parse(data.fOpts, uplink: frame.mType.isUplink)
            if data.fPort == 0 { _ = MACCommand.parse(data.frmPayload, uplink: frame.mType.isUplink) }
            let fCnt = LoRaWANCrypto.fullFrameCounter(received: data.fCnt, last: 0xFFFF_FFF0)
            _ = try? frame.hasValidMIC(nwkSKey: fuzzKey, fCnt: fCnt)
            _ = try? frame.decryptedPayload(nwkSKey: fuzzKey, appSKey: fuzzKey, fCnt: fCnt)
        case .joinRequest:
            _ = try? frame.hasValidJoinMIC(appKey: fuzzKey)
        case .joinAccept:
            _ = try? LoRaWANCrypto.decryptJoinAccept(frame, appKey: fuzzKey)
        default:
            break
        }
    }

    static let authorityKey = try! Ed25519PrivateKey(seed: Array(repeating: 0x5A, count: 32))
    static let authority = CommandAuthority(authority: authorityKey.publicKey, gatewayID: "0016c001ff10a235")
    static let now: UInt64 = 1_800_000_000

    /// The first byte chooses: even, the input is a whole signed command (which almost never
    /// carries a good signature); odd, the rest is a command body, signed here with the
    /// authority's key, so the checks behind the signature are reached too.
    static func command(_ input: [UInt8]) throws(Violation) {
        guard let mode = input.first else { return }
        let body = Array(input.dropFirst())
        let bytes: [UInt8]
        if mode & 1 == 0 {
            bytes = body
        } else {
            var signed = Hotspotd_SignedCommand()
            signed.body = Data(body)
            signed.signature = Data(authorityKey.signature(for: body))
            signed.signer = Data(authorityKey.publicKey.bytes)
            guard let serialized: [UInt8] = try? signed.serializedBytes() else { return }
            bytes = serialized
        }
        guard case .success(let verified) = authority.verify(bytes, now: now) else { return }
        guard verified.expiresAt > now, (8...32).contains(verified.nonce.count) else {
            throw Violation(description: "an expired command or a bad nonce was accepted")
        }
        switch verified.command {
        case .pair(_, _, let owner, let nwkSKey):
            guard !owner.isEmpty, nwkSKey.map({ $0.count == 16 }) ?? true else {
                throw Violation(description: "a bad pair was accepted")
            }
        case .credit(let owner, let amount):
            guard !owner.isEmpty, amount > 0 else { throw Violation(description: "a bad credit was accepted") }
        case .entropy(let data, _):
            guard (1...64).contains(data.count) else { throw Violation(description: "bad entropy was accepted") }
        case .unpair:
            break
        }
    }

    static let policies = [RegionalTransmitPolicy(region: .eu868), RegionalTransmitPolicy(region: .us915)]

    static func downlink(_ input: [UInt8], encoding: MessageEncoding) throws(Violation) {
        guard let frame = try? encoding.decode(Gw_DownlinkFrame.self, from: input) else { return }
        for item in frame.items {
            guard case .success(let request) = DownlinkMessages.request(for: item) else { continue }
            guard request.payload.count == item.phyPayload.count, request.frequencyHz == item.txInfo.frequency else {
                throw Violation(description: "the transmission differs from the item")
            }
            // The region's rules must answer for any request, however odd, and an admitted
            // one must be on an allowed frequency.
            for policy in policies {
                if case .success(let ticket) = policy.admit(request) {
                    guard policy.region.allows(frequencyHz: request.frequencyHz) else {
                        throw Violation(description: "a forbidden frequency was admitted")
                    }
                    policy.cancel(ticket)
                }
            }
        }
        // A decoded message encodes again.
        guard (try? encoding.encode(frame)) != nil else {
            throw Violation(description: "a decoded downlink does not encode")
        }
    }

    static func boardProfile(_ input: [UInt8]) {
        _ = try? BoardProfile.parse(String(decoding: input, as: UTF8.self), file: "fuzz.toml")
    }

    static let globalConf = Array(
        #"{"SX1301_conf": {"radio_0": {"enable": true, "freq": 867500000}, "chan_multiSF_0": {"enable": true}}}"#.utf8)
    static let eu868Plan = ChannelPlan(
        version: "v",
        channels: [.init(frequencyHz: 868_100_000, modulation: .lora(bandwidthHz: 125_000, spreadingFactors: [7]))])

    static func channelPlan(_ input: [UInt8]) throws(Violation) {
        guard let mode = input.first else { return }
        let body = Array(input.dropFirst())
        switch mode % 3 {
        case 0:
            guard let message = try? Gw_GatewayConfiguration(serializedBytes: body),
                case .success(let plan) = ChannelPlan.decode(message, gatewayID: "0016c001ff10a235")
            else { return }
            for name in Region.Name.allCases {
                let region = Region.named(name)
                guard plan.problem(in: region) == nil else { continue }
                // A plan the region takes has every channel inside its band.
                guard plan.channels.allSatisfy({ region.band.contains($0.frequencyHz) }) else {
                    throw Violation(description: "a plan with a channel outside \(name) was taken")
                }
            }
            let base = RadioConfiguration(
                frequencyHz: 868_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125))
            if case .success(let configuration) = plan.radioConfiguration(from: base),
                configuration.frequencyHz != plan.channels.first?.frequencyHz
            {
                throw Violation(description: "the radio was given another frequency than the plan's")
            }
            if case .success(let text) = ForwarderConfiguration.rewrite(globalConf, with: plan) {
                guard (try? JSON.parse(Array(text.utf8)))?["SX1301_conf"] != nil else {
                    throw Violation(description: "a rewritten configuration that is not JSON with its section")
                }
            }
        case 1:
            if case .success(let text) = ForwarderConfiguration.rewrite(body, with: eu868Plan) {
                guard let root = try? JSON.parse(Array(text.utf8)),
                    root["SX1301_conf"]?["radio_0"]?["freq"]?.number == 868_100_000
                        || root["SX130x_conf"]?["radio_0"]?["freq"]?.number == 868_100_000
                else {
                    throw Violation(description: "a rewritten configuration without the plan's radio")
                }
            }
        default:
            if case .metrics = MetricsServer.judge(body), !body.starts(with: Array("GET /metrics".utf8)),
                !body.starts(with: Array("HEAD /metrics".utf8))
            {
                throw Violation(description: "a request for something else than /metrics was served")
            }
        }
    }

    static func config(_ input: [UInt8]) {
        _ = try? Configuration.parse(String(decoding: input, as: UTF8.self), file: "hotspotd.toml")
    }

    static func signedReport(_ input: [UInt8]) throws(Violation) {
        if let report = try? Helium_PocLora_lora_witness_report_req_v1(serializedBytes: input),
            let signer = SignedReports.verify(report)
        {
            guard signer.binary == Array(report.pubKey) else {
                throw Violation(description: "a verified report's signer is not its pub_key")
            }
        }
        // A strict DER signature reads back to exactly its bytes.
        if let raw = ECDSASignature.raw(der: input) {
            guard raw.count == 64, (try? ECDSASignature.der(raw: raw)) == input else {
                throw Violation(description: "a DER signature that does not encode back to itself")
            }
        }
        if input.count == 33, let key = try? HeliumPublicKey(binary: input) {
            guard key.binary == input, HeliumPublicKey(address: key.address) == key else {
                throw Violation(description: "a Helium key that does not round-trip")
            }
        }
        _ = try? ECCKeyURI(parsing: String(decoding: input, as: UTF8.self))
    }

    /// The driver against a bus that answers every read with the input's next bytes: it must
    /// throw or give a key and signature that check, never crash or loop.
    static func secureElement(_ input: [UInt8]) throws(Violation) {
        var timing = ECC608Timing()
        timing.wakeDelay = .zero
        timing.firstPoll = .zero
        timing.pollInterval = .zero
        timing.attempts = 2
        let chip = ECC608(bus: ScriptedI2CBus(input), timing: timing)
        guard let signer = try? ECC608Signer(chip: chip, slot: 0) else { return }
        guard case .eccCompact(let key) = signer.heliumKey, key.isCompact else {
            throw Violation(description: "a signer whose key is not a compact P-256 point")
        }
        _ = try? signer.sign([1, 2, 3])
        _ = try? chip.configuration()
    }
}

/// An I2C bus whose target acknowledges every write and answers reads from a script; once
/// the script is used up, the bus fails (an I/O error, which the driver does not retry).
final class ScriptedI2CBus: I2CBus, @unchecked Sendable {
    let path = "/dev/i2c-fuzz"
    private var script: ArraySlice<UInt8>

    init(_ script: [UInt8]) {
        self.script = script[...]
    }

    func transfer(address: UInt8, _ messages: [I2CMessage]) throws(HardwareError) -> [[UInt8]] {
        var reads: [[UInt8]] = []
        for message in messages {
            guard case .read(let count) = message else { continue }
            guard script.count >= count else { throw HardwareError(.io, "the script is used up") }
            reads.append(Array(script.prefix(count)))
            script = script.dropFirst(count)
        }
        return reads
    }
}
