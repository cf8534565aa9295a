import Clocks
import Credits
import Cryptography
import LoRaPHY
import Radio
import SecureElement
import SemtechUDP
import TOML
import Transport

/// hotspotd's configuration (`/etc/hotspotd/hotspotd.toml`, DESIGN §8). Every key has a default
/// except `credits.authority`. An unknown key, a wrong type or an impossible value is an error
/// naming the file, the line and the key; `HOTSPOTD_SECTION_KEY` environment variables
/// override the file (`HOTSPOTD_MQTT_SERVER=mqtts://broker:8883`).
public struct Configuration: Sendable {
    public struct Gateway: Sendable {
        public var region: Region
        public var board: String
        /// `gateway.key` (or its older name `key_file`): a key file's path or an `ecc://` URI.
        /// nil when not set: the board's secure element when its profile names one, otherwise
        /// `defaultKeyFile`.
        public var key: String?
        /// Which of the two names set `key`, for messages.
        public var keySetting = "gateway.key"
        public var dataDirectory: String

        public static let defaultKeyFile = "/var/lib/hotspotd/gateway.key"

        /// The key file, when the key is one: the configured path or the default.
        public var keyFile: String? {
            guard let key else { return Self.defaultKeyFile }
            return ECCKeyURI.isURI(key) ? nil : key
        }
        /// 16 hex digits; nil to derive it from the key.
        public var id: String?
        public var shutdownTimeout: Duration
    }

    public struct RadioSettings: Sendable {
        public var frequencyHz: UInt32
        public var dataRate: LoRaDataRate
        /// dBi: added to the conducted power to judge the EIRP limit.
        public var antennaGainDBi: Double = 0
        /// AS923's 400 ms dwell time (on unless the country does without it).
        public var dwellTime: Bool = true
        /// AS923 in Japan: sense the channel first (KR920 always does).
        public var listenBeforeTalk: Bool = false

        /// The transmit rules of `region` with these settings.
        public func policy(region: Region) -> RegionalTransmitPolicy {
            RegionalTransmitPolicy(
                region: region, antennaGainDBi: antennaGainDBi, dwellTimeLimited: dwellTime,
                listenBeforeTalk: region.name == .kr920 ? .kr920 : (listenBeforeTalk ? .japan : nil))
        }
    }

    public struct SemtechUDP: Sendable {
        public var bind: String
        /// The only forwarders taken, when not empty.
        public var forwarders: [SemtechUDPBackend.TrustedForwarder] = []
        /// Whether the forwarder's concentrator senses the channel before transmitting (its
        /// global_conf.json `lbt` section): required to transmit where listen-before-talk is.
        public var listenBeforeTalk = false
        /// The forwarder's global_conf.json, where a network server's channel plan is written,
        /// and its systemd unit, restarted to take it: both, or no channel plans.
        public var forwarderConfiguration: String?
        public var forwarderUnit: String?
    }

    public struct MQTT: Sendable {
        /// A broker: `mqtt://host:port` or `mqtts://host:port`.
        public struct Server: Sendable, Hashable, CustomStringConvertible {
            public var host: String
            public var port: Int
            public var tls: Bool

            public init(host: String, port: Int, tls: Bool) {
                self.host = host
                self.port = port
                self.tls = tls
            }

            /// The broker as a person names it.
            public var description: String {
                "\(tls ? "mqtts" : "mqtt")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
            }

            /// Why a broker's name was refused.
            public struct Invalid: Error, CustomStringConvertible {
                public var description: String
                init(_ description: String) { self.description = description }
            }

            /// Reads `mqtt://host[:port]` or `mqtts://host[:port]` (1883 and 8883 by default;
            /// an IPv6 host in brackets).
            public static func parse(_ text: String) -> Result<Server, Invalid> {
                let tls: Bool
                let rest: Substring
                if text.hasPrefix("mqtts://") {
                    (tls, rest) = (true, text.dropFirst(8))
                } else if text.hasPrefix("mqtt://") {
                    (tls, rest) = (false, text.dropFirst(7))
                } else {
                    return .failure(Invalid("'\(text)' must start with mqtt:// or mqtts://"))
                }
                var host = String(rest)
                var port = tls ? 8883 : 1883
                let colons = rest.filter { $0 == ":" }.count
                if colons > 1, !rest.hasPrefix("[") {
                    return .failure(Invalid("'\(text)': an IPv6 address goes in brackets (mqtt://[fd00::1]:1883)"))
                }
                if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
                    host = String(rest[..<colon])
                    guard let number = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(number) else {
                        return .failure(Invalid("'\(text)' has no valid port"))
                    }
                    port = number
                }
                if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
                guard !host.isEmpty else { return .failure(Invalid("'\(text)' names no host")) }
                return .success(Server(host: host, port: port, tls: tls))
            }
        }

        /// The brokers, in the order they are tried; the first is the one to come back to.
        public var servers: [Server]
        /// How long the current broker may stay unreachable before the next is tried.
        public var failoverAfter: Duration
        /// How often, while on another broker, the first is checked to go back to it.
        public var failbackInterval: Duration
        public var topicPrefix: String
        public var json: Bool
        public var qos: Int
        public var username: String?
        public var password: String?
        public var caCertificate: String?
        public var tlsCertificate: String?
        public var tlsKey: String?
        public var keepalive: Duration
        public var protocolVersion: Int
        public var outboxMaximum: Int
        public var maximumInFlight: Int

        /// The first broker's host, port and scheme.
        public var host: String { servers[0].host }
        public var port: Int { servers[0].port }
        public var tls: Bool { servers[0].tls }

        /// The broker as a person names it (the first, when there are several).
        public var brokerAddress: String { servers[0].description }

        /// The client's settings for broker `server` of the list; the gateway ID is the client ID.
        public func settings(clientID: String, server index: Int = 0) -> MQTTSettings {
            let server = servers[index]
            return MQTTSettings(
                host: server.host, port: server.port, clientID: clientID, protocolVersion: protocolVersion,
                keepaliveSeconds: Int(keepalive.components.seconds), username: username, password: password,
                caFile: server.tls ? caCertificate ?? Configuration.systemCABundle : nil,
                certificateFile: tlsCertificate, keyFile: tlsKey,
                maximumInFlight: maximumInFlight)
        }
    }

    public struct Credits: Sendable {
        public var authority: Ed25519PublicKey
        public var authorityAddress: String
        public var forwardUnpaired: Bool
        public var chargeJoins: Bool
        public var receiptInterval: Duration
    }

    public struct Coverage: Sendable {
        public var enabled: Bool
        public var interval: Duration
        public var powerDBm: Int
    }

    public var gateway: Gateway
    public var radio: RadioSettings
    public var semtechUDP: SemtechUDP
    public var mqtt: MQTT
    public var credits: Credits
    public var coverage: Coverage
    /// Which uplinks are taken at all (`[filters]`): none left out by default.
    public var filters: UplinkFilters = .none
    /// Where Prometheus metrics are served (`[metrics] bind`): off when nil.
    public var metricsBind: SocketAddress?
    public var statsInterval: Duration
    public var logLevel: String
    public var file: String

    public static let defaultPath = "/etc/hotspotd/hotspotd.toml"

    /// The CA bundle an mqtts:// connection trusts when `mqtt.ca_cert` is not set.
    public static let systemCABundle = "/etc/ssl/certs/ca-certificates.crt"

    /// Where each key that was set came from (`gateway.board` → file and line, or the
    /// environment variable); keys left at their default are absent.
    public var origins: [String: ConfigurationOrigin] = [:]

    /// Parses `text` (read from `file`), then applies `environment` overrides. Throws the
    /// first problem; `check` finds them all.
    public static func parse(_ text: String, file: String, environment: [String: String] = [:]) throws(TOMLConfigError)
        -> Configuration
    {
        let (configuration, problems) = check(text, file: file, environment: environment)
        if let first = problems.first { throw first }
        return configuration!
    }

    /// Reads the whole configuration and returns every problem found, each naming the file,
    /// the line and the key (or the environment variable); the configuration, with defaults in
    /// place of what was wrong, unless the file is not TOML at all.
    public static func check(_ text: String, file: String, environment: [String: String] = [:]) -> (
        configuration: Configuration?, problems: [TOMLConfigError]
    ) {
        let root: TOMLSection
        do {
            root = try TOMLSection.parse(text, file: file)
        } catch {
            return (nil, [error])
        }
        let reader = Reader(root: root, environment: environment)
        let configuration = reader.read()
        return (configuration, reader.problems)
    }

    /// A problem with `key` (dotted, as `gateway.board`) found after reading, such as a board
    /// profile that does not exist: located where the key was set.
    public func error(_ key: String, _ message: String) -> TOMLConfigError {
        if let origin = origins[key] {
            return TOMLConfigError(file: origin.file, line: origin.line, key: origin.key, message: message)
        }
        return TOMLConfigError(file: file, line: 0, key: key, message: message + " (the default; set it in the file)")
    }

    /// `HOTSPOTD_` variables read elsewhere than the configuration: where board profiles are
    /// (`HOTSPOTD_BOARD_DIR`) and the build's choice of libgpiod API.
    public static let otherEnvironmentVariables = [
        "HOTSPOTD_BOARD_DIR", "HOTSPOTD_GPIOD_API", "HOTSPOTD_SKIP_GPIOD_V2",
    ]

    /// The names of the environment variables that override keys: `HOTSPOTD_MQTT_SERVER` …
    public static func environmentName(section: String, key: String) -> String {
        "HOTSPOTD_\(section.uppercased())_\(key.uppercased())"
    }
}

/// Parses durations as people write them: "30s", "10m", "6h", "1h30m", "500ms".
public enum DurationText {
    public static func parse(_ text: String) -> Duration? {
        var total: Int64 = 0
        var number = ""
        var unit = ""
        var parsedAny = false
        func flush() -> Bool {
            guard let value = Int64(number), !unit.isEmpty else { return false }
            let scale: Int64
            switch unit {
            case "ms": scale = Nanoseconds.perSecond / 1000
            case "s": scale = Nanoseconds.perSecond
            case "m": scale = 60 * Nanoseconds.perSecond
            case "h": scale = 3600 * Nanoseconds.perSecond
            case "d": scale = 86_400 * Nanoseconds.perSecond
            default: return false
            }
            guard value <= Int64.max / scale / 2 else { return false }
            let (sum, overflow) = total.addingReportingOverflow(value * scale)
            guard !overflow, sum <= Int64.max / 2 else { return false }
            total = sum
            number = ""
            unit = ""
            parsedAny = true
            return true
        }
        for character in text.trimmingWhitespace() {
            if character.isASCII && character.isNumber {
                if !unit.isEmpty { guard flush() else { return nil } }
                number.append(character)
            } else if character.isLetter {
                guard !number.isEmpty else { return nil }
                unit.append(character)
            } else {
                return nil
            }
        }
        guard flush(), parsedAny, total > 0 else { return nil }
        return .nanoseconds(total)
    }

    public static func describe(_ duration: Duration) -> String {
        let seconds = duration.components.seconds
        if seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }
}

extension String {
    func trimmingWhitespace() -> Substring {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map { index(after: $0) } ?? start
        return self[start..<end]
    }
}

/// Where a key's value came from: a line of the file, an environment variable, or nowhere
/// (its default).
public struct ConfigurationOrigin: Sendable, Equatable {
    public var file: String
    /// 0 for a default or an environment variable.
    public var line: Int
    /// The dotted key (`gateway.board`), or the environment variable that set it.
    public var key: String
    public var fromEnvironment: Bool { file == "environment" }
}

/// Reads each section with its defaults; an environment variable wins over the file. Every
/// problem is recorded and reading goes on with the key's default, so that one pass finds them
/// all (`hotspotd config check`).
private final class Reader {
    let root: TOMLSection
    let environment: [String: String]
    var problems: [TOMLConfigError] = []
    let origins = Origins()

    static let sectionKeys: [(section: String, keys: [String])] = [
        ("gateway", ["region", "board", "key", "key_file", "data_dir", "id", "shutdown_timeout"]),
        ("radio", ["frequency", "spreading_factor", "bandwidth", "antenna_gain", "dwell_time", "listen_before_talk"]),
        ("semtech_udp", ["bind", "forwarders", "listen_before_talk", "forwarder_config", "forwarder_unit"]),
        (
            "mqtt",
            [
                "server", "servers", "failover_after", "failback_interval", "topic_prefix", "json", "qos", "username",
                "password", "ca_cert", "tls_cert", "tls_key",
                "keepalive", "protocol_version", "outbox_max", "max_inflight",
            ]
        ),
        ("credits", ["authority", "forward_unpaired", "charge_joins", "receipt_interval"]),
        ("coverage", ["enabled", "interval", "power"]),
        ("stats", ["interval"]),
        ("filters", ["dev_addr_prefixes", "join_eui_prefixes", "deny_dev_addr_prefixes", "deny_join_eui_prefixes"]),
        ("metrics", ["bind"]),
        ("log", ["level"]),
    ]

    init(root: TOMLSection, environment: [String: String]) {
        self.root = root
        self.environment = environment
    }

    /// Runs one read; a problem is recorded and gives nil.
    func attempt<T>(_ read: () throws(TOMLConfigError) -> T?) -> T? {
        do {
            return try read()
        } catch {
            problems.append(error)
            return nil
        }
    }

    func problem(_ error: TOMLConfigError) {
        problems.append(error)
    }

    /// Whether `dotted` (`credits.authority`), or its section as a whole, already has a
    /// problem: checks that follow from its value are skipped, so that one mistake is said once.
    func hasProblem(_ dotted: String, in section: Section) -> Bool {
        let variable = Configuration.environmentName(
            section: section.name, key: String(dotted.split(separator: ".").last ?? ""))
        return problems.contains { $0.key == dotted || $0.key == section.name || $0.key == variable }
    }

    func read() -> Configuration {
        let known = Self.sectionKeys.map(\.section)
        var sections: [String: Section] = [:]
        for name in known {
            let table = attempt { () throws(TOMLConfigError) in try root.section(name) }
            sections[name] = Section(
                name: name, table: table, file: root.file, environment: environment, origins: origins)
        }
        problems += root.unknownKeys(known: known)
        checkEnvironment()

        let gateway = sections["gateway"]!
        let regionName = attempt { () throws(TOMLConfigError) in try gateway.string("region") } ?? "EU868"
        var region = Region.eu868
        // With a region that is not known, what depends on it (frequency, power) is not checked.
        var regionKnown = !hasProblem("gateway.region", in: gateway)
        if let named = Region.named(regionName) {
            region = named
        } else {
            regionKnown = false
            problem(
                gateway.error(
                    "region",
                    """
                    unknown region '\(regionName)' (one of: \
                    \(Region.names))
                    """
                ))
        }
        var id = attempt { () throws(TOMLConfigError) in try gateway.string("id") }
        if let given = id {
            if given.count == 16, given.allSatisfy(\.isHexDigit) {
                id = given.lowercased()
            } else {
                problem(gateway.error("id", "'\(given)' is not an EUI-64 (16 hex digits)"))
                id = nil
            }
        }
        var keySetting = "gateway.key"
        var key = attempt { () throws(TOMLConfigError) in try gateway.string("key") }
        if let legacy = attempt({ () throws(TOMLConfigError) in try gateway.string("key_file") }) {
            if key != nil {
                problem(gateway.error("key_file", "is the older name of gateway.key: give one of them, not both"))
            } else {
                key = legacy
                keySetting = "gateway.key_file"
            }
        }
        if let given = key {
            let name = String(keySetting.dropFirst("gateway.".count))
            if given.isEmpty {
                problem(gateway.error(name, "is empty: a key file's path or an ecc:// URI (ecc://i2c-1:96?slot=0)"))
                key = nil
            } else if ECCKeyURI.isURI(given) {
                do {
                    _ = try ECCKeyURI(parsing: given)
                } catch {
                    problem(gateway.error(name, error.message))
                    key = nil
                }
            }
        }
        var gatewaySettings = Configuration.Gateway(
            region: region,
            board: attempt { () throws(TOMLConfigError) in try gateway.string("board") } ?? "mock",
            key: key,
            dataDirectory: attempt { () throws(TOMLConfigError) in try gateway.string("data_dir") }
                ?? "/var/lib/hotspotd",
            id: id,
            shutdownTimeout: attempt { () throws(TOMLConfigError) in
                try gateway.duration("shutdown_timeout", minimum: .zero)
            } ?? .seconds(5)
        )
        gatewaySettings.keySetting = keySetting
        problems += gateway.unknownKeys()

        let radio = sections["radio"]!
        var frequency =
            attempt { () throws(TOMLConfigError) in try radio.integer("frequency") } ?? Int64(region.uplinkChannels[0])
        if !(frequency > 0 && frequency <= Int64(UInt32.max) && region.band.contains(UInt32(frequency))) {
            if regionKnown && !hasProblem("radio.frequency", in: radio) {
                problem(
                    radio.error(
                        "frequency",
                        """
                        \(frequency) Hz is outside \(region.name.displayName)'s band \
                        (\(region.band.lowerBound)–\(region.band.upperBound) Hz)
                        """
                    ))
            }
            frequency = Int64(region.uplinkChannels[0])
        }
        let sf = attempt { () throws(TOMLConfigError) in try radio.integer("spreading_factor") } ?? 7
        var spreadingFactor = SpreadingFactor.sf7
        if let given = SpreadingFactor(rawValue: Int(clamping: sf)), given >= .sf7 {
            spreadingFactor = given
        } else {
            problem(radio.error("spreading_factor", "\(sf) is not a LoRaWAN spreading factor (7 to 12)"))
        }
        let bw = attempt { () throws(TOMLConfigError) in try radio.integer("bandwidth") } ?? 125_000
        var bandwidth = LoRaBandwidth.khz125
        if [125_000, 250_000, 500_000].contains(bw), let given = LoRaBandwidth(hz: Int(bw)) {
            bandwidth = given
        } else {
            problem(radio.error("bandwidth", "\(bw) Hz is not a LoRaWAN bandwidth (125000, 250000 or 500000)"))
        }
        var antennaGain = attempt { () throws(TOMLConfigError) in try radio.float("antenna_gain") } ?? 0
        if !(0...20).contains(antennaGain) {
            problem(radio.error("antenna_gain", "\(antennaGain) dBi is not an antenna's gain (0 to 20 dBi)"))
            antennaGain = 0
        }
        let dwellTime = attempt { () throws(TOMLConfigError) in try radio.boolean("dwell_time") } ?? true
        let listenBeforeTalk =
            attempt { () throws(TOMLConfigError) in try radio.boolean("listen_before_talk") } ?? false
        if regionKnown, listenBeforeTalk, !region.name.isAS923, region.name != .kr920 {
            problem(
                radio.error(
                    "listen_before_talk",
                    """
                    listen-before-talk is for AS923 in Japan (KR920 always senses); \(region.name.displayName) has no \
                    such rule
                    """
                ))
        }
        if regionKnown, radio.has("dwell_time"), !region.name.isAS923 {
            problem(
                radio.error(
                    "dwell_time",
                    "only AS923 lets a country choose its dwell time; \(region.name.displayName)'s rules are fixed"))
        }
        problems += radio.unknownKeys()

        let udp = sections["semtech_udp"]!
        var bind = attempt { () throws(TOMLConfigError) in try udp.string("bind") } ?? "127.0.0.1:1700"
        if !(bind.lastIndex(of: ":").flatMap { Int(bind[bind.index(after: $0)...]) }.map { (0...65_535).contains($0) }
            ?? false)
        {
            problem(udp.error("bind", "'\(bind)' is not an address and port (such as 127.0.0.1:1700)"))
            bind = "127.0.0.1:1700"
        }
        let udpLBT = attempt { () throws(TOMLConfigError) in try udp.boolean("listen_before_talk") } ?? false
        var forwarders: [SemtechUDPBackend.TrustedForwarder] = []
        for entry in attempt({ () throws(TOMLConfigError) in try udp.strings("forwarders") }) ?? [] {
            if let forwarder = SemtechUDPBackend.TrustedForwarder(entry) {
                forwarders.append(forwarder)
            } else {
                problem(
                    udp.error(
                        "forwarders",
                        """
                        '\(entry)' is not a gateway EUI (16 hex digits), optionally followed by @ and the IP \
                        address its datagrams come from
                        """
                    ))
            }
        }
        let forwarderConfiguration = attempt { () throws(TOMLConfigError) in try udp.string("forwarder_config") }
        var forwarderUnit = attempt { () throws(TOMLConfigError) in try udp.string("forwarder_unit") }
        if let unit = forwarderUnit,
            unit.isEmpty || unit.hasPrefix("-") || unit.contains(where: { $0 == "/" || $0.isWhitespace })
        {
            problem(
                udp.error("forwarder_unit", "'\(unit)' is not a systemd unit's name (such as lora-pkt-fwd.service)"))
            forwarderUnit = nil
        }
        if (forwarderConfiguration == nil) != (forwarderUnit == nil),
            !hasProblem("semtech_udp.forwarder_unit", in: udp),
            !hasProblem("semtech_udp.forwarder_config", in: udp)
        {
            problem(
                udp.error(
                    forwarderConfiguration == nil ? "forwarder_config" : "forwarder_unit",
                    """
                    forwarder_config and forwarder_unit go together: the file a channel plan is written to, and \
                    the unit restarted to read it
                    """))
        }
        if let path = forwarderConfiguration, !path.hasPrefix("/") {
            problem(udp.error("forwarder_config", "'\(path)' must be an absolute path"))
        }
        problems += udp.unknownKeys()

        let mqtt = readMQTT(sections["mqtt"]!, region: region)

        let credits = sections["credits"]!
        // Without an authority nothing can be paired: a key that stands for "none" keeps the
        // reading going, and the problem is what the caller sees.
        var authority = try! Ed25519PublicKey(bytes: [UInt8](repeating: 0, count: 32))
        let address = attempt { () throws(TOMLConfigError) in try credits.string("authority") } ?? ""
        if hasProblem("credits.authority", in: credits) {
            // Said already (not a string, or the section is not a table).
        } else if address.isEmpty {
            if !credits.has("authority") {
                problem(
                    TOMLConfigError(
                        file: root.file, line: 0, key: "credits.authority",
                        message:
                            """
                            is required: the network authority's Helium address, whose signed commands pair \
                            sensors and add credits
                            """
                    ))
            } else {
                problem(credits.error("authority", "is empty: the network authority's Helium address is required"))
            }
        } else if let key = Helium.publicKey(fromAddress: address) {
            authority = key
        } else {
            problem(credits.error("authority", "'\(address)' is not the Helium address of an Ed25519 key"))
        }
        let creditsSettings = Configuration.Credits(
            authority: authority, authorityAddress: address,
            forwardUnpaired: attempt { () throws(TOMLConfigError) in try credits.boolean("forward_unpaired") } ?? false,
            chargeJoins: attempt { () throws(TOMLConfigError) in try credits.boolean("charge_joins") } ?? true,
            receiptInterval: attempt { () throws(TOMLConfigError) in
                try credits.duration("receipt_interval", minimum: .seconds(10))
            } ?? .seconds(600)
        )
        problems += credits.unknownKeys()

        let coverage = sections["coverage"]!
        // Beacons go on any channel of the region's Helium plan: the power must suit them all.
        // By default 14 dBm, or the region's limit where it is lower (EU433: 12 dBm).
        // The limit is EIRP: the conducted power plus the antenna's gain.
        let beaconLimit =
            (region.helium.channels.map { region.maximumEIRP(at: $0) }.min() ?? region.maximumEIRP) - antennaGain
        let defaultPower = max(0, min(14, Int(beaconLimit.rounded(.down))))
        var coverageSettings = Configuration.Coverage(
            enabled: attempt { () throws(TOMLConfigError) in try coverage.boolean("enabled") } ?? true,
            interval: attempt { () throws(TOMLConfigError) in try coverage.duration("interval", minimum: .seconds(60)) }
                ?? .seconds(6 * 3600),
            powerDBm: Int(
                clamping: attempt { () throws(TOMLConfigError) in try coverage.integer("power") } ?? Int64(defaultPower)
            )
        )
        if !(Double(coverageSettings.powerDBm) <= beaconLimit && coverageSettings.powerDBm >= 0) {
            // Only beacons use it: with coverage off, a power out of range is no problem.
            if regionKnown && coverageSettings.enabled && !hasProblem("coverage.power", in: coverage) {
                problem(
                    coverage.error(
                        "power",
                        """
                        \(coverageSettings.powerDBm) dBm is outside 0 to \(region.name.displayName)'s limit of \
                        \(beaconLimit) dBm on its beacon channels (EIRP, with radio.antenna_gain taken off)
                        """
                    ))
            }
            coverageSettings.powerDBm = defaultPower
        }
        problems += coverage.unknownKeys()

        let stats = sections["stats"]!
        let statsInterval =
            attempt { () throws(TOMLConfigError) in try stats.duration("interval", minimum: .seconds(1)) }
            ?? .seconds(30)
        problems += stats.unknownKeys()

        let filtersSection = sections["filters"]!
        var filters = UplinkFilters()
        for (key, width) in [
            ("dev_addr_prefixes", 32), ("join_eui_prefixes", 64), ("deny_dev_addr_prefixes", 32),
            ("deny_join_eui_prefixes", 64),
        ] {
            guard let texts = attempt({ () throws(TOMLConfigError) in try filtersSection.strings(key) }) else {
                continue
            }
            var prefixes: [BitPrefix] = []
            for text in texts {
                do throws(FilterError) {
                    prefixes.append(try BitPrefix(parsing: text, width: width))
                } catch {
                    problem(filtersSection.error(key, error.message))
                }
            }
            switch key {
            case "dev_addr_prefixes": filters.devAddrPrefixes = prefixes
            case "join_eui_prefixes": filters.joinEUIPrefixes = prefixes
            case "deny_dev_addr_prefixes": filters.denyDevAddrPrefixes = prefixes
            default: filters.denyJoinEUIPrefixes = prefixes
            }
        }
        problems += filtersSection.unknownKeys()

        let metrics = sections["metrics"]!
        var metricsBind: SocketAddress?
        if let text = attempt({ () throws(TOMLConfigError) in try metrics.string("bind") }), !text.isEmpty {
            metricsBind = SocketAddress(text).flatMap { $0.port == 0 ? nil : $0 }
            if metricsBind == nil {
                problem(
                    metrics.error(
                        "bind", "'\(text)' is not an IP address and port (such as 127.0.0.1:9100 or [::1]:9100)"))
            }
        }
        problems += metrics.unknownKeys()

        let log = sections["log"]!
        var level = attempt { () throws(TOMLConfigError) in try log.string("level") } ?? "info"
        if !["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level) {
            problem(
                log.error(
                    "level", "'\(level)' is not a log level (trace, debug, info, notice, warning, error, critical)"))
            level = "info"
        }
        problems += log.unknownKeys()

        var configuration = Configuration(
            gateway: gatewaySettings,
            radio: Configuration.RadioSettings(
                frequencyHz: UInt32(frequency),
                dataRate: LoRaDataRate(spreadingFactor: spreadingFactor, bandwidth: bandwidth),
                antennaGainDBi: antennaGain, dwellTime: dwellTime, listenBeforeTalk: listenBeforeTalk),
            semtechUDP: Configuration.SemtechUDP(
                bind: bind, forwarders: forwarders, listenBeforeTalk: udpLBT,
                forwarderConfiguration: forwarderConfiguration, forwarderUnit: forwarderUnit),
            mqtt: mqtt, credits: creditsSettings, coverage: coverageSettings,
            statsInterval: statsInterval, logLevel: level, file: root.file,
            origins: origins.all
        )
        configuration.filters = filters
        configuration.metricsBind = metricsBind
        return configuration
    }

    /// A `HOTSPOTD_…` variable that overrides no key is a mistake the owner would not notice:
    /// the key they meant keeps its value from the file.
    func checkEnvironment() {
        let overrides = Self.sectionKeys.flatMap { section, keys in
            keys.map { Configuration.environmentName(section: section, key: $0) }
        }
        let allowed = Set(overrides + Configuration.otherEnvironmentVariables)
        for variable in environment.keys.sorted() where variable.hasPrefix("HOTSPOTD_") && !allowed.contains(variable) {
            var message = "unknown variable: it overrides no configuration key"
            if let nearest = NearestName.find(variable, among: overrides + Configuration.otherEnvironmentVariables) {
                message += "; did you mean \(nearest)?"
            }
            problem(TOMLConfigError(file: "environment", line: 0, key: variable, message: message))
        }
    }

    func readMQTT(_ mqtt: Section, region: Region) -> Configuration.MQTT {
        // `server` names one broker, `servers` several in the order they are tried.
        var names = attempt { () throws(TOMLConfigError) in try mqtt.strings("servers") }
        if let list = names, mqtt.has("server") {
            problem(mqtt.error("servers", "server and servers both name brokers: keep one"))
            names = Array(list.prefix(1))
        }
        let key = names == nil ? "server" : "servers"
        let given =
            names ?? [attempt { () throws(TOMLConfigError) in try mqtt.string("server") } ?? "mqtt://127.0.0.1:1883"]
        var servers: [Configuration.MQTT.Server] = []
        for name in given {
            switch Configuration.MQTT.Server.parse(name) {
            case .success(let server):
                if servers.contains(server) {
                    problem(mqtt.error(key, "'\(name)' is named twice"))
                } else {
                    servers.append(server)
                }
            case .failure(let message):
                problem(mqtt.error(key, message.description))
            }
        }
        if given.isEmpty { problem(mqtt.error(key, "names no broker")) }
        if servers.isEmpty { servers = [Configuration.MQTT.Server(host: "127.0.0.1", port: 1883, tls: false)] }
        if servers.count > 16 {
            problem(mqtt.error(key, "at most 16 brokers, not \(servers.count)"))
            servers = Array(servers.prefix(16))
        }
        let failoverAfter =
            attempt { () throws(TOMLConfigError) in
                try mqtt.duration("failover_after", minimum: .seconds(1), maximum: .seconds(3600))
            } ?? .seconds(30)
        let failbackInterval =
            attempt { () throws(TOMLConfigError) in
                try mqtt.duration("failback_interval", minimum: .seconds(1), maximum: .seconds(86_400))
            } ?? .seconds(600)
        var qos = attempt { () throws(TOMLConfigError) in try mqtt.integer("qos") } ?? 1
        if qos != 0 && qos != 1 {
            problem(mqtt.error("qos", "QoS must be 0 or 1, not \(qos)"))
            qos = 1
        }
        var version = attempt { () throws(TOMLConfigError) in try mqtt.integer("protocol_version") } ?? 4
        if version != 4 && version != 5 {
            problem(mqtt.error("protocol_version", "must be 4 (MQTT 3.1.1) or 5, not \(version)"))
            version = 4
        }
        var outboxMaximum = attempt { () throws(TOMLConfigError) in try mqtt.integer("outbox_max") } ?? 1_000_000
        if outboxMaximum < 100 {
            problem(mqtt.error("outbox_max", "must be at least 100, not \(outboxMaximum)"))
            outboxMaximum = 1_000_000
        }
        var inFlight = attempt { () throws(TOMLConfigError) in try mqtt.integer("max_inflight") } ?? 100
        if !(1...65_535).contains(inFlight) {
            problem(mqtt.error("max_inflight", "must be 1 to 65535, not \(inFlight)"))
            inFlight = 100
        }
        // Over TLS, without ca_cert: the system's CA bundle (Debian, Raspberry Pi OS).
        let caCertificate =
            attempt { () throws(TOMLConfigError) in try mqtt.string("ca_cert") }
            ?? (servers.contains(where: \.tls) ? Configuration.systemCABundle : nil)
        var topicPrefix =
            attempt { () throws(TOMLConfigError) in try mqtt.string("topic_prefix") }
            ?? region.name.rawValue.lowercased()
        // A wildcard or an empty level would make every publish fail: refuse it here.
        if topicPrefix.isEmpty || topicPrefix.contains(where: { "+#\u{0}".contains($0) }) || topicPrefix.hasPrefix("/")
            || topicPrefix.hasSuffix("/")
        {
            problem(
                mqtt.error(
                    "topic_prefix",
                    "'\(topicPrefix)' is not a topic prefix: no + or #, not empty, no leading or trailing /"))
            topicPrefix = region.name.rawValue.lowercased()
        }
        let settings = Configuration.MQTT(
            servers: servers, failoverAfter: failoverAfter, failbackInterval: failbackInterval,
            topicPrefix: topicPrefix,
            json: attempt { () throws(TOMLConfigError) in try mqtt.boolean("json") } ?? false, qos: Int(qos),
            username: attempt { () throws(TOMLConfigError) in try mqtt.string("username") },
            password: attempt { () throws(TOMLConfigError) in try mqtt.string("password") },
            caCertificate: caCertificate,
            tlsCertificate: attempt { () throws(TOMLConfigError) in try mqtt.string("tls_cert") },
            tlsKey: attempt { () throws(TOMLConfigError) in try mqtt.string("tls_key") },
            keepalive: attempt { () throws(TOMLConfigError) in
                try mqtt.duration("keepalive", minimum: .seconds(5), maximum: .seconds(65_535))
            } ?? .seconds(30),
            protocolVersion: Int(version), outboxMaximum: Int(outboxMaximum), maximumInFlight: Int(inFlight)
        )
        if (settings.tlsCertificate == nil) != (settings.tlsKey == nil), !hasProblem("mqtt.tls_cert", in: mqtt),
            !hasProblem("mqtt.tls_key", in: mqtt)
        {
            problem(
                mqtt.error(settings.tlsCertificate == nil ? "tls_cert" : "tls_key", "tls_cert and tls_key go together"))
        }
        problems += mqtt.unknownKeys()
        return settings
    }
}

/// Where each key read came from, filled in as the reader goes.
private final class Origins {
    var all: [String: ConfigurationOrigin] = [:]
}

/// One section: typed reads where an environment variable overrides the file.
private struct Section {
    let name: String
    let table: TOMLSection?
    let file: String
    let environment: [String: String]
    let origins: Origins

    func override(_ key: String) -> (variable: String, value: String)? {
        let variable = Configuration.environmentName(section: name, key: key)
        return environment[variable].map { (variable, $0) }
    }

    func has(_ key: String) -> Bool {
        override(key) != nil || table?.contains(key) == true
    }

    /// Notes where `key`'s value comes from.
    func note(_ key: String) {
        let dotted = "\(name).\(key)"
        if let (variable, _) = override(key) {
            origins.all[dotted] = ConfigurationOrigin(file: "environment", line: 0, key: variable)
        } else if let table, table.contains(key) {
            origins.all[dotted] = ConfigurationOrigin(file: file, line: table.line(of: key), key: dotted)
        }
    }

    func error(_ key: String, _ message: String) -> TOMLConfigError {
        if let (variable, _) = override(key) {
            return TOMLConfigError(file: "environment", line: 0, key: variable, message: message)
        }
        return table?.error(key, message)
            ?? TOMLConfigError(file: file, line: 0, key: "\(name).\(key)", message: message)
    }

    func string(_ key: String) throws(TOMLConfigError) -> String? {
        note(key)
        if let (_, value) = override(key) {
            _ = try? table?.string(key)
            return value
        }
        return try table?.string(key)
    }

    func integer(_ key: String) throws(TOMLConfigError) -> Int64? {
        try number(key, "an integer", Int64.init) { (table, key) throws(TOMLConfigError) in try table.integer(key) }
    }

    func float(_ key: String) throws(TOMLConfigError) -> Double? {
        try number(key, "a number", Double.init) { (table, key) throws(TOMLConfigError) in try table.float(key) }
    }

    /// A number from the environment (parsed by `parse`) or from the file (read by `read`).
    private func number<T>(
        _ key: String, _ expected: String, _ parse: (String) -> T?,
        _ read: (TOMLSection, String) throws(TOMLConfigError) -> T?
    ) throws(TOMLConfigError) -> T? {
        note(key)
        if let (variable, value) = override(key) {
            if let table { _ = try? read(table, key) }
            guard let number = parse(value) else {
                throw TOMLConfigError(
                    file: "environment", line: 0, key: variable, message: "expected \(expected), found '\(value)'")
            }
            return number
        }
        guard let table else { return nil }
        return try read(table, key)
    }

    func boolean(_ key: String) throws(TOMLConfigError) -> Bool? {
        note(key)
        if let (variable, value) = override(key) {
            _ = try? table?.boolean(key)
            switch value.lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no": return false
            default:
                throw TOMLConfigError(
                    file: "environment", line: 0, key: variable, message: "expected true or false, found '\(value)'")
            }
        }
        return try table?.boolean(key)
    }

    /// A list of strings; in the environment, separated by commas or spaces.
    func strings(_ key: String) throws(TOMLConfigError) -> [String]? {
        note(key)
        if let (_, value) = override(key) {
            _ = try? table?.strings(key)
            return value.split { $0 == "," || $0 == " " }.map(String.init)
        }
        return try table?.strings(key)
    }

    /// A duration is a string with units; a bare number says which.
    func duration(_ key: String, minimum: Duration, maximum: Duration? = nil) throws(TOMLConfigError) -> Duration? {
        if override(key) == nil, let table, table.contains(key), let number = try? table.integer(key) {
            note(key)
            throw error(
                key,
                """
                expected a duration as a string with its unit, such as \"\(number)s\" (units: ms, s, m, h, d), \
                found an integer
                """
            )
        }
        guard let text = try string(key) else { return nil }
        guard let duration = DurationText.parse(text) ?? (text == "0s" || text == "0" ? Duration.zero : nil) else {
            throw error(key, "'\(text)' is not a duration (such as 30s, 10m, 6h, 1h30m; units: ms, s, m, h, d)")
        }
        guard duration >= minimum else {
            throw error(key, "\(text) is shorter than the \(DurationText.describe(minimum)) minimum")
        }
        if let maximum, duration > maximum {
            throw error(key, "\(text) is longer than the \(DurationText.describe(maximum)) maximum")
        }
        return duration
    }

    func unknownKeys() -> [TOMLConfigError] {
        let known = Reader.sectionKeys.first { $0.section == name }?.keys ?? []
        return table?.unknownKeys(known: known) ?? []
    }
}
