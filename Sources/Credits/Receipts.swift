import Cryptography
import FoundationEssentials
import Messages
import Store
import SwiftProtobuf

/// Issues signed usage receipts: for each owner charged since their last receipt, a
/// `UsageReceipt` summing the period (uplinks, bytes, credits, first and last seq, the chain
/// before and after), signed by the gateway's key over its encoding with `signature` empty.
public struct ReceiptIssuer: Sendable {
    public let store: Store
    public let key: Ed25519PrivateKey
    public let topics: Topics
    public let encoding: MessageEncoding

    public init(store: Store, key: Ed25519PrivateKey, topics: Topics, encoding: MessageEncoding = .protobuf) {
        self.store = store
        self.key = key
        self.topics = topics
        self.encoding = encoding
    }

    /// `time` in nanoseconds since the Unix epoch.
    @discardableResult
    public func issue(at time: Int64) async throws(StoreError) -> [ReceiptSummary] {
        let key = self.key
        let topics = self.topics
        let encoding = self.encoding
        return try await store.issueReceipts(at: time) { summary in
            let receipt = Self.receipt(summary, key: key, gatewayID: topics.gatewayID)
            guard let payload = try? encoding.encode(receipt) else { return [] }
            return [
                NewMessage(
                    kind: .receipt, topic: topics.receipt, messageID: "receipt-\(summary.owner)-\(summary.lastSeq)",
                    payload: payload)
            ]
        }
    }

    public static func receipt(_ summary: ReceiptSummary, key: Ed25519PrivateKey, gatewayID: String)
        -> Hotspotd_UsageReceipt
    {
        var receipt = Hotspotd_UsageReceipt()
        receipt.pubKey = Data([Helium.ed25519Tag] + key.publicKey.bytes)
        receipt.gatewayID = gatewayID
        receipt.owner = summary.owner
        receipt.periodStart = UInt64(max(summary.periodStart, 0))
        receipt.periodEnd = UInt64(max(summary.periodEnd, 0))
        receipt.uplinks = UInt64(summary.uplinks)
        receipt.bytes = UInt64(summary.bytes)
        receipt.credits = UInt64(summary.credits)
        receipt.firstSeq = UInt64(summary.firstSeq)
        receipt.lastSeq = UInt64(summary.lastSeq)
        receipt.previousChain = Data(summary.previousChain)
        receipt.chain = Data(summary.chain)
        return SignedReports.sign(receipt, with: key)
    }
}

/// A message signed Helium's way: Ed25519 over its protobuf encoding with `signature` empty,
/// by the key in `pub_key` (Helium's binary form: tag byte, then the key).
public protocol SignedReport: SwiftProtobuf.Message {
    var pubKey: Data { get set }
    var signature: Data { get set }
}

extension Hotspotd_UsageReceipt: SignedReport {}
extension Helium_PocLora_lora_beacon_report_req_v1: SignedReport {}
extension Helium_PocLora_lora_witness_report_req_v1: SignedReport {}

public enum SignedReports {
    public static func sign<Report: SignedReport>(_ report: Report, with key: Ed25519PrivateKey) -> Report {
        var unsigned = report
        unsigned.signature = Data()
        // Encoding a message built in code cannot fail.
        let bytes: [UInt8] = (try? unsigned.serializedBytes()) ?? []
        var signed = unsigned
        signed.signature = Data(key.signature(for: bytes))
        return signed
    }

    /// The signer, when the signature checks.
    public static func verify<Report: SignedReport>(_ report: Report) -> Ed25519PublicKey? {
        let pubKey = Array(report.pubKey)
        guard pubKey.count == 33, pubKey[0] == Helium.ed25519Tag,
            let key = try? Ed25519PublicKey(bytes: Array(pubKey[1...]))
        else { return nil }
        var unsigned = report
        unsigned.signature = Data()
        guard let bytes: [UInt8] = try? unsigned.serializedBytes() else { return nil }
        return key.isValidSignature(Array(report.signature), for: bytes) ? key : nil
    }
}
