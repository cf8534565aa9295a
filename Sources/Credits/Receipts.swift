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
    public let signer: any GatewaySigner
    public let topics: Topics
    public let encoding: MessageEncoding

    public init(store: Store, signer: any GatewaySigner, topics: Topics, encoding: MessageEncoding = .protobuf) {
        self.store = store
        self.signer = signer
        self.topics = topics
        self.encoding = encoding
    }

    /// `time` in nanoseconds since the Unix epoch. The receipts are signed between reading the
    /// periods and recording them, outside the store, so that a secure element's signing time
    /// (tens of milliseconds each) never holds the store's writes back.
    @discardableResult
    public func issue(at time: Int64) async throws(StoreError) -> [ReceiptSummary] {
        let summaries = try await store.receiptSummaries(at: time)
        guard !summaries.isEmpty else { return [] }
        var receipts: [(summary: ReceiptSummary, messages: [NewMessage])] = []
        for summary in summaries {
            let receipt: Hotspotd_UsageReceipt
            do throws(CryptoError) {
                receipt = try await SignedReports.signed(
                    Self.unsignedReceipt(summary, gatewayID: topics.gatewayID), by: signer)
            } catch {
                throw StoreError(.other, "the receipt for \(summary.owner) could not be signed: \(error.message)")
            }
            guard let payload = try? encoding.encode(receipt) else { continue }
            receipts.append(
                (
                    summary,
                    [
                        NewMessage(
                            kind: .receipt, topic: topics.receipt,
                            messageID: "receipt-\(summary.owner)-\(summary.lastSeq)",
                            payload: payload)
                    ]
                ))
        }
        return try await store.recordReceipts(receipts, at: time)
    }

    public static func receipt(_ summary: ReceiptSummary, signer: any GatewaySigner, gatewayID: String)
        throws(CryptoError) -> Hotspotd_UsageReceipt
    {
        try SignedReports.sign(unsignedReceipt(summary, gatewayID: gatewayID), with: signer)
    }

    static func unsignedReceipt(_ summary: ReceiptSummary, gatewayID: String) -> Hotspotd_UsageReceipt {
        var receipt = Hotspotd_UsageReceipt()
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
        return receipt
    }
}

/// A message signed Helium's way: over its protobuf encoding with `signature` empty, by the key
/// in `pub_key` (Helium's binary form: tag byte, then the key), in that key type's encoding
/// (Ed25519's 64 bytes, or DER ECDSA over SHA-256 for `ecc_compact`).
public protocol SignedReport: SwiftProtobuf.Message {
    var pubKey: Data { get set }
    var signature: Data { get set }
}

extension Hotspotd_UsageReceipt: SignedReport {}
extension Helium_PocLora_lora_beacon_report_req_v1: SignedReport {}
extension Helium_PocLora_lora_witness_report_req_v1: SignedReport {}

public enum SignedReports {
    /// The report with `pub_key` set to the signer's key and `signature` to its signature.
    public static func sign<Report: SignedReport>(_ report: Report, with signer: any GatewaySigner)
        throws(CryptoError) -> Report
    {
        var (signed, bytes) = unsigned(report, by: signer)
        signed.signature = Data(try signer.sign(bytes))
        return signed
    }

    /// The report with the signer's key and an empty signature, and the bytes to sign.
    static func unsigned<Report: SignedReport>(_ report: Report, by signer: any GatewaySigner) -> (Report, [UInt8]) {
        var unsigned = report
        unsigned.pubKey = Data(signer.heliumKey.binary)
        unsigned.signature = Data()
        // Encoding a message built in code cannot fail.
        return (unsigned, (try? unsigned.serializedBytes()) ?? [])
    }

    /// The same as `sign`, for async callers: a secure element signs on a thread of its own.
    public static func signed<Report: SignedReport>(_ report: Report, by signer: any GatewaySigner)
        async throws(CryptoError) -> Report
    {
        var (signed, bytes) = unsigned(report, by: signer)
        signed.signature = Data(try await signer.signature(of: bytes))
        return signed
    }

    /// The signer, when the signature checks.
    public static func verify<Report: SignedReport>(_ report: Report) -> HeliumPublicKey? {
        guard let key = try? HeliumPublicKey(binary: Array(report.pubKey)) else { return nil }
        var unsigned = report
        unsigned.signature = Data()
        guard let bytes: [UInt8] = try? unsigned.serializedBytes() else { return nil }
        return key.isValidSignature(Array(report.signature), for: bytes) ? key : nil
    }
}
