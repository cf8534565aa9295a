import Cryptography
import LoRaPHY
import Radio
import TOML

/// hotspotd's configuration (`/etc/hotspotd/hotspotd.toml`, DESIGN §8). Every key has a default
/// except `credits.authority`. An unknown key, a wrong type or an impossible value is an error
/// naming the file, the line and the key; `HOTSPOTD_SECTION_KEY` environment variables
/// override the file (`HOTSPOTD_MQTT_SERVER=mqtts://broker:8883`).
public struct Configuration: Sendable {
    public struct Gateway: Sendable {
        public var region: Region
        public var board: String
        public var keyFile: String
        public var dataDirectory: String
        /// 16 hex digits; nil to derive it from the key.
        public var id: String?
        public var shutdownTimeout: Duration
    }

    public struct RadioSettings: Sendable {
        public var frequencyHz: UInt32
        public var dataRate: LoRaDataRate
    }

    public struct SemtechUDP: Sendable {
        public var bind: String
    }

    public struct MQTT: Sendable {
        public var host: String
        public var port: Int
        public var tls: Bool
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
    public var statsInterval: Duration
    public var logLevel: String
    public var file: String

    public static let defaultPath = "/etc/hotspotd/hotspotd.toml"
    /// The CA bundle an mqtts:// connection trusts when `mqtt.ca_cert` is not set.
    public static let systemCABundle = "/etc/ssl/certs/ca-certificates.crt"

    /// Parses `text` (read from `file`), then applies `environment` overrides.
    public static func parse(_ text: String, file: String, environment: [String: String] = [:]) throws(TOMLConfigError) -> Configuration {
        let root = try TOMLSection.parse(text, file: file)
        let reader = Reader(root: root, environment: environment)
        let configuration = try reader.read()
        return configuration
    }

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
            case "ms": scale = 1_000_000
            case "s": scale = 1_000_000_000
            case "m": scale = 60_000_000_000
            case "h": scale = 3_600_000_000_000
            case "d": scale = 86_400_000_000_000
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

/// Reads each section with its defaults; an environment variable wins over the file.
private struct Reader {
    let root: TOMLSection
    let environment: [String: String]

    func read() throws(TOMLConfigError) -> Configuration {
        let known = ["gateway", "radio", "semtech_udp", "mqtt", "credits", "coverage", "stats", "log"]
        let sections = try Dictionary(uniqueKeysWithValues: known.map { (name: String) throws(TOMLConfigError) -> (String, Section) in
            (name, Section(name: name, table: try root.section(name), file: root.file, environment: environment))
        })
        try root.rejectUnknownKeys(known: known)

        let gateway = sections["gateway"]!
        let regionName = try gateway.string("region") ?? "EU868"
        guard let region = Region.named(regionName) else {
            throw gateway.error("region", "unknown region '\(regionName)' (one of: \(Region.Name.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var id = try gateway.string("id")
        if let given = id {
            guard given.count == 16, given.allSatisfy(\.isHexDigit) else { throw gateway.error("id", "'\(given)' is not an EUI-64 (16 hex digits)") }
            id = given.lowercased()
        }
        let gatewaySettings = Configuration.Gateway(
            region: region,
            board: try gateway.string("board") ?? "mock",
            keyFile: try gateway.string("key_file") ?? "/var/lib/hotspotd/gateway.key",
            dataDirectory: try gateway.string("data_dir") ?? "/var/lib/hotspotd",
            id: id,
            shutdownTimeout: try gateway.duration("shutdown_timeout", minimum: .zero) ?? .seconds(5)
        )
        try gateway.finish(["region", "board", "key_file", "data_dir", "id", "shutdown_timeout"])

        let radio = sections["radio"]!
        let frequency = try radio.integer("frequency") ?? Int64(region.uplinkChannels[0])
        guard frequency > 0, frequency <= Int64(UInt32.max), region.band.contains(UInt32(frequency)) else {
            throw radio.error("frequency", "\(frequency) Hz is outside \(region.name.rawValue)'s band (\(region.band.lowerBound)–\(region.band.upperBound) Hz)")
        }
        let sf = try radio.integer("spreading_factor") ?? 7
        guard let spreadingFactor = SpreadingFactor(rawValue: Int(clamping: sf)), spreadingFactor >= .sf7 else {
            throw radio.error("spreading_factor", "\(sf) is not a LoRaWAN spreading factor (7 to 12)")
        }
        let bw = try radio.integer("bandwidth") ?? 125_000
        guard [125_000, 250_000, 500_000].contains(bw), let bandwidth = LoRaBandwidth(hz: Int(bw)) else {
            throw radio.error("bandwidth", "\(bw) Hz is not a LoRaWAN bandwidth (125000, 250000 or 500000)")
        }
        try radio.finish(["frequency", "spreading_factor", "bandwidth"])

        let udp = sections["semtech_udp"]!
        let bind = try udp.string("bind") ?? "127.0.0.1:1700"
        guard let colon = bind.lastIndex(of: ":"), let port = Int(bind[bind.index(after: colon)...]), (0...65_535).contains(port) else {
            throw udp.error("bind", "'\(bind)' is not an address and port (such as 127.0.0.1:1700)")
        }
        try udp.finish(["bind"])

        let mqtt = try readMQTT(sections["mqtt"]!, region: region)

        let credits = sections["credits"]!
        guard let address = try credits.string("authority") else {
            throw TOMLConfigError(file: root.file, line: 0, key: "credits.authority", message: "is required: the network authority's Helium address, whose signed commands pair sensors and add credits")
        }
        guard let authority = Helium.publicKey(fromAddress: address) else {
            throw credits.error("authority", "'\(address)' is not the Helium address of an Ed25519 key")
        }
        let creditsSettings = Configuration.Credits(
            authority: authority, authorityAddress: address,
            forwardUnpaired: try credits.boolean("forward_unpaired") ?? false,
            chargeJoins: try credits.boolean("charge_joins") ?? true,
            receiptInterval: try credits.duration("receipt_interval", minimum: .seconds(10)) ?? .seconds(600)
        )
        try credits.finish(["authority", "forward_unpaired", "charge_joins", "receipt_interval"])

        let coverage = sections["coverage"]!
        let coverageSettings = Configuration.Coverage(
            enabled: try coverage.boolean("enabled") ?? true,
            interval: try coverage.duration("interval", minimum: .seconds(60)) ?? .seconds(6 * 3600),
            powerDBm: Int(try coverage.integer("power") ?? 14)
        )
        guard Double(coverageSettings.powerDBm) <= region.maximumEIRP(at: region.uplinkChannels[0]), coverageSettings.powerDBm >= 0 else {
            throw coverage.error("power", "\(coverageSettings.powerDBm) dBm is above \(region.name.rawValue)'s limit of \(region.maximumEIRP) dBm")
        }
        try coverage.finish(["enabled", "interval", "power"])

        let stats = sections["stats"]!
        let statsInterval = try stats.duration("interval", minimum: .seconds(1)) ?? .seconds(30)
        try stats.finish(["interval"])

        let log = sections["log"]!
        let level = try log.string("level") ?? "info"
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level) else {
            throw log.error("level", "'\(level)' is not a log level (trace, debug, info, notice, warning, error, critical)")
        }
        try log.finish(["level"])

        return Configuration(
            gateway: gatewaySettings,
            radio: Configuration.RadioSettings(frequencyHz: UInt32(frequency), dataRate: LoRaDataRate(spreadingFactor: spreadingFactor, bandwidth: bandwidth)),
            semtechUDP: Configuration.SemtechUDP(bind: bind),
            mqtt: mqtt, credits: creditsSettings, coverage: coverageSettings,
            statsInterval: statsInterval, logLevel: level, file: root.file
        )
    }

    func readMQTT(_ mqtt: Section, region: Region) throws(TOMLConfigError) -> Configuration.MQTT {
        let server = try mqtt.string("server") ?? "mqtt://127.0.0.1:1883"
        let tls: Bool
        let rest: Substring
        if server.hasPrefix("mqtts://") {
            tls = true
            rest = server.dropFirst(8)
        } else if server.hasPrefix("mqtt://") {
            tls = false
            rest = server.dropFirst(7)
        } else {
            throw mqtt.error("server", "'\(server)' must start with mqtt:// or mqtts://")
        }
        var host = String(rest)
        var port = tls ? 8883 : 1883
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            host = String(rest[..<colon])
            guard let number = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(number) else {
                throw mqtt.error("server", "'\(server)' has no valid port")
            }
            port = number
        }
        guard !host.isEmpty else { throw mqtt.error("server", "'\(server)' names no host") }
        let qos = try mqtt.integer("qos") ?? 1
        guard qos == 0 || qos == 1 else { throw mqtt.error("qos", "QoS must be 0 or 1, not \(qos)") }
        let version = try mqtt.integer("protocol_version") ?? 4
        guard version == 4 || version == 5 else { throw mqtt.error("protocol_version", "must be 4 (MQTT 3.1.1) or 5, not \(version)") }
        let outboxMaximum = try mqtt.integer("outbox_max") ?? 1_000_000
        guard outboxMaximum >= 100 else { throw mqtt.error("outbox_max", "must be at least 100, not \(outboxMaximum)") }
        let inFlight = try mqtt.integer("max_inflight") ?? 100
        guard (1...65_535).contains(inFlight) else { throw mqtt.error("max_inflight", "must be 1 to 65535, not \(inFlight)") }
        // Over TLS, without ca_cert: the system's CA bundle (Debian, Raspberry Pi OS).
        let caCertificate = try mqtt.string("ca_cert") ?? (tls ? Configuration.systemCABundle : nil)
        let topicPrefix = try mqtt.string("topic_prefix") ?? region.name.rawValue.lowercased()
        // A wildcard or an empty level would make every publish fail: refuse it here.
        if topicPrefix.isEmpty || topicPrefix.contains(where: { "+#\u{0}".contains($0) }) || topicPrefix.hasPrefix("/") || topicPrefix.hasSuffix("/") {
            throw mqtt.error("topic_prefix", "'\(topicPrefix)' is not a topic prefix: no + or #, not empty, no leading or trailing /")
        }
        let settings = Configuration.MQTT(
            host: host, port: port, tls: tls,
            topicPrefix: topicPrefix,
            json: try mqtt.boolean("json") ?? false, qos: Int(qos),
            username: try mqtt.string("username"), password: try mqtt.string("password"),
            caCertificate: caCertificate, tlsCertificate: try mqtt.string("tls_cert"), tlsKey: try mqtt.string("tls_key"),
            keepalive: try mqtt.duration("keepalive", minimum: .seconds(5), maximum: .seconds(65_535)) ?? .seconds(30),
            protocolVersion: Int(version), outboxMaximum: Int(outboxMaximum), maximumInFlight: Int(inFlight)
        )
        if (settings.tlsCertificate == nil) != (settings.tlsKey == nil) {
            throw mqtt.error(settings.tlsCertificate == nil ? "tls_cert" : "tls_key", "tls_cert and tls_key go together")
        }
        try mqtt.finish(["server", "topic_prefix", "json", "qos", "username", "password", "ca_cert", "tls_cert", "tls_key", "keepalive", "protocol_version", "outbox_max", "max_inflight"])
        return settings
    }
}

/// One section: typed reads where an environment variable overrides the file.
private struct Section {
    let name: String
    let table: TOMLSection?
    let file: String
    let environment: [String: String]

    func override(_ key: String) -> (variable: String, value: String)? {
        let variable = Configuration.environmentName(section: name, key: key)
        return environment[variable].map { (variable, $0) }
    }

    func error(_ key: String, _ message: String) -> TOMLConfigError {
        if let (variable, _) = override(key) {
            return TOMLConfigError(file: "environment", line: 0, key: variable, message: message)
        }
        return table?.error(key, message) ?? TOMLConfigError(file: file, line: 0, key: "\(name).\(key)", message: message)
    }

    func string(_ key: String) throws(TOMLConfigError) -> String? {
        if let (_, value) = override(key) { _ = try table?.string(key); return value }
        return try table?.string(key)
    }

    func integer(_ key: String) throws(TOMLConfigError) -> Int64? {
        if let (variable, value) = override(key) {
            _ = try table?.integer(key)
            guard let number = Int64(value) else { throw TOMLConfigError(file: "environment", line: 0, key: variable, message: "expected an integer, found '\(value)'") }
            return number
        }
        return try table?.integer(key)
    }

    func boolean(_ key: String) throws(TOMLConfigError) -> Bool? {
        if let (variable, value) = override(key) {
            _ = try table?.boolean(key)
            switch value.lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no": return false
            default: throw TOMLConfigError(file: "environment", line: 0, key: variable, message: "expected true or false, found '\(value)'")
            }
        }
        return try table?.boolean(key)
    }

    func duration(_ key: String, minimum: Duration, maximum: Duration? = nil) throws(TOMLConfigError) -> Duration? {
        guard let text = try string(key) else { return nil }
        guard let duration = DurationText.parse(text) ?? (text == "0s" || text == "0" ? Duration.zero : nil) else {
            throw error(key, "'\(text)' is not a duration (such as 30s, 10m, 6h, 1h30m)")
        }
        guard duration >= minimum else {
            throw error(key, "\(text) is shorter than the \(DurationText.describe(minimum)) minimum")
        }
        if let maximum, duration > maximum {
            throw error(key, "\(text) is longer than the \(DurationText.describe(maximum)) maximum")
        }
        return duration
    }

    func finish(_ known: [String]) throws(TOMLConfigError) {
        try table?.rejectUnknownKeys(known: known)
    }
}
