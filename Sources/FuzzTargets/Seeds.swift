import Credits
import Cryptography
import FoundationEssentials
import Messages
import SecureElement
import SwiftProtobuf
import Wire

extension FuzzTarget {
    /// Where fuzzing starts: the inputs the tests use (Semtech's protocol examples, the LoRaWAN
    /// test vectors, signed commands of each kind, the documented downlink, the shipped board
    /// profiles and configuration). `repository` is the checkout, for the files it ships.
    public func seeds(repository: String) -> [[UInt8]] {
        switch self {
        case .gwmp: Self.gwmpSeeds
        case .lorawan: Self.lorawanSeeds
        case .command: Self.commandSeeds
        case .downlinkProtobuf: Self.downlinkSeeds.compactMap { try? $0.serializedBytes() }
        case .downlinkJSON: Self.downlinkSeeds.compactMap { try? Array($0.jsonUTF8Data()) }
        case .boardProfile: Self.files(in: repository + "/Board", ending: ".toml")
        case .config: Self.files(in: repository + "/packaging", ending: ".toml") + [Array(Self.fullConfiguration.utf8)]
        case .signedReport: Self.signedReportSeeds
        case .secureElement: [Self.secureElementSession, Self.secureElementRefusing]
        case .channelPlan: Self.channelPlanSeeds
        }
    }

    /// ChirpStack's EU868 plan, a forwarder's configuration with comments, and requests to the
    /// metrics port.
    static var channelPlanSeeds: [[UInt8]] {
        let channels = (0..<8).map { index in
            var channel = Gw_ChannelConfiguration()
            channel.frequency = 867_100_000 + 200_000 * UInt32(index)
            var lora = Gw_LoraModulationConfig()
            lora.bandwidth = 125_000
            lora.spreadingFactors = [7, 8, 9, 10, 11, 12]
            channel.modulationConfig = .loraModulationConfig(lora)
            return channel
        }
        var plan = Gw_GatewayConfiguration()
        plan.gatewayID = "0016c001ff10a235"
        plan.version = "eu868"
        plan.channels = channels
        let conf = """
            { "SX130x_conf": { /* concentrator */ "radio_0": {"enable": true, "freq": 867500000},
              "radio_1": {"enable": true, "freq": 868500000}, "chan_FSK": {"enable": false} },
              "gateway_conf": { "gateway_ID": "AA555A0000000000" } // the EUI
            }
            """
        return [
            [0] + ((try? plan.serializedBytes()) ?? []), [1] + Array(conf.utf8),
            [2] + Array("GET /metrics HTTP/1.1\r\nHost: hotspot\r\n\r\n".utf8),
            [2] + Array("POST /metrics HTTP/1.0\r\n\r\n".utf8),
        ]
    }

    static let forwarder: [UInt8] = [0xAA, 0x55, 0x5A, 0x00, 0x00, 0x00, 0x01, 0x01]

    static var gwmpSeeds: [[UInt8]] {
        let rxpk = #"""
            {"rxpk":[{"time":"2013-03-31T16:21:17.528002Z","tmst":3512348611,"chan":2,"rfch":0,"freq":866.349812,\#
            "stat":1,"modu":"LORA","datr":"SF7BW125","codr":"4/6","rssi":-35,"lsnr":5.1,"size":32,\#
            "data":"-DS4CGaDCdG+48eJNM3Vai-zDpsR71Pn9CPA9uCON84"},{"time":"2013-03-31T16:21:17.530974Z",\#
            "tmst":3512348514,"chan":9,"rfch":1,"freq":869.1,"stat":1,"modu":"FSK","datr":50000,"rssi":-75,\#
            "size":16,"data":"VEVTVF9QQUNLRVRfMTIzNA=="}]}
            """#
        let stat =
            #"""
            {"stat":{"time":"2014-01-12 08:59:28 GMT","lati":46.24000,"long":3.25230,"alti":145,"rxnb":2,"rxok":2,\#
            "rxfw":2,"ackr":100.0,"dwnb":2,"txnb":2,"temp":23.2}}
            """#
        let rsig =
            #"""
            {"rxpk":[{"jver":2,"tmst":1000000,"chan":0,"rfch":0,"freq":868.1,"mid":8,"stat":1,"modu":"LORA",\#
            "datr":"SF7BW125","codr":"4/5","rsig":[{"ant":0,"chan":0,"rssic":-64,"lsnr":9.5},{"ant":1,"chan":0,\#
            "rssic":-60,"lsnr":11.0}],"size":5,"data":"QAECAwQ="}]}
            """#
        return [
            [2, 0x12, 0x34, 0x00] + forwarder + Array(rxpk.utf8),
            [2, 0x12, 0x34, 0x00] + forwarder + Array(stat.utf8),
            [2, 0x12, 0x34, 0x00] + forwarder + Array(rsig.utf8),
            [1, 0x56, 0x78, 0x02] + forwarder,
            [2, 0x9A, 0xBC, 0x05] + forwarder + Array(#"{"txpk_ack":{"error":"NONE"}}"#.utf8),
            [2, 0x9A, 0xBC, 0x05] + forwarder + Array(#"{"txpk_ack":{"warn":"TX_POWER","value":20}}"#.utf8),
        ]
    }

    static var lorawanSeeds: [[UInt8]] {
        [
            "40F17DBE4900020001954378762B11FF0D",
            """
            40f17dbe490004000155332de41a11adc072553544429ce7787707d1c316e027e7e5e334263376affb8aa17ad30075293f28dea\
            8a20af3c5e7
            """,
            "40D4C3B2A1001000002712A3F9C9",
            "0039363463336913AA05693574323831330489C65B1304",
            "20e3de108795f776b8037610ef7869b5b3",
            "80DA1B01268302000302FF0001AABBCCDD",
            "C0DA1B0126000100000102030405060708",
            "E0010203",
        ].compactMap(Hex.decode)
    }

    static var commandSeeds: [[UInt8]] {
        let commands: [Command] = [
            .pair(
                devAddr: 0x2601_1BDA, devEUI: 0x70B3_D57E_D000_0001, owner: "alice",
                nwkSKey: Array(repeating: 0x11, count: 16)),
            .unpair(devAddr: 0x2601_1BDA),
            .credit(owner: "alice", amount: 1000),
            .entropy(data: Array(repeating: 7, count: 32), timestamp: 1_700_000_000),
        ]
        var seeds: [[UInt8]] = []
        for (index, command) in commands.enumerated() {
            let nonce = Array(repeating: UInt8(index), count: 16)
            guard
                let signed = try? CommandSigner.sign(
                    command, gatewayID: "0016c001ff10a235", key: authorityKey, expiresAt: now + 300, nonce: nonce),
                let envelope = try? Hotspotd_SignedCommand(serializedBytes: signed)
            else { continue }
            seeds.append([0] + signed)
            seeds.append([1] + Array(envelope.body))
        }
        return seeds
    }

    static var downlinkSeeds: [Gw_DownlinkFrame] {
        func item(frequency: UInt32, spreadingFactor: UInt32, delayed: Bool) -> Gw_DownlinkFrameItem {
            var lora = Gw_LoraModulationInfo()
            lora.bandwidth = 125_000
            lora.spreadingFactor = spreadingFactor
            lora.codeRate = .cr45
            lora.polarizationInversion = true
            var info = Gw_DownlinkTxInfo()
            info.frequency = frequency
            info.power = 14
            info.modulation.lora = lora
            if delayed {
                var delay = Gw_DelayTimingInfo()
                delay.delay = Google_Protobuf_Duration(seconds: 1)
                info.timing.delay = delay
                info.context = Data([0x00, 0x0F, 0x42, 0x40] + forwarder)
            } else {
                info.timing.immediately = Gw_ImmediatelyTimingInfo()
            }
            var item = Gw_DownlinkFrameItem()
            item.phyPayload = Data([0x60, 0xDA, 0x1B, 0x01, 0x26, 0x20, 0x01, 0x00, 0x01, 0x02, 0x03, 0x04])
            item.txInfo = info
            return item
        }
        var frame = Gw_DownlinkFrame()
        frame.downlinkID = 4242
        frame.gatewayID = "0016c001ff10a235"
        frame.items = [
            item(frequency: 868_100_000, spreadingFactor: 7, delayed: true),
            item(frequency: 869_525_000, spreadingFactor: 12, delayed: false),
        ]
        var impossible = frame
        impossible.items = [item(frequency: 915_000_000, spreadingFactor: 7, delayed: false)]
        return [frame, impossible]
    }

    /// The configuration of the README, every key set.
    static let fullConfiguration = """
        [gateway]
        board = "mock"                          # a profile from `hotspotd board list`
        region = "EU868"                        # EU868, US915, AU915, AS923, IN865, KR920
        id = "0016c001ff10a235"                 # default: derived from the key
        key_file = "/var/lib/hotspotd/gateway.key"   # created (mode 0600) on the first start
        data_dir = "/var/lib/hotspotd"          # the SQLite store: pairings, credits, outbox
        shutdown_timeout = "5s"                 # how long SIGTERM waits for the outbox to drain

        [radio]                                 # SPI boards only
        frequency = 868100000
        spreading_factor = 7
        bandwidth = 125000

        [semtech_udp]                           # packet-forwarder boards only
        bind = "127.0.0.1:1700"

        [mqtt]
        server = "mqtt://127.0.0.1:1883"        # mqtts://… for TLS
        topic_prefix = "eu868"                  # default: the region in lower case; no + or #
        json = false                            # protobuf by default, as ChirpStack
        qos = 1
        protocol_version = 4                    # 4 (MQTT 3.1.1) or 5
        keepalive = "30s"                       # 5s to 65535s
        outbox_max = 1000000
        max_inflight = 100
        # username, password, tls_cert, tls_key (client certificate and key, together)
        # ca_cert: the CA that signed an mqtts:// server; default /etc/ssl/certs/ca-certificates.crt

        [credits]
        authority = "13WvV82S7QN3VMzMSieiGxvuaPKknMtf213E5JwPnboDkUfesKw"   # required
        forward_unpaired = false
        charge_joins = true
        receipt_interval = "10m"

        [coverage]
        enabled = true
        interval = "6h"
        power = 14                              # dBm

        [stats]
        interval = "30s"

        [log]
        level = "info"                          # trace, debug, info, notice, warning, error, critical
        """

    static func files(in directory: String, ending suffix: String) -> [[UInt8]] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(suffix) }.sorted().compactMap { name in
            FileManager.default.contents(atPath: directory + "/" + name).map { Array($0) }
        }
    }

    /// A witness report signed with an ecc_compact key, one with Ed25519, helium-crypto's DER
    /// signature vector, a Helium key and a key URI.
    static var signedReportSeeds: [[UInt8]] {
        var witness = Helium_PocLora_lora_witness_report_req_v1()
        witness.data = Data([UInt8](repeating: 0xE0, count: 52))
        witness.frequency = 868_100_000
        let ecc = try! SoftwareECCSigner(P256PrivateKey.compact(seed: [1]))
        let ed = try! Ed25519PrivateKey(seed: [UInt8](repeating: 3, count: 32))
        return [ecc as any GatewaySigner, ed].compactMap { signer in
            (try? SignedReports.sign(witness, with: signer)).flatMap { try? $0.serializedBytes() }
        } + [
            Hex.decode(
                "304402206d791eb96bcc7d0ef403bc7a653fd99a6906374ec9e4aff1d5907d4890e8dd33"
                    + "02204b4c93c7637b22565b944201df9c806d684165802b8a1cd91d4d7799c950e466")!,
            Hex.decode("008f23e96ab6bbff48c8923cac831dc97111bcf33dba9f5a8539c00f9d93551af1")!,
            Array("ecc://i2c-1:96?slot=0".utf8),
        ]
    }

    /// What a chip answers in a session that reads its revision and public key: the wake
    /// status, then each response's count byte and the rest.
    static var secureElementSession: [UInt8] {
        func packet(_ data: [UInt8]) -> [UInt8] {
            let body = [UInt8(data.count + 3)] + data
            return body + ECC608CRC.bytes(body)
        }
        let key = P256PrivateKey.compact(seed: [2]).publicKey
        let wake: [UInt8] = [0x04, 0x11, 0x33, 0x43]
        return wake + packet([0x00, 0x00, 0x60, 0x02]) + wake + packet(key.x + key.y)
    }

    /// A chip that answers its revision, then refuses GenKey with an execution error.
    static var secureElementRefusing: [UInt8] {
        let wake: [UInt8] = [0x04, 0x11, 0x33, 0x43]
        let revision: [UInt8] = [0x07, 0x00, 0x00, 0x60, 0x03]
        return wake + revision + ECC608CRC.bytes(revision) + wake + [0x04, 0x0F, 0x23, 0x42]
    }
}
