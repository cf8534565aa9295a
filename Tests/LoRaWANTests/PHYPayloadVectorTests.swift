import Cryptography
import LoRaPHY
import Testing
import Wire

@testable import LoRaWAN

func hex(_ text: String) -> [UInt8] { Hex.decode(text)! }
func bytes(_ values: [UInt8]) -> [UInt8] { values }

/// Published vectors from two independent implementations: anthonykirby/lora-packet
/// (__tests__/mic_test.ts, parse_test.ts, decrypt_test.ts, packet_test.ts) and brocaar/lorawan
/// (phypayload_test.go), plus The Things Stack's pkg/crypto tests.
@Suite struct LoraPacketVectors {
    static let nwkSKey = hex("44024241ed4ce9a68c6a8bc055233fd3")
    static let appSKey = hex("ec925802ae430ca77fd3dd73cb2cc588")

    @Test func unconfirmedUplinkWithPayload() throws {
        let frame = try PHYPayload.decode(hex("40F17DBE4900020001954378762B11FF0D"))
        #expect(frame.mType == .unconfirmedDataUp)
        let data = try #require(frame.dataFrame)
        #expect(data.devAddr == DevAddr(0x49BE_7DF1))
        #expect(data.fCtrl == FCtrl())
        #expect(data.fCnt == 2)
        #expect(data.fPort == 1)
        #expect(data.frmPayload == hex("95437876"))
        #expect(frame.mic == hex("2b11ff0d"))
        #expect(try frame.hasValidMIC(nwkSKey: Self.nwkSKey, fCnt: 2))
        #expect(try frame.decryptedPayload(nwkSKey: Self.nwkSKey, appSKey: Self.appSKey, fCnt: 2) == Array("test".utf8))
    }

    @Test func emptyPayloadAndACorruptedMIC() throws {
        let frame = try PHYPayload.decode(hex("40F17DBE49000300012A3518AF"))
        #expect(frame.dataFrame?.fCnt == 3 && frame.dataFrame?.frmPayload == [])
        #expect(try frame.hasValidMIC(nwkSKey: Self.nwkSKey, fCnt: 3))
        let corrupted = try PHYPayload.decode(hex("40F17DBE49000300012A3518AA"))
        #expect(try corrupted.hasValidMIC(nwkSKey: Self.nwkSKey, fCnt: 3) == false)
    }

    @Test func longPayloadAcrossSeveralBlocks() throws {
        let frame = try PHYPayload.decode(
            hex(
                """
                40f17dbe490004000155332de41a11adc072553544429ce7787707d1c316e027e7e5e334263376affb8aa17ad30075293f2\
                8dea8a20af3c5e7
                """
            ))
        #expect(frame.mic == hex("0af3c5e7"))
        #expect(try frame.hasValidMIC(nwkSKey: Self.nwkSKey, fCnt: 4))
        #expect(
            try frame.decryptedPayload(nwkSKey: Self.nwkSKey, appSKey: Self.appSKey, fCnt: 4)
                == Array("The quick brown fox jumps over the lazy dog.".utf8))
    }

    @Test func portZeroIsEncryptedWithTheNetworkKey() throws {
        let frame = try PHYPayload.decode(hex("40D4C3B2A1001000002712A3F9C9"))
        let key = hex("a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4")
        #expect(frame.dataFrame?.fPort == 0)
        #expect(try frame.hasValidMIC(nwkSKey: key, fCnt: 16))
        #expect(try frame.decryptedPayload(nwkSKey: key, appSKey: nil, fCnt: 16) == [0x02])
    }

    @Test func joinRequest() throws {
        let frame = try PHYPayload.decode(hex("0039363463336913AA05693574323831330489C65B1304"))
        #expect(frame.mType == .joinRequest)
        guard case .joinRequest(let request) = frame.message else {
            Issue.record("not a join request")
            return
        }
        #expect(request.joinEUI == EUI64(0xAA13_6933_6334_3639))
        #expect(request.devEUI == EUI64(0x3331_3832_7435_6905))
        #expect(frame.mic == hex("c65b1304"))
        #expect(try frame.hasValidJoinMIC(appKey: hex("98929b92c49edba9676d646d3b612456")))
        let corrupted = try PHYPayload.decode(hex("0039363463336913AA05693574323831330489C65B1305"))
        #expect(try corrupted.hasValidJoinMIC(appKey: hex("98929b92c49edba9676d646d3b612456")) == false)
    }

    @Test func joinRequestFieldsInAirOrder() throws {
        let frame = try PHYPayload.decode(hex("0039363463336913AA05693574323831338EF1C1D5EC6C"))
        guard case .joinRequest(let request) = frame.message else {
            Issue.record("not a join request")
            return
        }
        #expect(request.devNonce == 0xF18E)
        #expect(frame.mic == hex("c1d5ec6c"))
    }

    @Test func joinAcceptAllZero() throws {
        let frame = try PHYPayload.decode(hex("20e3de108795f776b8037610ef7869b5b3"))
        let (accept, valid) = try LoRaWANCrypto.decryptJoinAccept(frame, appKey: [UInt8](repeating: 0, count: 16))
        #expect(valid)
        #expect(accept.joinNonce == 0 && accept.netID == 0 && accept.devAddr == DevAddr(0))
    }

    @Test func downlinkWithAck() throws {
        let frame = try PHYPayload.decode(hex("60f17dbe4920020001f9d65d27"))
        #expect(frame.mType == .unconfirmedDataDown)
        #expect(frame.dataFrame?.fCtrl.ack == true)
        #expect(try frame.hasValidMIC(nwkSKey: Self.nwkSKey, fCnt: 2))
    }
}

@Suite struct BrocaarVectors {
    static let ones = [UInt8](repeating: 1, count: 16)
    static let twos = [UInt8](repeating: 2, count: 16)

    @Test func frmPayloadWithADR() throws {
        let frame = try PHYPayload.decode(
            bytes([64, 4, 3, 2, 1, 128, 1, 0, 1, 166, 148, 100, 38, 21, 214, 195, 181, 130]))
        let data = try #require(frame.dataFrame)
        #expect(data.devAddr == DevAddr(0x0102_0304))
        #expect(data.fCtrl.adr)
        #expect(data.fCnt == 1)
        #expect(try frame.hasValidMIC(nwkSKey: Self.twos, fCnt: 1))
        #expect(try frame.decryptedPayload(nwkSKey: Self.twos, appSKey: Self.ones, fCnt: 1) == Array("hello".utf8))
    }

    @Test func macCommandsInFOpts() throws {
        let frame = try PHYPayload.decode(
            bytes([64, 4, 3, 2, 1, 3, 0, 0, 2, 3, 5, 1, 106, 55, 152, 245, 182, 77, 192, 57]))
        let data = try #require(frame.dataFrame)
        #expect(data.fCtrl.fOptsLength == 3)
        #expect(data.fOpts == [2, 3, 5])
        #expect(MACCommand.parse(data.fOpts, uplink: true).map(\.name) == ["LinkCheckReq", "LinkADRAns"])
        #expect(try frame.hasValidMIC(nwkSKey: Self.ones, fCnt: 0))
        #expect(try frame.decryptedPayload(nwkSKey: Self.ones, appSKey: Self.ones, fCnt: 0) == [1, 2, 3, 4])
    }

    @Test func devStatusAnsInFOptsOnPort10() throws {
        let nwkSKey = hex("0102030405060708090a0b0c0d0e0f10")
        let appSKey = hex("100f0e0d0c0b0a090807060504030201")
        let frame = try PHYPayload.decode(hex("80040302010300000673070ae264d4f7e117d2c0"))
        #expect(frame.mType == .confirmedDataUp)
        let commands = MACCommand.parse(try #require(frame.dataFrame).fOpts, uplink: true)
        #expect(commands == [MACCommand(identifier: 6, name: "DevStatusAns", payload: [115, 7])])
        #expect(try frame.hasValidMIC(nwkSKey: nwkSKey, fCnt: 0))
        #expect(try frame.decryptedPayload(nwkSKey: nwkSKey, appSKey: appSKey, fCnt: 0) == [1, 2, 3, 4])
    }

    @Test func portZeroMACCommands() throws {
        let frame = try PHYPayload.decode(bytes([64, 4, 3, 2, 1, 0, 0, 0, 0, 105, 54, 158, 238, 106, 165, 8]))
        #expect(try frame.hasValidMIC(nwkSKey: Self.ones, fCnt: 0))
        let commands = try #require(try frame.decryptedPayload(nwkSKey: Self.ones, appSKey: nil, fCnt: 0))
        #expect(commands == [2, 3, 5])
    }

    @Test func joinAcceptWithAppKey() throws {
        let frame = try PHYPayload.decode(hex("20493eeb51fba2116f810edb3742975142"))
        let (accept, valid) = try LoRaWANCrypto.decryptJoinAccept(
            frame, appKey: hex("00112233445566778899aabbccddeeff"))
        #expect(valid)
        #expect(accept.joinNonce == 0x57_0BC7, "AppNonce {87, 11, 199}")
        #expect(accept.netID == 0x22_1101, "NetID {34, 17, 1}")
        #expect(accept.devAddr == DevAddr(0x0203_1980))
        #expect(accept.dlSettings == 0 && accept.rxDelay == 0 && accept.cfList.isEmpty)
    }

    @Test func confirmedUplinkOnPort10() throws {
        let frame = try PHYPayload.decode(bytes([128, 4, 3, 2, 1, 0, 0, 0, 10, 226, 100, 212, 247, 181, 106, 14, 117]))
        let nwkSKey = hex("0102030405060708090a0b0c0d0e0f10")
        let appSKey = hex("100f0e0d0c0b0a090807060504030201")
        #expect(try frame.hasValidMIC(nwkSKey: nwkSKey, fCnt: 0))
        #expect(try frame.decryptedPayload(nwkSKey: nwkSKey, appSKey: appSKey, fCnt: 0) == [1, 2, 3, 4])
    }
}

@Suite struct TheThingsStackVectors {
    /// pkg/crypto/data_messages_test.go: legacy uplink MIC and uplink encryption with key 01×16.
    @Test func legacyUplinkMICAndEncryption() throws {
        let key = [UInt8](repeating: 1, count: 16)
        let message = hex("40040302010001000101020304")
        #expect(
            try LoRaWANCrypto.dataMIC(key: key, message: message, devAddr: DevAddr(0x0102_0304), fCnt: 1, uplink: true)
                == hex("3B073182"))
        #expect(
            try LoRaWANCrypto.cryptFRMPayload(
                key: key, payload: [1, 2, 3, 4], devAddr: DevAddr(0x0102_0304), fCnt: 1, uplink: true)
                == hex("CFF30B4E"))
        #expect(
            try LoRaWANCrypto.cryptFRMPayload(
                key: key, payload: [1, 2, 3, 4], devAddr: DevAddr(0x0102_0304), fCnt: 1, uplink: false)
                == hex("4E75F440"))
        #expect(
            try LoRaWANCrypto.dataMIC(key: key, message: message, devAddr: DevAddr(0x0102_0304), fCnt: 1, uplink: false)
                == hex("A5609FA9"))
    }

    /// pkg/crypto/join_messages_test.go: join request MIC with key 01×16.
    @Test func joinRequestMIC() throws {
        let message = hex("00080706050403020108070605040302010201")
        #expect(
            try LoRaWANCrypto.joinRequestMIC(appKey: [UInt8](repeating: 1, count: 16), message: message)
                == hex("e6e10c55"))
    }
}

@Suite struct CodecBehaviourTests {
    @Test func frameCounterReconstruction() {
        #expect(LoRaWANCrypto.fullFrameCounter(received: 5, last: nil) == 5)
        #expect(LoRaWANCrypto.fullFrameCounter(received: 10, last: 9) == 10)
        #expect(LoRaWANCrypto.fullFrameCounter(received: 0x0001, last: 0xFFFF) == 0x1_0001, "16-bit rollover")
        #expect(LoRaWANCrypto.fullFrameCounter(received: 0x0003, last: 0x2_FFFE) == 0x3_0003)
        #expect(LoRaWANCrypto.fullFrameCounter(received: 0x1234, last: 0x5_1234) == 0x5_1234, "a repeat stays a repeat")
    }

    /// A frame counter beyond 16 bits: the MIC covers all 32 (no published vector has one, so
    /// this builds a frame and checks that only the full counter verifies it).
    @Test func thirtyTwoBitCounterInTheMIC() throws {
        let nwkSKey = [UInt8](repeating: 7, count: 16)
        let bytes = try LoRaWANCrypto.encodeDataFrame(
            devAddr: DevAddr(0x2601_1BDA), fCnt: 0x0001_0002, fPort: 1, payload: [9], nwkSKey: nwkSKey, appSKey: nwkSKey
        )
        let frame = try PHYPayload.decode(bytes)
        #expect(frame.dataFrame?.fCnt == 2)
        #expect(try frame.hasValidMIC(nwkSKey: nwkSKey, fCnt: 0x0001_0002))
        #expect(try frame.hasValidMIC(nwkSKey: nwkSKey, fCnt: 2) == false)
    }

    @Test func encodingReproducesThePublishedFrame() throws {
        let bytes = try LoRaWANCrypto.encodeDataFrame(
            devAddr: DevAddr(0x49BE_7DF1), fCnt: 2, fPort: 1, payload: Array("test".utf8),
            nwkSKey: LoraPacketVectors.nwkSKey, appSKey: LoraPacketVectors.appSKey
        )
        #expect(bytes == hex("40F17DBE4900020001954378762B11FF0D"))
    }

    @Test(arguments: [
        ("", "no bytes"), ("40F17DBE49000200012B11", "shorter"), ("0039363463", "expected 23"),
        ("20e3de10", "expected 17 or 33"), ("41F17DBE4900020001954378762B11FF0D", "major"),
        ("40F17DBE490F020001954378762B11FF0D", "FOptsLen"),
    ])
    func malformedFramesAreRefused(hexText: String, reason: String) {
        do {
            _ = try PHYPayload.decode(hex(hexText))
            Issue.record("decoded \(hexText)")
        } catch {
            #expect(error.description.contains(reason), "\(error)")
        }
    }

    @Test func proprietaryFramesCarryEverythingAfterTheMHDR() throws {
        let beacon = [0xE0] + [UInt8](repeating: 0xAB, count: 51)
        let frame = try PHYPayload.decode(beacon)
        #expect(frame.mType == .proprietary)
        #expect(frame.message == .proprietary([UInt8](repeating: 0xAB, count: 51)))
        #expect(frame.mic.isEmpty)
    }

    @Test func survivesArbitraryBytes() {
        var generator = SystemRandomNumberGenerator()
        var decoded = 0
        for _ in 0..<20_000 {
            let length = Int.random(in: 0..<40, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if let frame = try? PHYPayload.decode(bytes) {
                decoded += 1
                _ = frame.dataFrame.map { MACCommand.parse($0.fOpts, uplink: frame.mType.isUplink) }
            }
        }
        #expect(decoded > 0)
    }
}
