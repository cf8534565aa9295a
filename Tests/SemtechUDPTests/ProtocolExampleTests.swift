import Clocks
import LoRaPHY
import Radio
import Testing
import Wire

@testable import SemtechUDP

let gateway = EUI64(0x0102_0304_0506_0708)

/// The rxpk example of PROTOCOL.TXT (packet_forwarder v1.4), verbatim.
let protocolRxpk = """
    {"rxpk":[
    \t{
    \t\t"time":"2013-03-31T16:21:17.528002Z",
    \t\t"tmst":3512348611,
    \t\t"chan":2,
    \t\t"rfch":0,
    \t\t"freq":866.349812,
    \t\t"stat":1,
    \t\t"modu":"LORA",
    \t\t"datr":"SF7BW125",
    \t\t"codr":"4/6",
    \t\t"rssi":-35,
    \t\t"lsnr":5.1,
    \t\t"size":32,
    \t\t"data":"-DS4CGaDCdG+48eJNM3Vai-zDpsR71Pn9CPA9uCON84"
    \t},{
    \t\t"time":"2013-03-31T16:21:17.530974Z",
    \t\t"tmst":3512348514,
    \t\t"chan":9,
    \t\t"rfch":1,
    \t\t"freq":869.1,
    \t\t"stat":1,
    \t\t"modu":"FSK",
    \t\t"datr":50000,
    \t\t"rssi":-75,
    \t\t"size":16,
    \t\t"data":"VEVTVF9QQUNLRVRfMTIzNA=="
    \t},{
    \t\t"time":"2013-03-31T16:21:17.532038Z",
    \t\t"tmst":3316387610,
    \t\t"chan":0,
    \t\t"rfch":0,
    \t\t"freq":863.00981,
    \t\t"stat":1,
    \t\t"modu":"LORA",
    \t\t"datr":"SF10BW125",
    \t\t"codr":"4/7",
    \t\t"rssi":-38,
    \t\t"lsnr":5.5,
    \t\t"size":32,
    \t\t"data":"ysgRl452xNLep9S1NTIg2lomKDxUgn3DJ7DE+b00Ass"
    \t}
    ]}
    """

/// The stat example of sx1302_hal's PROTOCOL.md (v1.6), verbatim.
let protocolStat = """
    {"stat":{
        "time":"2014-01-12 08:59:28 GMT",
        "lati":46.24000,
        "long":3.25230,
        "alti":145,
        "rxnb":2,
        "rxok":2,
        "rxfw":2,
        "ackr":100.0,
        "dwnb":2,
        "txnb":2,
        "temp": 23.2
    }}
    """

@Suite struct ProtocolExampleTests {
    @Test func headersOfTheDocumentedDatagrams() throws {
        // PUSH_DATA with body {}, PULL_DATA and TX_ACK as ChirpStack's gateway bridge tests them.
        #expect(
            try GWMP.parse([2, 123, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 123, 125])
                == .pushData(version: 2, token: .init(123, 0), gateway: gateway, json: Array("{}".utf8)))
        #expect(
            try GWMP.parse([2, 123, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8])
                == .pullData(version: 2, token: .init(123, 0), gateway: gateway))
        #expect(
            try GWMP.parse([2, 123, 0, 5, 8, 7, 6, 5, 4, 3, 2, 1])
                == .txAck(version: 2, token: .init(123, 0), gateway: EUI64(0x0807_0605_0403_0201), json: []))
        #expect(
            try GWMP.parse([1, 9, 9, 2, 1, 2, 3, 4, 5, 6, 7, 8])
                == .pullData(version: 1, token: .init(9, 9), gateway: gateway), "version 1 forwarders")
    }

    @Test func malformedHeadersAreRefusedWithAReason() {
        #expect(throws: GWMP.ParseError.tooShort(3)) { try GWMP.parse([2, 0, 0]) }
        #expect(throws: GWMP.ParseError.tooShort(11)) { try GWMP.parse([2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7]) }
        #expect(throws: GWMP.ParseError.unsupportedVersion(3)) { try GWMP.parse([3, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]) }
        #expect(throws: GWMP.ParseError.unexpectedIdentifier(1)) { try GWMP.parse([2, 0, 0, 1]) }
        #expect(throws: GWMP.ParseError.unexpectedIdentifier(9)) {
            try GWMP.parse([2, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8])
        }
        #expect(throws: GWMP.ParseError.unexpectedIdentifier(5)) {
            try GWMP.parse([1, 0, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8])
        }
    }

    @Test func acknowledgementsEchoTheTokenBytes() {
        #expect(GWMP.acknowledgement(.pushAck, version: 2, token: .init(0xAB, 0xCD)) == [2, 0xAB, 0xCD, 1])
        #expect(GWMP.acknowledgement(.pullAck, version: 1, token: .init(0x00, 0xFF)) == [1, 0x00, 0xFF, 4])
    }

    @Test func theRxpkExampleOfPROTOCOLTXT() throws {
        let packets = try #require(try JSON.parse(Array(protocolRxpk.utf8))["rxpk"]?.array)
        #expect(packets.count == 3)
        // The document's first example is not valid Base64 ('-' is not in the alphabet).
        #expect(throws: ReceivedPacket.Problem.invalid("data (not base64)")) {
            try ReceivedPacket.frame(from: packets[0], gateway: gateway)
        }
        #expect(throws: ReceivedPacket.Problem.unsupportedModulation("FSK")) {
            try ReceivedPacket.frame(from: packets[1], gateway: gateway)
        }
        let frame = try ReceivedPacket.frame(from: packets[2], gateway: gateway)
        #expect(frame.frequencyHz == 863_009_810)
        #expect(frame.dataRate == LoRaDataRate(spreadingFactor: .sf10, bandwidth: .khz125))
        #expect(frame.codingRate == .cr4_7)
        #expect(frame.rssiDBm == -38)
        #expect(frame.snrDB == 5.5)
        #expect(frame.crc == .ok)
        #expect(frame.timestamp == 3_316_387_610)
        #expect(frame.payload.count == 32)
        #expect(frame.payload.prefix(3) == [0xCA, 0xC8, 0x11])
        #expect(frame.receivedAt == Int64(1_364_746_877_532_038_000))
        #expect(frame.gatewayEUI == gateway)
        #expect(frame.channel == 0 && frame.rfChain == 0)
    }

    @Test func theStatExampleOfPROTOCOLmd() throws {
        let stat = try #require(try JSON.parse(Array(protocolStat.utf8))["stat"])
        let status = ForwarderStatus(stat)
        #expect(status.time == "2014-01-12 08:59:28 GMT")
        #expect(status.latitude == 46.24 && status.longitude == 3.2523 && status.altitude == 145)
        #expect(status.received == 2 && status.receivedOK == 2 && status.forwarded == 2)
        #expect(status.acknowledgedPercent == 100 && status.downlinksReceived == 2 && status.transmitted == 2)
        #expect(status.temperature == 23.2)
    }

    /// The txpk example of PROTOCOL.TXT, as hotspotd writes it for the same request (plus the
    /// preamble length, which the document leaves to its default).
    @Test func theTxpkExampleOfPROTOCOLTXT() throws {
        let example = try JSON.parse(
            Array(
                """
                {"txpk":{
                \t"imme":true,
                \t"freq":864.123456,
                \t"rfch":0,
                \t"powe":14,
                \t"modu":"LORA",
                \t"datr":"SF11BW125",
                \t"codr":"4/6",
                \t"ipol":false,
                \t"size":32,
                \t"data":"H3P3N2i9qc4yt7rK7ldqoeCVJGBybzPY5h1Dd7P7p8v"
                }}
                """.utf8))["txpk"]!
        let payload = try #require(Base64.decode("H3P3N2i9qc4yt7rK7ldqoeCVJGBybzPY5h1Dd7P7p8v"))
        let request = TransmitRequest(
            payload: payload, frequencyHz: 864_123_456,
            dataRate: LoRaDataRate(spreadingFactor: .sf11, bandwidth: .khz125), codingRate: .cr4_6, powerDBm: 14,
            invertedIQ: false)
        let ours = Downlink.txpk(request)
        for key in ["imme", "freq", "rfch", "powe", "modu", "datr", "codr", "ipol", "size"] {
            #expect(ours[key] == example[key], "\(key)")
        }
        #expect(ours["data"]?.string.flatMap(Base64.decode) == payload)
        #expect(ours["prea"] == .number(8))
        #expect(ours["ncrc"] == nil, "an uplink-like frame keeps its CRC")

        var downlink = request
        downlink.invertedIQ = true
        downlink.crc = false
        downlink.timing = .atTimestamp(3_512_348_611 &+ 1_000_000)
        let scheduled = Downlink.txpk(downlink)
        #expect(scheduled["imme"] == nil)
        #expect(scheduled["tmst"] == .number(3_513_348_611))
        #expect(scheduled["ipol"] == .bool(true))
        #expect(scheduled["ncrc"] == .bool(true))
    }

    @Test func txpkAcknowledgements() {
        #expect(Downlink.outcome(ofAcknowledgement: [], requestedPowerDBm: 14) == .sent(powerDBm: 14))
        #expect(
            Downlink.outcome(ofAcknowledgement: [0], requestedPowerDBm: 14) == .sent(powerDBm: 14),
            "Kerlink's trailing NUL")
        #expect(
            Downlink.outcome(
                ofAcknowledgement: Array("{\"txpk_ack\":{\n\t\"error\":\"COLLISION_PACKET\"\n}}".utf8),
                requestedPowerDBm: 14) == .collisionPacket)
        #expect(
            Downlink.outcome(
                ofAcknowledgement: Array("{\"txpk_ack\":{\n\t\"warn\":\"TX_POWER\",\n    \"value\":20\n}}".utf8),
                requestedPowerDBm: 27) == .sent(powerDBm: 20))
        let errors: [(String, TransmitOutcome)] = [
            ("NONE", .sent(powerDBm: 14)), ("TOO_LATE", .tooLate), ("TOO_EARLY", .tooEarly),
            ("COLLISION_BEACON", .collisionBeacon), ("TX_FREQ", .frequencyNotAllowed),
            ("TX_POWER", .powerNotAllowed), ("GPS_UNLOCKED", .gpsUnlocked),
        ]
        for (error, outcome) in errors {
            #expect(
                Downlink.outcome(
                    ofAcknowledgement: Array("{\"txpk_ack\":{\"error\":\"\(error)\"}}".utf8), requestedPowerDBm: 14)
                    == outcome)
        }
        if case .failed = Downlink.outcome(ofAcknowledgement: Array("garbage".utf8), requestedPowerDBm: 14) {
        } else {
            Issue.record("garbage acknowledged as sent")
        }
    }

    @Test func rsigArraysOfJSONv2Forwarders() throws {
        let text =
            #"""
            {"jver":2,"time":"2013-03-31T16:21:17.530974Z","tmst":3512348514,"freq":869.1,"stat":1,"modu":"LORA",\#
            "datr":"SF7BW125","codr":"4/5","size":16,"data":"VEVTVF9QQUNLRVRfMTIzNA==","rsig":[{"ant":0,"chan":9,\#
            "rssic":-90,"lsnr":-3,"ftime":123456,"rssis":-90,"rssisd":0,"foff":-7089,"ftstat":0},{"ant":1,"chan":\#
            9,"rssic":-89,"lsnr":-2.8,"ftime":123489,"rssis":-90,"rssisd":0,"foff":-7089,"ftstat":0}]}
            """#
        let frame = try ReceivedPacket.frame(from: try JSON.parse(Array(text.utf8)), gateway: gateway)
        #expect(frame.payload == Array("TEST_PACKET_1234".utf8))
        #expect(frame.rssiDBm == -89, "the stronger antenna")
        #expect(frame.snrDB == -2.8)
        #expect(frame.channel == 9)
    }

    @Test(arguments: [
        (
            #"{"tmst":1,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","rssi":-50,"size":2,"data":"AA=*"}"#,
            "data"
        ),
        (#"{"tmst":1,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF13BW125","rssi":-50,"data":"AA=="}"#, "datr"),
        (#"{"tmst":-5,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","rssi":-50,"data":"AA=="}"#, "tmst"),
        (#"{"tmst":1,"freq":868.1,"stat":7,"modu":"LORA","datr":"SF7BW125","rssi":-50,"data":"AA=="}"#, "stat"),
        (#"{"tmst":1,"stat":1,"modu":"LORA","datr":"SF7BW125","rssi":-50,"data":"AA=="}"#, "freq"),
        (#"{"tmst":1,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","data":"AA=="}"#, "rssi"),
        (
            #"""
            {"tmst":1,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","rssi":-50,"data":"AA==","time":\#
            "yesterday"}
            """#,
            "time"
        ),
        (#"[1,2]"#, "element"),
    ])
    func rxpkProblemsNameTheField(text: String, field: String) throws {
        do {
            _ = try ReceivedPacket.frame(from: try JSON.parse(Array(text.utf8)), gateway: gateway)
            Issue.record("accepted \(text)")
        } catch {
            #expect("\(error)".contains(field), "\(error)")
        }
    }

    @Test func timestampsParse() {
        #expect(Timestamps.parseISO8601("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamps.parseISO8601("2013-03-31T16:21:17.528002Z") == 1_364_746_877_528_002_000)
        #expect(Timestamps.parseISO8601("2000-02-29T23:59:59.123456789123Z") == 951_868_799_123_456_789)
        #expect(Timestamps.parseISO8601("2013-03-31T16:21:17") == nil)
        #expect(Timestamps.parseISO8601("2013-13-31T16:21:17Z") == nil)
        #expect(Timestamps.parseISO8601("2013-03-31T16:21:17.Z") == nil)
    }
}
