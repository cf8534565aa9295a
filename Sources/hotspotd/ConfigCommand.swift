import Agent
import ArgumentParser
import Clocks
import Credits
import Cryptography
import HAL
import Radio
import SecureElement
import Synchronization
import TOML
import Transport
import Wire

#if canImport(Glibc)
    import Glibc
#endif

/// The configuration file's text; one that cannot be read is said, and the process exits with
/// `exitCode` (78, EX_CONFIG, where the configuration is what the command needs).
func readConfigurationText(_ path: String, exitCode: Int32 = 78) throws -> String {
    do {
        return try readTextFile(path)
    } catch {
        printError("the configuration \(error.message.replacing("cannot read: ", with: "cannot be read: ")) (\(path))")
        throw ExitCode(exitCode)
    }
}

/// Reads the configuration file with the environment's overrides; every problem is said, one a
/// line, and the process exits 78 (EX_CONFIG).
func loadConfiguration(_ path: String, environment: [String: String]) throws -> Configuration {
    let text = try readConfigurationText(path)
    let (configuration, problems) = Configuration.check(text, file: path, environment: environment)
    for problem in problems { printError(problem.description) }
    guard problems.isEmpty, let configuration else { throw ExitCode(78) }
    return configuration
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check the configuration, or print the one in effect.",
        subcommands: [Check.self, Show.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the configuration and everything it names, as `hotspotd run` would load them.",
            discussion: """
                Reads the file with the environment's HOTSPOTD_* overrides, the board profile, the gateway key \
                (creating nothing), the network authority, the data directory and the TLS files, and connects \
                to the broker once. Prints what it found and exits 0, or prints every problem it found, each as \
                `hotspotd: <what> (<where>)`, and exits 78.
                """
        )

        @Option(name: .long, help: "The configuration file.")
        var config: String = Configuration.defaultPath

        @Option(name: .long, help: ArgumentHelp("How long to wait for the broker.", valueName: "seconds"))
        var brokerTimeout: Double = 5

        @Flag(name: .long, help: "Do not connect to the broker.")
        var noBroker = false

        func run() throws {
            let environment = hotspotd.environment()
            var problems: [String] = []
            var found: [(String, String)] = []
            var loadedProfile: BoardProfile?
            let text = try readConfigurationText(config)
            let (loaded, configurationProblems) = Configuration.check(text, file: config, environment: environment)
            problems += configurationProblems.map(\.description)
            guard let configuration = loaded else {
                problems.forEach(printError)
                throw ExitCode(78)
            }
            found.append(
                (
                    "configuration",
                    config
                        + (configuration.origins.values.contains(where: \.fromEnvironment)
                            ? ", with overrides from the environment" : "")
                ))
            // A key whose value was refused stands at its default now: what it names is not
            // checked, so that one mistake is said once and nothing is blamed on a default.
            func refused(_ key: String) -> Bool {
                let section = String(key.split(separator: ".").first ?? "")
                return configurationProblems.contains {
                    $0.key == key || $0.key == section || $0.key == configuration.origins[key]?.key
                }
            }
            found.append(("region", configuration.gateway.region.name.displayName))

            // The board profile.
            if refused("gateway.board") {
                // said above
            } else {
                do {
                    let profile = try catalog(nil).load(configuration.gateway.board)
                    loadedProfile = profile
                    found.append(("board", "\(profile.name): \(profile.description)"))
                    if let reason = profile.unsupported {
                        problems.append(
                            configuration.error(
                                "gateway.board", "\(profile.description) cannot run hotspotd: \(reason)"
                            )
                            .description)
                    }
                } catch  where error.line == 0 && error.key.isEmpty && error.file == configuration.gateway.board {
                    problems.append(configuration.error("gateway.board", error.message).description)
                } catch {
                    problems.append(
                        "\(error.description), the profile \(configuration.error("gateway.board", "").place) names")
                }
            }

            // The gateway key: read if it is there; `run` creates it otherwise. A secure element
            // is read by `board probe`, which wakes the chip.
            let keySetting = configuration.gateway.keySetting
            let elementURI =
                configuration.gateway.key == nil ? loadedProfile?.secureElement?.uri : configuration.gateway.key
            if refused(keySetting) {
                // said above
            } else if let uri = elementURI, ECCKeyURI.isURI(uri) {
                found.append(("gateway key", "\(uri): the secure element's key (`hotspotd board probe` reads it)"))
            } else if let keyFile = configuration.gateway.keyFile {
                checkKeyFile(keyFile, setting: keySetting)
            }

            func checkKeyFile(_ keyFile: String, setting: String) {
                if access(keyFile, F_OK) == 0 && access(keyFile, R_OK) != 0 {
                    problems.append(
                        configuration.error(
                            setting,
                            "this user may not read the key file \(keyFile): run `sudo hotspotd config check`"
                        ).description)
                } else if access(keyFile, F_OK) == 0 {
                    do {
                        let identity = GatewayIdentity(
                            key: try KeyFile.read(keyFile), gatewayID: configuration.gateway.id)
                        found.append(
                            ("gateway key", "\(keyFile): \(identity.address), gateway id \(identity.gatewayID)"))
                    } catch {
                        problems.append(configuration.error(setting, error.message).description)
                    }
                } else {
                    let directory = Self.parent(of: keyFile)
                    if access(directory, F_OK) == 0 && access(directory, W_OK) != 0 {
                        problems.append(
                            configuration.error(
                                setting,
                                """
                                \(keyFile) does not exist and \(directory) is not writable, so the first start cannot \
                                create it
                                """
                            ).description)
                    } else {
                        found.append(("gateway key", "\(keyFile) does not exist yet: the first start creates it"))
                    }
                }
            }

            // The data directory, where the store lives.
            let dataDirectory = configuration.gateway.dataDirectory
            if refused("gateway.data_dir") {
                // said above
            } else if access(dataDirectory, F_OK) == 0 {
                if access(dataDirectory, W_OK) == 0 {
                    found.append(("data directory", dataDirectory))
                } else {
                    problems.append(
                        configuration.error(
                            "gateway.data_dir",
                            """
                            \(dataDirectory) is not writable by this user (\(String(cString: strerror(errno)))): \
                            run `sudo hotspotd config check`, or give it to the hotspotd user
                            """
                        ).description)
                }
            } else {
                found.append(("data directory", "\(dataDirectory) does not exist yet: the first start creates it"))
            }

            if !refused("credits.authority") { found.append(("authority", configuration.credits.authorityAddress)) }

            // TLS files.
            let mqtt = configuration.mqtt
            for (key, path) in [
                ("mqtt.ca_cert", mqtt.caCertificate), ("mqtt.tls_cert", mqtt.tlsCertificate),
                ("mqtt.tls_key", mqtt.tlsKey),
            ] {
                guard let path, !refused(key) else { continue }
                do {
                    let contents = try readTextFile(path)
                    if contents.firstRange(of: "-----BEGIN ") == nil {
                        problems.append(configuration.error(key, "\(path) is not a PEM file").description)
                    } else {
                        found.append((key, path))
                    }
                } catch {
                    problems.append(configuration.error(key, "\(path): \(error.message)").description)
                }
            }

            // Each broker, once.
            let key = mqtt.servers.count == 1 ? "mqtt.server" : "mqtt.servers"
            for index in mqtt.servers.indices {
                let settings = mqtt.settings(clientID: "hotspotd-config-check-\(getpid())", server: index)
                if refused(key) {
                    break  // said above
                } else if noBroker {
                    found.append(("broker", "\(settings.brokerAddress) (not tried)"))
                } else {
                    switch Self.tryBroker(settings, timeout: brokerTimeout) {
                    case nil: found.append(("broker", "\(settings.brokerAddress): connected"))
                    case let reason?:
                        problems.append(
                            configuration.error(
                                key, "cannot connect to the broker at \(settings.brokerAddress): \(reason)"
                            ).description)
                    }
                }
            }

            for (what, value) in found { print("\(what.padding(to: 15)) \(value)") }
            if problems.isEmpty {
                print("configuration OK")
            } else {
                problems.forEach(printError)
                throw ExitCode(78)
            }
        }

        static func parent(of path: String) -> String {
            guard let slash = path.lastIndex(of: "/") else { return "." }
            return slash == path.startIndex ? "/" : String(path[..<slash])
        }

        /// Connects once; nil when the broker accepted the connection, else why not.
        static func tryBroker(_ settings: MQTTSettings, timeout: Double) -> String? {
            let client: MQTTClient
            do {
                client = try MQTTClient(settings: settings, subscriptions: [])
                try client.start()
            } catch {
                return error.message
            }
            defer { client.stop() }
            let outcome = BrokerOutcome()
            let watcher = Task {
                for await event in client.events {
                    switch event {
                    case .connected: outcome.set(.success(()))
                    case .connectionFailed(let reason), .disconnected(let reason?):
                        outcome.set(.failure(MQTTError(reason)))
                    default: continue
                    }
                    return
                }
            }
            defer { watcher.cancel() }
            let deadline = monotonicNanoseconds() + UInt64(max(timeout, 0.1) * 1e9)
            while monotonicNanoseconds() < deadline {
                if let result = outcome.value {
                    if case .failure(let error) = result { return error.message }
                    return nil
                }
                usleep(20_000)
            }
            return "no answer within \(timeout) s"
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the configuration in effect: defaults, the file, and the environment's overrides.",
            discussion:
                """
                Each key is followed by where its value came from. Passwords are masked. Exits 78 when the \
                configuration has problems, after saying each.
                """
        )

        @Option(name: .long, help: "The configuration file.")
        var config: String = Configuration.defaultPath

        func run() throws {
            let text = try readConfigurationText(config)
            let (loaded, problems) = Configuration.check(text, file: config, environment: hotspotd.environment())
            if let configuration = loaded {
                print(Self.render(configuration))
            }
            for problem in problems { printError(problem.description) }
            if !problems.isEmpty { throw ExitCode(78) }
        }

        /// The configuration as TOML, each key with its origin as a comment.
        static func render(_ configuration: Configuration) -> String {
            // A JSON string is a TOML basic string: the same quotes, the same escapes.
            func quoted(_ text: String) -> String { JSON.serialize(.string(text)) }
            func duration(_ value: Duration) -> String { quoted(DurationText.describe(value)) }
            func list(_ prefixes: [BitPrefix]) -> String {
                "[" + prefixes.map { quoted("\($0)") }.joined(separator: ", ") + "]"
            }
            let c = configuration
            let sections: [(String, [(String, String?)])] = [
                (
                    "gateway",
                    [
                        ("region", quoted(c.gateway.region.name.displayName)), ("board", quoted(c.gateway.board)),
                        ("key", c.gateway.key.map(quoted)), ("data_dir", quoted(c.gateway.dataDirectory)),
                        ("id", c.gateway.id.map(quoted)), ("shutdown_timeout", duration(c.gateway.shutdownTimeout)),
                    ]
                ),
                (
                    "radio",
                    [
                        ("frequency", "\(c.radio.frequencyHz)"),
                        ("spreading_factor", "\(c.radio.dataRate.spreadingFactor.rawValue)"),
                        ("bandwidth", "\(c.radio.dataRate.bandwidth.rawValue)"),
                        ("antenna_gain", "\(c.radio.antennaGainDBi)"), ("dwell_time", "\(c.radio.dwellTime)"),
                        ("listen_before_talk", "\(c.radio.listenBeforeTalk)"),
                    ]
                ),
                (
                    "semtech_udp",
                    [
                        ("bind", quoted(c.semtechUDP.bind)),
                        (
                            "forwarders",
                            "[" + c.semtechUDP.forwarders.map { quoted($0.description) }.joined(separator: ", ") + "]"
                        ),
                        ("listen_before_talk", "\(c.semtechUDP.listenBeforeTalk)"),
                    ]
                ),
                (
                    "mqtt",
                    (c.mqtt.servers.count == 1
                        ? [("server", quoted(c.mqtt.brokerAddress))]
                        : [
                            (
                                "servers",
                                "[" + c.mqtt.servers.map { quoted($0.description) }.joined(separator: ", ") + "]"
                            ),
                            ("failover_after", duration(c.mqtt.failoverAfter)),
                            ("failback_interval", duration(c.mqtt.failbackInterval)),
                        ]) + [
                            ("topic_prefix", quoted(c.mqtt.topicPrefix)), ("json", "\(c.mqtt.json)"),
                            ("qos", "\(c.mqtt.qos)"),
                            ("username", c.mqtt.username.map(quoted)),
                            ("password", c.mqtt.password.map { _ in quoted("********") }),
                            ("ca_cert", c.mqtt.caCertificate.map(quoted)),
                            ("tls_cert", c.mqtt.tlsCertificate.map(quoted)),
                            ("tls_key", c.mqtt.tlsKey.map(quoted)), ("keepalive", duration(c.mqtt.keepalive)),
                            ("protocol_version", "\(c.mqtt.protocolVersion)"),
                            ("outbox_max", "\(c.mqtt.outboxMaximum)"),
                            ("max_inflight", "\(c.mqtt.maximumInFlight)"),
                        ]
                ),
                (
                    "credits",
                    [
                        ("authority", quoted(c.credits.authorityAddress)),
                        ("forward_unpaired", "\(c.credits.forwardUnpaired)"),
                        ("charge_joins", "\(c.credits.chargeJoins)"),
                        ("receipt_interval", duration(c.credits.receiptInterval)),
                    ]
                ),
                (
                    "coverage",
                    [
                        ("enabled", "\(c.coverage.enabled)"), ("interval", duration(c.coverage.interval)),
                        ("power", "\(c.coverage.powerDBm)"),
                    ]
                ),
                ("stats", [("interval", duration(c.statsInterval))]),
                (
                    "filters",
                    [
                        ("dev_addr_prefixes", list(c.filters.devAddrPrefixes)),
                        ("join_eui_prefixes", list(c.filters.joinEUIPrefixes)),
                        ("deny_dev_addr_prefixes", list(c.filters.denyDevAddrPrefixes)),
                        ("deny_join_eui_prefixes", list(c.filters.denyJoinEUIPrefixes)),
                    ]
                ),
                ("log", [("level", quoted(c.logLevel))]),
            ]
            var lines = [
                "# The configuration in effect: \(c.file), the environment's HOTSPOTD_* overrides, and defaults."
            ]
            for (section, keys) in sections {
                lines.append("")
                lines.append("[\(section)]")
                for (key, value) in keys {
                    let origin = c.origins["\(section).\(key)"]
                    let source =
                        origin.map { $0.fromEnvironment ? "from \($0.key)" : "\($0.file):\($0.line)" } ?? "default"
                    if let value {
                        lines.append("\(key) = \(value)".padding(to: 48) + " # \(source)")
                    } else {
                        lines.append("# \(key) is not set")
                    }
                }
            }
            return lines.joined(separator: "\n")
        }
    }
}

/// What the broker said to `config check`'s one connection, set from the client's events.
private final class BrokerOutcome: Sendable {
    private let result = Mutex<Result<Void, MQTTError>?>(nil)
    func set(_ value: Result<Void, MQTTError>) { result.withLock { if $0 == nil { $0 = value } } }
    var value: Result<Void, MQTTError>? { result.withLock { $0 } }
}
