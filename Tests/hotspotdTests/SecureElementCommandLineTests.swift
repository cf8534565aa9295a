import Credits
import Cryptography
import Foundation
import HALMock
import Messages
import SwiftProtobuf
import TestSupport
import Testing

/// `key show`, `board probe` and `report verify` against the mock board's simulated ATECC608.
@Suite(.capturingLogs) struct SecureElementCommandLineTests {
    let directory: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-ecc-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()
    let chip = SimulatedECC608(seed: "mock").key.publicKey

    @Test func keyShowReadsTheChipsKey() async throws {
        let result = try await runHotspotd(
            ["key", "show", "--key", "ecc://i2c-1:96?slot=0", "--board", "mock", "--data-dir", directory, "--json"],
            in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["key_type"] as? String == "ecc_compact")
        #expect(json["address"] as? String == HeliumPublicKey.eccCompact(chip).address)
        #expect(json["public_key"] as? String == chip.x.map { String(format: "%02x", $0) }.joined())
        #expect(json["sealing_key"] is NSNull, "no agent has started with this data directory yet")
        let text = try await runHotspotd(
            ["key", "show", "--key", "ecc://i2c-1:96?slot=0", "--board", "mock", "--data-dir", directory], in: directory
        )
        #expect(text.stdout.hasPrefix("key type    ecc_compact (ecc://i2c-1:96?slot=0)"))
    }

    @Test func boardProbeChecksTheSecureElement() async throws {
        let result = try await runHotspotd(
            ["board", "probe", "--board", "mock", "--key", "ecc://i2c-1:96?slot=0"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("secure element: ATECC608A (revision 00006002) answered on /dev/i2c-1 at 0x60"))
        #expect(result.stdout.contains("configuration zone locked, data zone locked"))
        #expect(result.stdout.contains("slot 0 holds a P-256 private key"))
        #expect(result.stdout.contains("key type ecc_compact, address \(HeliumPublicKey.eccCompact(chip).address)"))
        let absent = try await runHotspotd(
            ["board", "probe", "--board", "mock", "--key", "ecc://i2c-1:97?slot=0"], in: directory)
        #expect(absent.status == 1)
        #expect(absent.stderr.contains("no ECC608 answered on /dev/i2c-1 at 0x61"))
        let unsupported = try await runHotspotd(["board", "probe", "--board", "nebra-light"], in: directory)
        #expect(unsupported.status == 1 && unsupported.stderr.contains("ARMv6"))
    }

    @Test func reportVerifyChecksAnECCCompactSignature() async throws {
        let signer = try SoftwareECCSigner(P256PrivateKey.compact(seed: [7]))
        var witness = Helium_PocLora_lora_witness_report_req_v1()
        witness.data = Data([UInt8](repeating: 0xE0, count: 52))
        witness.frequency = 868_100_000
        let signed = try SignedReports.sign(witness, with: signer)
        let file = directory + "/witness.pb"
        try Data(try signed.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: file))
        let result = try await runHotspotd(["report", "verify", "--json", file], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["signature_valid"] as? Bool == true && json["key_type"] as? String == "ecc_compact")
        #expect(json["signer"] as? String == signer.heliumKey.address)
        var forged = signed
        forged.frequency = 868_300_000
        try Data(try forged.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: file))
        #expect(try await runHotspotd(["report", "verify", file], in: directory).status == 1)
    }
}
