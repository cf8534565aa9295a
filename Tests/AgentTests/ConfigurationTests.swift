import ChirpStack
import Clocks
import Cryptography
import Foundation
import HAL
import HALMock
import LoRaPHY
import Radio
import SecureElement
import TOML
import TestSupport
import Testing

@testable import Agent

let authority = "13WvV82S7QN3VMzMSieiGxvuaPKknMtf213E5JwPnboDkUfesKw"

func parse(_ text: String, environment: [String: String] = [:]) throws(TOMLConfigError) -> Configuration {
    try Configuration.parse(text, file: "hotspotd.toml", environment: environment)
}

func error(_ text: String, environment: [String: String] = [:]) -> TOMLConfigError? {
    do {
        _ = try parse(text, environment: environment)
        return nil
    } catch {
        return error
    }
}

@Suite(.capturingLogs) struct ConfigurationTests {
    @Test func theDesignsExampleParsesAndEveryOtherKeyHasADefault() throws {
        let configuration = try parse(
            """
            [gateway]
            region = "EU868"
            board = "mock"
            key_file = "/var/lib/hotspotd/gateway.key"
            data_dir = "/var/lib/hotspotd"

            [radio]
            frequency = 868100000
            spreading_factor = 7
            bandwidth = 125000

            [semtech_udp]
            bind = "127.0.0.1:1700"

            [mqtt]
            server = "mqtt://127.0.0.1:1883"
            topic_prefix = "eu868"
            json = false
            qos = 1

            [credits]
            authority = "\(authority)"
            forward_unpaired = false
            charge_joins = true
            receipt_interval = "10m"

            [coverage]
            enabled = true
            interval = "6h"

            [stats]
            interval = "30s"

            [log]
            level = "info"
            """)
        #expect(configuration.gateway.region.name == .eu868)
        #expect(configuration.radio.dataRate == LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125))
        #expect(configuration.mqtt.host == "127.0.0.1" && configuration.mqtt.port == 1883 && !configuration.mqtt.tls)
        #expect(configuration.credits.receiptInterval == .seconds(600))
        #expect(configuration.coverage.interval == .seconds(21_600))

        let minimal = try parse("[credits]\nauthority = \"\(authority)\"\n")
        #expect(minimal.gateway.board == "mock" && minimal.mqtt.topicPrefix == "eu868")
        #expect(minimal.radio.frequencyHz == 868_100_000)
        #expect(minimal.statsInterval == .seconds(30) && minimal.mqtt.outboxMaximum == 1_000_000)
    }

    /// One mistake is said once: what follows from a refused value is not checked against
    /// the default that stands in for it.
    @Test(arguments: [
        (
            "[gateway]\nregion = \"US-915\"\n[radio]\nfrequency = 903900000\n[credits]\nauthority = \"\(authority)\"",
            ["gateway.region"]
        ),
        ("[credits]\nauthority = 123", ["credits.authority"]),
        ("credits = \"x\"", ["credits"]),
        ("[mqtt]\ntls_cert = 5\ntls_key = \"key.pem\"\n[credits]\nauthority = \"\(authority)\"", ["mqtt.tls_cert"]),
        (
            """
            [gateway]\nregoin = \"EU868\"\n[mqtt]\nqos = 2\n[stats]\ninterval = 10\n[credits]\nauthority = \
            \"\(authority)\"
            """,
            ["gateway.regoin", "mqtt.qos", "stats.interval"]
        ),
    ])
    func everyProblemIsSaidOnce(text: String, keys: [String]) {
        let (_, problems) = Configuration.check(text, file: "hotspotd.toml")
        #expect(problems.map(\.key).sorted() == keys.sorted(), "\(problems)")
    }

    @Test func theAuthorityIsRequired() {
        let missing = error("[gateway]\nregion = \"US915\"\n")
        #expect(missing?.key == "credits.authority")
        #expect(missing?.message.contains("required") == true)
        #expect(error("[credits]\nauthority = \"nope\"\n")?.key == "credits.authority")
    }

    @Test(arguments: [
        ("[gateway]\nregoin = \"EU868\"", "gateway.regoin", 2, "unknown key"),
        ("[gateway]\nregion = \"XX123\"", "gateway.region", 2, "unknown region"),
        ("[radio]\nfrequency = \"868.1\"", "radio.frequency", 2, "expected an integer"),
        ("[radio]\nfrequency = 915000000", "radio.frequency", 2, "outside EU868"),
        ("[radio]\nspreading_factor = 13", "radio.spreading_factor", 2, "7 to 12"),
        ("[radio]\nbandwidth = 100000", "radio.bandwidth", 2, "not a LoRaWAN bandwidth"),
        ("[mqtt]\nserver = \"http://broker\"", "mqtt.server", 2, "mqtt://"),
        ("[mqtt]\nqos = 2", "mqtt.qos", 2, "0 or 1"),
        ("[mqtt]\ntopic_prefix = \"#\"", "mqtt.topic_prefix", 2, "no + or #"),
        ("[mqtt]\ntopic_prefix = \"a/+/b\"", "mqtt.topic_prefix", 2, "no + or #"),
        ("[mqtt]\ntopic_prefix = \"\"", "mqtt.topic_prefix", 2, "not empty"),
        ("[mqtt]\nkeepalive = \"1000d\"", "mqtt.keepalive", 2, "maximum"),
        (
            "[gateway]\nshutdown_timeout = \"4611686018s4611686018s4611686018s\"", "gateway.shutdown_timeout", 2,
            "not a duration"
        ),
        ("[credits]\nreceipt_interval = \"soon\"", "credits.receipt_interval", 3, "not a duration"),
        ("[coverage]\ninterval = \"5s\"", "coverage.interval", 2, "minimum"),
        ("[log]\nlevel = \"loud\"", "log.level", 2, "not a log level"),
        ("[telemetry]\nx = 1", "telemetry", 1, "unknown key"),
        ("[semtech_udp]\nforwarders = [\"AA555A00000001\"]", "semtech_udp.forwarders", 2, "not a gateway EUI"),
        ("[semtech_udp]\nforwarders = [\"AA555A0000000001@nowhere\"]", "semtech_udp.forwarders", 2, "IP address"),
        ("[radio]\nantenna_gain = 40", "radio.antenna_gain", 2, "0 to 20 dBi"),
        ("[radio]\nlisten_before_talk = true", "radio.listen_before_talk", 2, "AS923 in Japan"),
        ("[radio]\ndwell_time = false", "radio.dwell_time", 2, "only AS923"),
    ])
    func badValuesNameTheKeyAndLine(text: String, key: String, line: Int, message: String) {
        let withAuthority =
            text.contains("[credits]")
            ? text.replacingOccurrences(of: "[credits]", with: "[credits]\nauthority = \"\(authority)\"")
            : text + "\n[credits]\nauthority = \"\(authority)\"\n"
        let found = error(withAuthority)
        #expect(found?.key == key, "\(String(describing: found))")
        #expect(found?.message.contains(message) == true, "\(String(describing: found))")
        if line > 0 { #expect(found?.line == line, "\(String(describing: found))") }
        #expect(found?.description.contains("(hotspotd.toml") == true, "<what> (<where>)")
    }

    @Test func transmitRulesAndForwardersAreRead() throws {
        let configuration = try parse(
            """
            [gateway]
            region = "AS923"
            [radio]
            frequency = 923200000
            antenna_gain = 3.5
            dwell_time = false
            listen_before_talk = true
            [semtech_udp]
            forwarders = ["AA555A0000000001", "aa555a0000000002@192.168.1.20"]
            listen_before_talk = true
            [credits]
            authority = "\(authority)"
            """)
        let policy = configuration.radio.policy(region: configuration.gateway.region)
        #expect(policy.antennaGainDBi == 3.5)
        #expect(!policy.dwellTimeLimited)
        #expect(policy.listenBeforeTalk == .japan)
        #expect(
            configuration.semtechUDP.forwarders.map(\.description) == [
                "aa555a0000000001", "aa555a0000000002@192.168.1.20",
            ])
        #expect(configuration.semtechUDP.listenBeforeTalk)
        let korea = try parse("[gateway]\nregion = \"KR920\"\n[credits]\nauthority = \"\(authority)\"\n")
        #expect(
            korea.radio.policy(region: korea.gateway.region).listenBeforeTalk == .kr920, "KR920 always listens first")
    }

    @Test func environmentVariablesOverrideTheFile() throws {
        let configuration = try parse(
            "[mqtt]\nserver = \"mqtt://127.0.0.1:1883\"\n[credits]\nauthority = \"\(authority)\"\n",
            environment: [
                "HOTSPOTD_MQTT_SERVER": "mqtt://broker.example:2883",
                "HOTSPOTD_MQTT_JSON": "true",
                "HOTSPOTD_GATEWAY_REGION": "US915",
                "HOTSPOTD_COVERAGE_INTERVAL": "2h",
            ])
        #expect(configuration.mqtt.host == "broker.example" && configuration.mqtt.port == 2883)
        #expect(configuration.mqtt.json)
        #expect(configuration.gateway.region.name == .us915)
        #expect(configuration.radio.frequencyHz == 902_300_000, "the default follows the region")
        #expect(configuration.coverage.interval == .seconds(7200))
        let bad = error("[credits]\nauthority = \"\(authority)\"\n", environment: ["HOTSPOTD_MQTT_QOS": "lots"])
        #expect(bad?.key == "HOTSPOTD_MQTT_QOS")
    }

    @Test func severalBrokersInTheOrderTheyAreTried() throws {
        let credits = "[credits]\nauthority = \"\(authority)\"\n"
        let configuration = try parse(
            """
            [mqtt]
            servers = ["mqtt://broker-a.example", "mqtts://broker-b.example:9883", "mqtt://[fd00::1]:1884"]
            failover_after = "45s"
            failback_interval = "15m"

            """ + credits)
        #expect(
            configuration.mqtt.servers.map(\.description) == [
                "mqtt://broker-a.example:1883", "mqtts://broker-b.example:9883", "mqtt://[fd00::1]:1884",
            ])
        #expect(
            configuration.mqtt.failoverAfter == .seconds(45) && configuration.mqtt.failbackInterval == .seconds(900))
        #expect(configuration.mqtt.settings(clientID: "g", server: 0).caFile == nil)
        #expect(configuration.mqtt.settings(clientID: "g", server: 1).caFile == Configuration.systemCABundle)
        #expect(configuration.mqtt.settings(clientID: "g", server: 2).host == "fd00::1")
        // One broker: the defaults.
        let one = try parse(credits)
        #expect(one.mqtt.servers.count == 1 && one.mqtt.failoverAfter == .seconds(30))
        #expect(one.mqtt.failbackInterval == .seconds(600))
        // Refused: both keys, a repeat, a bad name, an empty list.
        let both = error("[mqtt]\nserver = \"mqtt://a\"\nservers = [\"mqtt://b\"]\n" + credits)
        #expect(both?.key == "mqtt.servers" && both?.message.contains("keep one") == true)
        let twice = error("[mqtt]\nservers = [\"mqtt://a\", \"mqtt://a:1883\"]\n" + credits)
        #expect(twice?.message.contains("named twice") == true)
        #expect(error("[mqtt]\nservers = [\"mqtt://a\", \"http://b\"]\n" + credits)?.key == "mqtt.servers")
        #expect(error("[mqtt]\nservers = []\n" + credits)?.message.contains("names no broker") == true)
        #expect(error("[mqtt]\nserver = \"mqtt://fe80::1\"\n" + credits)?.message.contains("in brackets") == true)
        #expect(error("[mqtt]\nfailover_after = \"0s\"\n" + credits)?.key == "mqtt.failover_after")
    }

    /// The beacon's power is judged as EIRP: the antenna's gain counts, and the default gives
    /// way to it.
    @Test func theBeaconPowerLeavesRoomForTheAntennasGain() throws {
        let credits = "[credits]\nauthority = \"\(authority)\"\n"
        #expect(try parse("[radio]\nantenna_gain = 8\n" + credits).coverage.powerDBm == 8, "16.15 − 8 dBi")
        #expect(try parse(credits).coverage.powerDBm == 14)
        #expect(try parse("[gateway]\nregion = \"EU433\"\n" + credits).coverage.powerDBm == 12)
        let over = error("[radio]\nantenna_gain = 8\n[coverage]\npower = 14\n" + credits)
        #expect(over?.key == "coverage.power" && over?.message.contains("antenna_gain") == true)
        #expect(
            try parse("[radio]\nantenna_gain = 8\n[coverage]\nenabled = false\npower = 14\n" + credits).coverage.enabled
                == false, "no beacons, no limit to keep")
    }

    @Test func metricsAreOffUnlessBound() throws {
        let credits = "[credits]\nauthority = \"\(authority)\"\n"
        #expect(try parse(credits).metricsBind == nil)
        let bound = try parse("[metrics]\nbind = \"127.0.0.1:9100\"\n" + credits).metricsBind
        #expect(bound?.host == "127.0.0.1" && bound?.port == 9100)
        #expect(try parse("[metrics]\nbind = \"[::1]:9100\"\n" + credits).metricsBind?.host == "::1")
        #expect(try parse("[metrics]\nbind = \"localhost:9100\"\n" + credits).metricsBind?.isLoopback == true)
        for bad in [
            "broker.example:9100", "127.0.0.1", "127.0.0.1:0", "1.2.3:9100", "[zz]:1", "127.0.0.010:9100", "1.2.3.4:+1",
        ] {
            #expect(error("[metrics]\nbind = \"\(bad)\"\n" + credits)?.key == "metrics.bind", "\(bad)")
        }
        let semtech = "[semtech_udp]\nforwarder_config = \"/etc/lora/global_conf.json\"\n" + credits
        #expect(error(semtech)?.message.contains("go together") == true)
        let relative = "[semtech_udp]\nforwarder_config = \"global_conf.json\"\nforwarder_unit = \"lora.service\"\n"
        #expect(error(relative + credits)?.message.contains("absolute path") == true)
        let unit = "[semtech_udp]\nforwarder_config = \"/etc/g.json\"\nforwarder_unit = \"--now x\"\n"
        #expect(error(unit + credits)?.key == "semtech_udp.forwarder_unit")
    }

    @Test func durations() {
        #expect(DurationText.parse("30s") == .seconds(30))
        #expect(DurationText.parse("1h30m") == .seconds(5400))
        #expect(DurationText.parse("500ms") == .milliseconds(500))
        #expect(DurationText.parse("6h") == .seconds(21_600))
        #expect(DurationText.parse("10") == nil)
        #expect(DurationText.parse("m5") == nil)
        #expect(DurationText.parse("5 parsecs") == nil)
        #expect(
            DurationText.parse("4611686018s4611686018s4611686018s") == nil,
            "a sum that overflows is refused, not a trap")
    }

    @Test func tlsTrustsTheSystemsCABundleUnlessTold() throws {
        let system = try parse("[mqtt]\nserver = \"mqtts://broker.example\"\n[credits]\nauthority = \"\(authority)\"\n")
        #expect(system.mqtt.tls && system.mqtt.port == 8883)
        #expect(system.mqtt.caCertificate == "/etc/ssl/certs/ca-certificates.crt")
        let own = try parse(
            """
            [mqtt]\nserver = \"mqtts://broker.example\"\nca_cert = \"/etc/hotspotd/ca.pem\"\n[credits]\nauthority \
            = \"\(authority)\"\n
            """
        )
        #expect(own.mqtt.caCertificate == "/etc/hotspotd/ca.pem")
        let plain = try parse("[credits]\nauthority = \"\(authority)\"\n")
        #expect(plain.mqtt.caCertificate == nil)
    }
}

@Suite(.capturingLogs) struct GatewayKeyConfigurationTests {
    static let base = """
        [credits]
        authority = "13WvV82S7QN3VMzMSieiGxvuaPKknMtf213E5JwPnboDkUfesKw"
        """

    @Test func keyTakesAPathOrAURIAndKeyFileStillWorks() throws {
        let uri = try Configuration.parse("[gateway]\nkey = \"ecc://i2c-1:96?slot=0\"\n" + Self.base, file: "h.toml")
        #expect(uri.gateway.key == "ecc://i2c-1:96?slot=0" && uri.gateway.keyFile == nil)
        let path = try Configuration.parse("[gateway]\nkey = \"/k/gateway.key\"\n" + Self.base, file: "h.toml")
        #expect(path.gateway.keyFile == "/k/gateway.key")
        let legacy = try Configuration.parse("[gateway]\nkey_file = \"/k/old.key\"\n" + Self.base, file: "h.toml")
        #expect(legacy.gateway.keyFile == "/k/old.key" && legacy.gateway.keySetting == "gateway.key_file")
        let unset = try Configuration.parse(Self.base, file: "h.toml")
        #expect(unset.gateway.key == nil && unset.gateway.keyFile == Configuration.Gateway.defaultKeyFile)
    }

    @Test func aBadKeyIsNamedWithItsLine() {
        for (text, key) in [
            ("[gateway]\nkey = \"ecc://i2c-1:300\"", "gateway.key"),
            ("[gateway]\nkey = \"/a\"\nkey_file = \"/b\"", "gateway.key_file"),
            ("[gateway]\nkey = \"\"", "gateway.key"),
        ] {
            let (_, problems) = Configuration.check(text + "\n" + Self.base, file: "h.toml")
            #expect(problems.contains { $0.key == key && $0.line > 0 }, "\(text): \(problems)")
        }
    }

    @Test func theKeyComesFromTheConfigurationThenTheBoardsSecureElement() throws {
        let helium = try BoardCatalog(directories: [boardDirectory]).load("pisces-p100")
        let mock = try BoardCatalog(directories: [boardDirectory]).load("mock")
        let unset = try Configuration.parse(Self.base, file: "h.toml")
        #expect(try Startup.keySource(unset, profile: helium) == .secureElement(ECCKeyURI(bus: "/dev/i2c-0")))
        #expect(try Startup.keySource(unset, profile: mock) == .file(Configuration.Gateway.defaultKeyFile))
        let file = try Configuration.parse("[gateway]\nkey = \"/k/g.key\"\n" + Self.base, file: "h.toml")
        #expect(try Startup.keySource(file, profile: helium) == .file("/k/g.key"))
    }

    /// On the mock board's chip: the identity is the chip's key; its sealing key is made once,
    /// mode 0600, and the same at every start.
    @Test func aSecureElementsIdentityKeepsItsSealingKey() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-seal-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = try Configuration.parse(
            "[gateway]\nkey = \"ecc://i2c-1:96?slot=0\"\ndata_dir = \"\(directory)\"\n" + Self.base, file: "h.toml")
        let profile = try BoardCatalog(directories: [boardDirectory]).load("mock")
        let board = try MockBoard(profile: profile, air: Air(timeScale: 0))
        let source = try Startup.keySource(configuration, profile: profile)
        let (first, _) = try Startup.identity(configuration, source: source, board: board)
        #expect(first.publicKey == .eccCompact(board.secureElement.key.publicKey))
        var status = stat()
        #expect(stat(directory + "/sealing.key", &status) == 0 && status.st_mode & 0o777 == 0o600)
        let (second, _) = try Startup.identity(configuration, source: source, board: board)
        #expect(second.sealingKey.publicKey == first.sealingKey.publicKey)
        // A chip that does not answer stops the start, naming bus and address, with an exit
        // code that lets systemd try again.
        // A chip that is not provisioned is refused for good (78: no restart loop).
        let unlocked = VirtualI2CBus(path: "/dev/i2c-1")
        unlocked.attach(SimulatedECC608(key: board.secureElement.key, locked: false), at: 0x60)
        #expect {
            try Startup.identity(configuration, source: source, board: ChipOnlyBoard(profile: profile, bus: unlocked))
        } throws: { error in
            guard let error = error as? StartError else { return false }
            return error.exitCode == 78 && error.message.contains("not provisioned")
        }
        board.secureElement.injectFaults { $0.unresponsive = true }
        #expect {
            try Startup.identity(configuration, source: source, board: board)
        } throws: { error in
            guard let error = error as? StartError else { return false }
            return error.exitCode == 1 && error.message.contains("/dev/i2c-1 at 0x60")
        }
    }
}

/// A board that has nothing but an I2C bus.
final class ChipOnlyBoard: BoardHardware {
    let profile: BoardProfile
    let bus: VirtualI2CBus
    init(profile: BoardProfile, bus: VirtualI2CBus) {
        self.profile = profile
        self.bus = bus
    }
    var gpio: any GPIOController { VirtualGPIOChip() }
    func openBusDevice(_ spi: BoardProfile.SPI) throws(HardwareError) -> any SPIDevice {
        throw HardwareError(.notFound, "no SPI on this board")
    }
    func openI2C(_ path: String) throws(HardwareError) -> any I2CBus { bus }
}

@Suite(.capturingLogs) struct FilterConfigurationTests {
    @Test func filtersAreReadAndABadPrefixIsNamed() throws {
        let text = """
            [filters]
            dev_addr_prefixes = ["26000000/7"]
            deny_join_eui_prefixes = ["70b3d57ed0000000/32"]
            """ + "\n" + GatewayKeyConfigurationTests.base
        let configuration = try Configuration.parse(text, file: "h.toml")
        #expect(configuration.filters.devAddrPrefixes.map(\.description) == ["26000000/7"])
        #expect(configuration.filters.denyJoinEUIPrefixes.map(\.description) == ["70b3d57ed0000000/32"])
        #expect(!configuration.filters.admits(joinEUI: 0x70B3_D57E_D000_0001))
        let (_, problems) = Configuration.check(
            "[filters]\njoin_eui_prefixes = [\"70b3d57e/8\"]\n" + GatewayKeyConfigurationTests.base, file: "h.toml")
        #expect(problems.contains { $0.key == "filters.join_eui_prefixes" && $0.line == 2 }, "\(problems)")
    }
}
