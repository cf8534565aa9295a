import Clocks
import Cryptography
import HAL
import HALLinux
import HALMock
import Logging
import Radio
import SemtechUDP
import Store

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
    /// The gateway key, and whether it was made just now (the caller says so once the gateway
    /// ID is in every log entry's metadata).
    static func key(_ configuration: Configuration) throws(StartError) -> (key: Ed25519PrivateKey, created: Bool) {
        do {
            return try KeyFile.loadOrCreate(configuration.gateway.keyFile)
        } catch {
            throw StartError(error.message, exitCode: 78)
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

    /// The radio the board profile names: a packet forwarders' backend, or an SPI radio on the
    /// board (the mock board's, in `air` when given). Not started yet.
    static func radio(
        _ configuration: Configuration, catalog: BoardCatalog, air: Air?, watchdog: Duration?
    ) throws(StartError) -> (radio: any Radio, board: (any BoardHardware)?) {
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
            let board: any BoardHardware
            do {
                board =
                    profile.hal == .mock
                    ? try MockBoard(profile: profile, air: air ?? Air(timeScale: 1)) : LinuxBoard(profile: profile)
            } catch {
                throw StartError(error.message)
            }
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

    /// The radio is checked at least as often as systemd expects a ping, so that a wedged radio
    /// stops the pings within a few watchdog periods.
    static func healthCheckInterval(watchdog: Duration?) -> Duration {
        min(.seconds(5), watchdog ?? .seconds(5))
    }
}
