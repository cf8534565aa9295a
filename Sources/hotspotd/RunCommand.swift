import Agent
import ArgumentParser
import CSignals
import Clocks
import FoundationEssentials
import HAL
import HALMock
import Logging
import Radio
import ServiceLifecycle
import TOML

#if canImport(Glibc)
    import Glibc
#endif

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the agent.",
        discussion: """
            Exits 78 (EX_CONFIG) for a configuration problem, naming the file, the line and the key.
            SIGTERM or SIGINT: stop receiving, flush the outbox for up to gateway.shutdown_timeout,
            publish OFFLINE, exit 0; what is still in the outbox stays on disk for the next start.
            A second SIGTERM or SIGINT ends the process at once, as the signal would without a handler,
            losing nothing stored.
            """
    )

    @Option(name: .long, help: "The configuration file.")
    var config: String = Configuration.defaultPath

    @Flag(
        name: .long,
        help: "On a mock board: simulated sensors and a neighbour's beacons transmit into its air (the demo's).")
    var simulateSensors = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            """
            On a mock board: replay the frames in FILE into its air, each once the driver has read the one before \
            (the benchmark's load).
            """,
            discussion: "FILE holds frames, each a 2-byte big-endian length and that many bytes of PHYPayload.",
            valueName: "FILE"
        ))
    var replayFrames: String?

    func run() async throws {
        let environment = hotspotd.environment()
        let configuration = try loadConfiguration(config, environment: environment)
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        // Native journal entries when systemd gave stderr to the journal; plain lines otherwise.
        if standardErrorIsTheJournal(environment: environment), let journal = JournalSocket() {
            LoggingSystem.bootstrap(
                { label, provider in
                    var handler = JournalLogHandler(label: label, socket: journal, metadataProvider: provider)
                    handler.logLevel = level
                    return handler
                }, metadataProvider: processMetadataProvider)
        } else {
            LoggingSystem.bootstrap(
                { label, provider in
                    var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
                    handler.logLevel = level
                    return handler
                }, metadataProvider: processMetadataProvider)
        }
        let logger = Logger(label: "hotspotd")
        let stopSignals: StopSignals
        do {
            stopSignals = try StopSignals()
        } catch {
            printError(error.message)
            throw ExitCode(error.exitCode)
        }
        if simulateSensors && replayFrames != nil {
            printError("--simulate-sensors and --replay-frames exclude each other")
            throw ExitCode(64)
        }
        if let replayFrames, let problem = FrameReplayer.check(replayFrames) {
            printError(problem)
            throw ExitCode(66)
        }
        // Simulated sensors run in real time; a replay as fast as the driver reads.
        let air = simulateSensors ? Air(timeScale: 1) : replayFrames != nil ? Air(timeScale: 0) : nil
        let daemon: Daemon
        do {
            daemon = try await Daemon(
                configuration: configuration, environment: environment, catalog: catalog(nil), logger: logger, air: air)
        } catch {
            printError(error.message)
            throw ExitCode(error.exitCode)
        }
        var services = [
            ServiceGroupConfiguration.ServiceConfiguration(
                service: daemon, successTerminationBehavior: .gracefullyShutdownGroup,
                failureTerminationBehavior: .gracefullyShutdownGroup
            )
        ]
        if let air {
            guard daemon.runsOnAMockBoard else {
                printError(
                    """
                    \(simulateSensors ? "--simulate-sensors" : "--replay-frames") needs a mock board \
                    (gateway.board = \"mock\" or \"mock-sx1262\")
                    """
                )
                await daemon.shutDown()
                throw ExitCode(78)
            }
            let channel = RadioConfiguration(
                frequencyHz: configuration.radio.frequencyHz, dataRate: configuration.radio.dataRate)
            if let replayFrames {
                // The replay ends when the file does; the agent goes on.
                services.append(
                    .init(
                        service: FrameReplayer(air: air, path: replayFrames, channel: channel) { daemon.framesTaken },
                        successTerminationBehavior: .ignore))
            } else {
                services.append(
                    .init(
                        service: SensorSimulator(
                            air: air, sensors: SimulatedSensor.demo, channel: channel,
                            region: configuration.gateway.region)))
            }
        }
        // The group is told of the first SIGTERM or SIGINT by `stopSignals`, not by its own signal
        // handling, so that a second signal can end the process from the handler itself.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services, logger: Logger(label: "hotspotd.services")))
        do {
            try stopSignals.onFirst { Task { await group.triggerGracefulShutdown() } }
        } catch {
            printError(error.message)
            await daemon.shutDown()
            throw ExitCode(1)
        }
        try await group.run()
    }
}

/// SIGTERM and SIGINT (see CSignals): the first runs the handler given to `onFirst`, outside
/// the signal handler; a second ends the process at once (it dies of the signal).
struct StopSignals: Sendable {
    private let pipe: Int32

    /// Installs the handlers; a signal from now on is not lost, even before `onFirst`.
    init() throws(StartError) {
        let fd = hs_stop_signals_install()
        guard fd >= 0 else {
            throw StartError("cannot install the SIGTERM and SIGINT handlers: \(String(cString: strerror(-fd)))")
        }
        pipe = fd
    }

    /// Runs `handler` on a thread of its own when the first signal arrives (or has arrived).
    func onFirst(_ handler: @escaping @Sendable () -> Void) throws(HardwareError) {
        let pipe = self.pipe
        try HardwareError.io { () throws(ThreadError) in
            try DedicatedThread(name: "stop-signals") {
                var byte: UInt8 = 0
                while read(pipe, &byte, 1) < 0, errno == EINTR {}
                handler()
            }.detach()
        }
    }
}
