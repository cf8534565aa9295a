import TestSupport
import Testing
import Wire

@testable import Cryptography

#if canImport(Glibc)
    import Glibc
#endif

func hex(_ text: String) -> [UInt8] { Hex.decode(text)! }

@Suite(.capturingLogs) struct AESTests {
    /// FIPS 197 appendix C.1.
    @Test func fips197Block() throws {
        let key = hex("000102030405060708090a0b0c0d0e0f")
        let plain = hex("00112233445566778899aabbccddeeff")
        #expect(try AES128.encrypt(key: key, blocks: plain) == hex("69c4e0d86a7b0430d8cdb78070b4c55a"))
        #expect(try AES128.decrypt(key: key, blocks: hex("69c4e0d86a7b0430d8cdb78070b4c55a")) == plain)
    }

    @Test func wrongSizesAreRefused() {
        #expect(throws: CryptoError.self) {
            try AES128.encrypt(key: [1, 2, 3], blocks: [UInt8](repeating: 0, count: 16))
        }
        #expect(throws: CryptoError.self) { try AES128.encrypt(key: [UInt8](repeating: 0, count: 16), blocks: [1]) }
        #expect(throws: CryptoError.self) { try AESCMAC.mac(key: [1], message: []) }
    }
}

@Suite(.capturingLogs) struct AESCMACTests {
    static let key = hex("2b7e151628aed2a6abf7158809cf4f3c")
    static let message = hex(
        """
        6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4\
        f9b17ad2b417be66c3710
        """
    )

    /// RFC 4493 §4, examples 1 to 4.
    @Test(arguments: [
        (0, "bb1d6929e95937287fa37d129b756746"), (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"), (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    ])
    func rfc4493(length: Int, mac: String) throws {
        #expect(try AESCMAC.mac(key: Self.key, message: Array(Self.message.prefix(length))) == hex(mac))
    }
}

@Suite(.capturingLogs) struct SHA256Tests {
    /// FIPS 180-2 appendix B.
    @Test func fipsVectors() {
        #expect(
            SHA256.hash(Array("abc".utf8)) == hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        #expect(SHA256.hash([]) == hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
    }
}

@Suite(.capturingLogs) struct Ed25519Tests {
    /// RFC 8032 §7.1, tests 1 and 2.
    @Test(arguments: [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
            """
            e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f\
            0595bbe24655141438e7a100b
            """
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
            """
            92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2ea\
            eb4302aeeb00d291612bb0c00
            """
        ),
    ])
    func rfc8032(secret: String, publicKey: String, message: String, signature: String) throws {
        let key = try Ed25519PrivateKey(seed: hex(secret))
        #expect(key.publicKey.bytes == hex(publicKey))
        #expect(key.signature(for: hex(message)) == hex(signature))
        #expect(key.publicKey.isValidSignature(hex(signature), for: hex(message)))
        var tampered = hex(signature)
        tampered[10] ^= 0x01
        #expect(!key.publicKey.isValidSignature(tampered, for: hex(message)))
        #expect(!key.publicKey.isValidSignature(hex(signature), for: hex(message) + [0]))
    }

    @Test func generatedKeysSignAndVerify() {
        let key = Ed25519PrivateKey.generate()
        let other = Ed25519PrivateKey.generate()
        #expect(Helium.keypairBytes(key) != Helium.keypairBytes(other))
        let signature = key.signature(for: Array("hotspotd".utf8))
        #expect(key.publicKey.isValidSignature(signature, for: Array("hotspotd".utf8)))
        #expect(!other.publicKey.isValidSignature(signature, for: Array("hotspotd".utf8)))
    }
}

@Suite(.capturingLogs) struct HeliumKeyTests {
    /// helium-crypto-rs's ed25519 test: a message signed with Erlang's libp2p_crypto, checked
    /// against the key its Base58 address names.
    @Test func heliumAddressAndSignatureVector() throws {
        let address = "13WvV82S7QN3VMzMSieiGxvuaPKknMtf213E5JwPnboDkUfesKw"
        let key = try #require(Helium.publicKey(fromAddress: address))
        #expect(Helium.address(of: key) == address)
        let signature = hex(
            """
            ef3e85dc7ea338c6b67399873131ea7b2265c516222e105fc39a59dda71f668a3b95fe27457d941a3cf5c422c9efbf0da112171\
            d2997d74bc68f7b8118c6930e
            """
        )
        #expect(key.isValidSignature(signature, for: Array("hello world".utf8)))
    }

    /// helium-crypto-rs's Base58 round trip (in its ed25519 module).
    @Test func base58RoundTrip() throws {
        let address = "14HZVR4bdF9QMowYxWrumcFBNfWnhDdD5XXA5za1fWwUhHxxFS1"
        let payload = try #require(Base58.decodeCheck(address))
        #expect(payload.count == 34 && payload[0] == 0x00 && payload[1] == Helium.ed25519Tag)
        #expect(Base58.encodeCheck(payload) == address)
        let key = try #require(Helium.publicKey(fromAddress: address))
        #expect(Helium.address(of: key) == address)
        // The same key tagged as ecc_compact (0x00) is no Ed25519 address.
        #expect(Helium.publicKey(fromAddress: Base58.encodeCheck([0x00, 0x00] + key.bytes)) == nil)
    }

    @Test func badChecksumsAndCharactersAreRefused() {
        #expect(Helium.publicKey(fromAddress: "13WvV82S7QN3VMzMSieiGxvuaPKknMtf213E5JwPnboDkUfesKx") == nil)
        #expect(Base58.decode("0OIl") == nil)
        #expect(Base58.encode([0, 0, 1]) == "112")
        #expect(Base58.decode("112") == [0, 0, 1])
    }

    @Test func keypairBytesRoundTrip() throws {
        let key = Ed25519PrivateKey.generate()
        let bytes = Helium.keypairBytes(key)
        #expect(bytes.count == 65 && bytes[0] == 0x01)
        #expect(Helium.keypairBytes(try Helium.privateKey(fromKeypairBytes: bytes)) == Helium.keypairBytes(key))
        var wrong = bytes
        wrong[40] ^= 1
        #expect(throws: CryptoError.self) { try Helium.privateKey(fromKeypairBytes: wrong) }
        #expect(throws: CryptoError.self) { try Helium.privateKey(fromKeypairBytes: [0x00] + bytes.dropFirst()) }
    }

    @Test func keyFilesAreCreatedPrivateAndRefusedWhenOthersMayReadThem() throws {
        let path = "/tmp/hotspotd-key-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(path) }
        let key = Ed25519PrivateKey.generate()
        try KeyFile.create(path, key: key)
        var status = stat()
        stat(path, &status)
        #expect(status.st_mode & 0o777 == 0o600)
        #expect(try KeyFile.read(path).publicKey == key.publicKey)
        #expect(throws: CryptoError.self) { try KeyFile.create(path, key: key) }
        chmod(path, 0o644)
        do {
            _ = try KeyFile.read(path)
            Issue.record("read a key file others may read")
        } catch {
            #expect(error.message.contains("mode 0644"))
            #expect(error.message.contains("chmod 600"))
        }
    }

    @Test func theFirstStartCreatesTheKeyAndLaterStartsReadIt() throws {
        let directory = "/tmp/hotspotd-first-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let path = directory + "/gateway.key"
        defer {
            unlink(path)
            rmdir(directory)
        }
        let first = try KeyFile.loadOrCreate(path)
        #expect(first.created)
        let second = try KeyFile.loadOrCreate(path)
        #expect(!second.created)
        #expect(second.key.publicKey == first.key.publicKey)
        chmod(path, 0o640)
        #expect(throws: CryptoError.self) { try KeyFile.loadOrCreate(path) }
    }
}

@Suite(.capturingLogs) struct ConstantTimeTests {
    @Test func equalityIsByContentAndLength() {
        #expect(constantTimeEquals([1, 2, 3, 4], [1, 2, 3, 4]))
        #expect(!constantTimeEquals([1, 2, 3, 4], [1, 2, 3, 5]))
        #expect(!constantTimeEquals([1, 2, 3, 4], [9, 2, 3, 4]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2, 3, 4]))
        #expect(constantTimeEquals([], []))
    }
}
