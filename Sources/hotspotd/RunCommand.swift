import Agent
import ArgumentParser
import Dispatch
import HAL
import HALMock
import Logging
import Radio
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
            SIGTERM or SIGINT: stop receiving, flush the outbox for up to gateway.shutdown_timeout, publish OFFLINE, exit 0;
            what is still in the outbox stays on disk for the next start.
            """
    )

    @Option(name: .long, help: "The configuration file.")
    var config: String = Configuration.defaultPath

    @Flag(name: .long, help: "On a mock board: simulated sensors and a neighbour's beacons transmit into its air (the demo's).")
    var simulateSensors = false

    func run() async throws {
        let environment = hotspotd.environment()
        let configuration: Configuration
        do {
            configuration = try Configuration.parse(try readTextFile(config), file: config, environment: environment)
        } catch let error as TOMLConfigError {
            printError(error.description)
            throw ExitCode(78)
        } catch let error as HardwareError {
            printError("cannot read the configuration: \(error.message)")
            throw ExitCode(78)
        }
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        // Native journal entries when systemd gave stderr to the journal; plain lines otherwise.
        if standardErrorIsTheJournal(environment: environment), let journal = JournalSocket() {
            LoggingSystem.bootstrap({ label, provider in
                var handler = JournalLogHandler(label: label, socket: journal, metadataProvider: provider)
                handler.logLevel = level
                return handler
            }, metadataProvider: processMetadataProvider)
        } else {
            LoggingSystem.bootstrap({ label, provider in
                var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
                handler.logLevel = level
                return handler
            }, metadataProvider: processMetadataProvider)
        }
        let logger = Logger(label: "hotspotd")
        let air = simulateSensors ? Air(timeScale: 1) : nil
        let daemon: Daemon
        do {
            daemon = try await Daemon(configuration: configuration, environment: environment, catalog: catalog(nil), logger: logger, air: air)
        } catch {
            printError(error.message)
            throw ExitCode(error.exitCode)
        }
        let signals = SignalWatch()
        signals.start {
            Task { await daemon.shutDown() }
        }
        var simulation: Task<Void, Never>?
        if let air {
            guard daemon.runsOnAMockBoard else {
                printError("--simulate-sensors needs a mock board (gateway.board = \"mock\" or \"mock-sx1262\")")
                await daemon.shutDown()
                throw ExitCode(78)
            }
            let simulator = SensorSimulator(
                air: air, sensors: SimulatedSensor.demo,
                channel: RadioConfiguration(frequencyHz: configuration.radio.frequencyHz, dataRate: configuration.radio.dataRate),
                region: configuration.gateway.region
            )
            simulation = Task { await simulator.run() }
        }
        await daemon.run()
        simulation?.cancel()
        signals.stop()
    }
}

/// SIGTERM and SIGINT: the first runs `onFirst`; a second exits at once.
final class SignalWatch: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private var count = 0
    private let queue = DispatchQueue(label: "hotspotd.signals")

    func start(onFirst: @escaping @Sendable () -> Void) {
        // A parent may have left these blocked; the agent must hear them.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGTERM)
        sigaddset(&unblock, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler { [self] in
                count += 1
                if count == 1 {
                    onFirst()
                } else {
                    _exit(1)
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    func stop() {
        queue.sync { sources.forEach { $0.cancel() } }
    }
}
