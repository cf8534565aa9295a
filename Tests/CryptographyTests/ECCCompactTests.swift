import Testing
import Wire

@testable import Cryptography

/// Helium's `ecc_compact` keys, pinned with helium-crypto-rs's own test vectors
/// (src/public_key.rs, src/ecc_compact/mod.rs).
@Suite struct ECCCompactTests {
    /// public_key.rs: DEFAULT_BYTES is the binary form of the address in public_key_roundtrip.
    @Test func theAddressOfAnECCCompactKeyIsHeliums() throws {
        let binary = hex("008f23e96ab6bbff48c8923cac831dc97111bcf33dba9f5a8539c00f9d93551af1")
        let key = try HeliumPublicKey(binary: binary)
        #expect(key.keyType == .eccCompact)
        #expect(key.address == "11263KvqW3GZPAvag5sQYtBJSjb25azSTSwoi5Tza9kboaLRxcsv")
        #expect(HeliumPublicKey(address: "11263KvqW3GZPAvag5sQYtBJSjb25azSTSwoi5Tza9kboaLRxcsv") == key)
        #expect(key.binary == binary)
        // ecc_compact/mod.rs b58_roundtrip.
        let other = try #require(HeliumPublicKey(address: "112jXiCTi9DpLC5nLdSZ2zccRVEtZizRJMizziCebaNbRDi8k6wR"))
        #expect(other.keyType == .eccCompact && other.address == "112jXiCTi9DpLC5nLdSZ2zccRVEtZizRJMizziCebaNbRDi8k6wR")
    }

    /// ecc_compact/mod.rs `verify`: a DER signature of "hello world" made by Erlang's libp2p_crypto.
    /// It checks only with the compact point (Y the smaller of y and p − y).
    @Test func aSignatureFromHeliumsVectorVerifies() throws {
        let key = try #require(HeliumPublicKey(address: "11nYr7TBMbpGiQadiCxGCPZFZ8ENo1JNtbS7aB5U7UXn4a8Dvb3"))
        let signature = hex(
            "304402206d791eb96bcc7d0ef403bc7a653fd99a6906374ec9e4aff1d5907d4890e8dd33"
                + "02204b4c93c7637b22565b944201df9c806d684165802b8a1cd91d4d7799c950e466")
        let message = Array("hello world".utf8)
        #expect(key.isValidSignature(signature, for: message))
        #expect(!key.isValidSignature(signature, for: Array("hello world!".utf8)))
        // verify_invalid_sig: the same signature cut short.
        #expect(!key.isValidSignature(hex("304402206d791eb96bcc7d0ef403bc7a653fd99a6906374ec9"), for: message))
        guard case .eccCompact(let point) = key else {
            Issue.record("not ecc_compact")
            return
        }
        #expect(Hex.encode(point.y) == "09fa473d103378e64bdf680999ed75a5f102e53dce09b4d522871b4f7893f3f4")
        #expect(point.isCompact)
    }

    /// ecc_compact/mod.rs non_compact_key: an X no point has.
    @Test func anXOffTheCurveIsRefused() {
        #expect(throws: CryptoError.self) {
            try HeliumPublicKey(binary: hex("003ca9d8667de0c07aa71d98b3c8065d2e97ab7bb9cb8776bcc0577a7ac58acd4e"))
        }
        #expect(throws: CryptoError.self) { try HeliumPublicKey(binary: [0x10] + [UInt8](repeating: 1, count: 32)) }
    }

    @Test func softwareAndDERRoundTrips() throws {
        let key = P256PrivateKey.compact(seed: [1, 2, 3])
        #expect(key.publicKey.isCompact)
        let signer = try SoftwareECCSigner(key)
        let signature = try signer.sign([9, 9, 9])
        #expect(signer.heliumKey.isValidSignature(signature, for: [9, 9, 9]))
        let raw = try #require(ECDSASignature.raw(der: signature))
        #expect(try ECDSASignature.der(raw: raw) == signature)
        // The point with the other Y is not compact, and verifies nothing of the compact one's.
        let other = try P256PublicKey(compactX: key.publicKey.x)
        #expect(other == key.publicKey)
        // Bad DER is refused, not read.
        let bads: [[UInt8]] = [[], [0x30, 0x02, 0x02, 0x00], signature + [0], [0x31] + Array(signature.dropFirst())]
        for bad in bads {
            #expect(ECDSASignature.raw(der: bad) == nil)
        }
        // An identity built on the chip's kind of key addresses and derives its gateway ID alike.
        let identity = GatewayIdentity(signer: signer, sealingKey: X25519PrivateKey.generate())
        #expect(identity.address.hasPrefix("11"))
        #expect(identity.gatewayID == GatewayIdentity.derivedGatewayID(of: signer.heliumKey))
    }
}
