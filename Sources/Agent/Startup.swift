import Clocks
import Cryptography
import HAL
import HALLinux
import HALMock
import Logging
import Radio
import SecureElement
import SemtechUDP
import Store

/// Where the gateway's key is.
public enum GatewayKeySource: Sendable, Equatable, CustomStringConvertible {
    /// A key file in Helium's keypair format, created on first start.
    case file(String)
    /// The P-256 key of an ATECC608.
    case secureElement(ECCKeyURI)

    public var description: String {
        switch self {
        case .file(let path): path
        case .secureElement(let uri): uri.description
        }
    }
}

/// Why the agent could not start, with the exit code that says so (78, EX_CONFIG, for a
/// configuration problem).
public struct StartError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var exitCode: Int32
    public init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
    public var description: String { message }
}

/// What the agent opens before it runs: the gateway key, the store, the board and its radio.
enum Startup {
    /// Where the gateway's key is: the configured file or URI; unset, the secure element the
    /// board profile names, or the default key file.
    static func keySource(_ configuration: Configuration, profile: BoardProfile) throws(StartError) -> GatewayKeySource
    {
        if let key = configuration.gateway.key {
            guard ECCKeyURI.isURI(key) else { return .file(key) }
            do {
                return .secureElement(try ECCKeyURI(parsing: key))
            } catch {
                throw StartError(
                    configuration.error(configuration.gateway.keySetting, error.message).description, exitCode: 78)
            }
        }
        if let element = profile.secureElement {
            return .secureElement(ECCKeyURI(bus: element.bus, address: element.address, slot: element.slot))
        }
        return .file(Configuration.Gateway.defaultKeyFile)
    }

    /// The gateway's identity, and whether its key file was made just now (the caller says so
    /// once the gateway ID is in every log entry's metadata). A secure element's key is read
    /// from the chip on `board`'s I2C bus; its sealing key lives in the data directory.
    static func identity(_ configuration: Configuration, source: GatewayKeySource, board: any BoardHardware)
        throws(StartError) -> (identity: GatewayIdentity, created: Bool)
    {
        switch source {
        case .file(let path):
            do {
                let (key, created) = try KeyFile.loadOrCreate(path)
                return (GatewayIdentity(key: key, gatewayID: configuration.gateway.id), created)
            } catch {
                throw StartError(error.message, exitCode: 78)
            }
        case .secureElement(let uri):
            let signer: ECC608Signer
            do {
                let bus = try board.openI2C(uri.bus)
                let chip = ECC608(bus: bus, address: uri.address)
                // Only a provisioned chip serves: zones locked, a P-256 key in the slot.
                let report = try SecureElementReport.probe(chip, slot: uri.slot)
                guard let probed = report.signer, report.problem == nil else {
                    let problem = report.problem ?? "no key"
                    throw StartError(
                        "the secure element (\(uri)) cannot serve as the identity: \(problem)", exitCode: 78)
                }
                signer = probed
            } catch let error as StartError {
                throw error
            } catch let error as HardwareError {
                // A missing node or permission is the setup's to fix; anything else may pass.
                let setup = [.notFound, .permissionDenied, .wrongDevice, .invalidRequest].contains(error.kind)
                throw StartError(
                    "the secure element (\(uri)) cannot be opened: \(error.message)", exitCode: setup ? 78 : 1)
            } catch let error as ECC608Error {
                // A chip that does not answer, or answers a passing fault, may do better after a
                // restart; a wrong or unprovisioned chip will not.
                throw StartError(
                    "the secure element (\(uri)): \(error.message)", exitCode: ECC608.isRetryable(error) ? 1 : 78)
            } catch {
                throw StartError("the secure element (\(uri)): \(error)")
            }
            do {
                let sealing = try SealingKeyFile.loadOrCreate(configuration.gateway.dataDirectory + "/sealing.key")
                return (
                    GatewayIdentity(signer: signer, sealingKey: sealing, gatewayID: configuration.gateway.id), false
                )
            } catch {
                throw StartError(error.message, exitCode: 78)
            }
        }
    }

    /// The board profile `gateway.board` names; one kept to say a model is unsupported stops here.
    static func profile(_ configuration: Configuration, catalog: BoardCatalog) throws(StartError) -> BoardProfile {
        let profile: BoardProfile
        do {
            profile = try catalog.load(configuration.gateway.board)
        } catch  where error.line == 0 && error.key.isEmpty && error.file == configuration.gateway.board {
            // No such profile: the problem is the configuration's gateway.board.
            throw StartError(configuration.error("gateway.board", error.message).description, exitCode: 78)
        } catch {
            let place = configuration.error("gateway.board", "").place
            throw StartError("\(error.description) (the board profile named by \(place))", exitCode: 78)
        }
        if let reason = profile.unsupported {
            throw StartError(
                configuration.error("gateway.board", "\(profile.description) cannot run hotspotd: \(reason)")
                    .description,
                exitCode: 78)
        }
        return profile
    }

    /// The board's hardware: the mock board (in `air` when given) or the Linux devices.
    static func board(_ profile: BoardProfile, air: Air?) throws(StartError) -> any BoardHardware {
        guard profile.hal == .mock else { return LinuxBoard(profile: profile) }
        do {
            return try MockBoard(profile: profile, air: air ?? Air(timeScale: 1))
        } catch {
            throw StartError(error.message)
        }
    }

    static func store(_ configuration: Configuration) throws(StartError) -> Store {
        do {
            return try Store.open(
                directory: configuration.gateway.dataDirectory, outboxLimit: configuration.mqtt.outboxMaximum)
        } catch {
            throw StartError(error.message)
        }
    }

    /// The radio the board profile names: a packet forwarders' backend, or an SPI radio on
    /// `board`. Not started yet.
    static func radio(
        _ configuration: Configuration, profile: BoardProfile, board: any BoardHardware, watchdog: Duration?
    ) throws(StartError) -> (radio: any Radio, board: (any BoardHardware)?) {
        let region = configuration.gateway.region
        let logger = Logger(label: "hotspotd.radio")
        let settings = configuration.radio
        switch profile.backend {
        case .semtechUDP:
            let udp = configuration.semtechUDP
            let radio = SemtechUDPBackend(
                bind: udp.bind, region: region, trusted: udp.forwarders, forwarderSensesChannel: udp.listenBeforeTalk,
                makePolicy: { settings.policy(region: region) }, logger: logger)
            return (radio, nil)
        case .sx127x, .sx126x:
            do {
                let radio = try SPIRadio(
                    board: board,
                    configuration: RadioConfiguration(frequencyHz: settings.frequencyHz, dataRate: settings.dataRate),
                    policy: settings.policy(region: region), logger: logger,
                    timing: RadioTiming(healthCheckInterval: healthCheckInterval(watchdog: watchdog)))
                return (radio, board)
            } catch {
                throw StartError(error.message)
            }
        }
    }

    /// Where a network server's channel plan can go: the SPI radio, the forwarder's file and
    /// unit when both are configured, or nowhere, with the reason.
    static func channelPlanTarget(_ configuration: Configuration, radio: any Radio) -> ChannelPlanService.Target {
        if let radio = radio as? SPIRadio {
            let settings = configuration.radio
            return .radio(
                radio, base: RadioConfiguration(frequencyHz: settings.frequencyHz, dataRate: settings.dataRate))
        }
        let udp = configuration.semtechUDP
        if let file = udp.forwarderConfiguration, let unit = udp.forwarderUnit {
            return .forwarder(configuration: file, unit: unit)
        }
        return .none(
            """
            semtech_udp.forwarder_config and forwarder_unit are not set: hotspotd cannot change the \
            forwarder's channels
            """)
    }

    /// The radio is checked at least as often as systemd expects a ping, so that a wedged radio
    /// stops the pings within a few watchdog periods.
    static func healthCheckInterval(watchdog: Duration?) -> Duration {
        min(.seconds(5), watchdog ?? .seconds(5))
    }
}
