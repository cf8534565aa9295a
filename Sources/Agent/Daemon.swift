import ChirpStack
import Clocks
import Coverage
import Credits
import Cryptography
import HAL
import HALMock
import Logging
import Messages
import Radio
import SecureElement
import ServiceLifecycle
import Store
import Synchronization
import Transport

/// The running agent: its parts opened and wired, and run as a group of services.
///
/// Frames flow radio → inbox → frame pipeline (statistics, meter, store with the outbox row,
/// beacons to coverage) → broker link → broker. The services, in the order they start (and
/// stop in reverse): health reporter, broker link, coverage, receipts, nonce pruning, the
/// refusal sweep, stats, frame pipeline. So a shutdown stops the radio and stores what it
/// heard, then drains the outbox and says OFFLINE, then writes the stopped status.
public final class Daemon: Service, Sendable {
    public let configuration: Configuration
    public let identity: GatewayIdentity
    public let topics: Topics
    private let radio: any Radio
    private let board: (any BoardHardware)?
    /// The board's hardware: its lines and buses (the mock board's, for tests to watch).
    public let hardware: any BoardHardware
    private let store: Store
    private let pipeline: FramePipeline
    private let transport: MQTTTransport
    /// The network server's channel plans.
    public let channelPlans: ChannelPlanService
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let group: ServiceGroup
    private let started = Atomic(false)
    private let stopping = Atomic(false)

    /// Whether the radio is the mock board's simulated one.
    public var runsOnAMockBoard: Bool { board is MockBoard }

    /// Frames the pipeline has taken from the radio so far, stored or not.
    public var framesTaken: Int { pipeline.counters.taken }

    /// Opens everything the configuration names and starts the radio; throws with an exit code.
    /// `air` is the mock board's simulated air, when something else (the demo's sensors)
    /// transmits into it; a mock board gets an air of its own otherwise.
    public init(
        configuration: Configuration, environment: [String: String], catalog: BoardCatalog, logger: Logger,
        air: Air? = nil,
        clock: any AgentClock = SystemClock()
    ) async throws(StartError) {
        self.configuration = configuration
        self.logger = logger
        let notifier = SystemdNotifier(environment: environment)
        self.notifier = notifier
        let profile = try Startup.profile(configuration, catalog: catalog)
        let hardware = try Startup.board(profile, air: air)
        self.hardware = hardware
        let keySource = try Startup.keySource(configuration, profile: profile)
        let (identity, created) = try Startup.identity(configuration, source: keySource, board: hardware)
        self.identity = identity
        processLogMetadata.withLock { $0["GATEWAY_ID"] = "\(identity.gatewayID)" }
        if created {
            logger.notice("created the gateway key", metadata: ["key_file": "\(keySource)"])
        }
        let topics = Topics(prefix: configuration.mqtt.topicPrefix, gatewayID: identity.gatewayID)
        self.topics = topics
        let encoding: MessageEncoding = configuration.mqtt.json ? .json : .protobuf
        let store = try Startup.store(configuration)
        self.store = store
        (radio, board) = try Startup.radio(
            configuration, profile: profile, board: hardware, watchdog: notifier.watchdogInterval)
        let radio = self.radio
        // Frames go to the inbox from the first one on, before the pipeline starts metering them.
        let inbox = FrameInbox()
        await radio.deliver(to: inbox)
        do {
            try await radio.start()
        } catch {
            throw StartError("the radio did not start: \(error.message)")
        }

        let channelPlans = ChannelPlanService(
            target: Startup.channelPlanTarget(configuration, radio: radio), region: configuration.gateway.region,
            gatewayID: identity.gatewayID, dataDirectory: configuration.gateway.dataDirectory,
            logger: Logger(label: "hotspotd.config"))
        await channelPlans.restore()
        self.channelPlans = channelPlans

        let statistics = TrafficStatistics()
        let transmitting = RecordedRadio(radio, statistics: statistics)
        let now: @Sendable () -> Int64 = { clock.wallClock() }
        let credits = configuration.credits
        let meter = Meter(
            store: store, topics: topics, encoding: encoding,
            settings: MeterSettings(
                forwardUnpaired: credits.forwardUnpaired, chargeJoins: credits.chargeJoins,
                filters: configuration.filters),
            logger: Logger(label: "hotspotd.meter"), now: now)
        let coverage = CoverageService(
            radio: transmitting, store: store, identity: identity, region: configuration.gateway.region, topics: topics,
            encoding: encoding, powerDBm: configuration.coverage.powerDBm, logger: Logger(label: "hotspotd.coverage"),
            now: now)
        let pipeline = FramePipeline(
            inbox: inbox, radio: radio, meter: meter, statistics: statistics, clock: clock,
            dataDirectory: configuration.gateway.dataDirectory, logger: logger
        ) { frame in _ = try? await coverage.consider(frame) }
        self.pipeline = pipeline
        let dispatch = IncomingDispatch(
            topics: topics,
            commands: CommandProcessor(
                store: store,
                authority: CommandAuthority(
                    authority: credits.authority, gatewayID: identity.gatewayID, sealingKey: identity.sealingKey),
                topics: topics, encoding: encoding, logger: Logger(label: "hotspotd.commands"), now: now,
                clockSynchronized: { ClockSynchronization.timesyncd() }),
            downlinks: DownlinkHandler(
                radio: transmitting, store: store, topics: topics, encoding: encoding,
                logger: Logger(label: "hotspotd.downlink"),
                statistics: statistics,
                joinAccepted: { context in _ = try? await meter.chargeAnsweredJoin(context: context) }),
            channelPlans: channelPlans, encoding: encoding, logger: Logger(label: "hotspotd.mqtt"), now: now
        ) { data, timestamp in await coverage.receiveEntropy(data, timestamp: timestamp) }
        do throws(MQTTError) {
            transport = try MQTTTransport(
                mqtt: configuration.mqtt, clientID: identity.gatewayID, store: store, dispatch: dispatch,
                encoding: encoding, logger: Logger(label: "hotspotd.mqtt"))
        } catch {
            throw StartError(error.message)
        }
        let transport = self.transport

        let interval = notifier.watchdogInterval ?? .seconds(10)
        let status = StatusWriter(
            identity: StatusWriter.Identity(
                gatewayID: "\(identity.gatewayID)", board: configuration.gateway.board,
                region: configuration.gateway.region.name.displayName, broker: configuration.mqtt.brokerAddress,
                dataDirectory: configuration.gateway.dataDirectory, startedAt: Nanoseconds.seconds(clock.wallClock())),
            radio: radio, coverage: coverage, clock: clock, logger: logger)
        let health = HealthReporter(
            interval: interval, healthCheckInterval: Startup.healthCheckInterval(watchdog: notifier.watchdogInterval),
            clock: clock,
            logger: logger,
            sample: {
                let radioStatistics = await radio.statistics()
                return HealthSample(
                    radioLastProgress: .nanoseconds(radioStatistics.lastProgressNanoseconds),
                    framesDropped: radioStatistics.framesDropped, acknowledged: await transport.acknowledged,
                    outboxDepth: await store.outboxDepth(), brokerConnected: transport.isConnected,
                    broker: transport.connection.brokerAddress, pipeline: pipeline.counters)
            },
            notify: { _ = notifier.notify($0) },
            writeStatus: { sample, running, answering in
                await status.write(
                    sample, running: running, radioAnswering: answering, interval: running ? interval : .seconds(10))
            })
        let receipts = ReceiptIssuer(store: store, signer: identity.signer, topics: topics, encoding: encoding)
        let receiptLogger = Logger(label: "hotspotd.receipts")
        let stats = StatsReporter(statistics: statistics, store: store, topics: topics, encoding: encoding) {
            [
                "version": hotspotdVersion, "board": configuration.gateway.board,
                "region": configuration.gateway.region.name.displayName,
                "refused_no_credit": String(await meter.counts.refused[UplinkRefusal.noCredit] ?? 0),
                // Uplinks [filters] left out, since the start.
                "filtered_dev_addr": String(await meter.counts.dropped[DropReason.filteredDevAddr] ?? 0),
                "filtered_join_eui": String(await meter.counts.dropped[DropReason.filteredJoinEUI] ?? 0),
                // Datagrams and rxpk a packet forwarder sent that could not be read, since the start.
                "rx_malformed": String(await radio.statistics().malformed),
                // The network server's channel plan in force ("" for the configured channels),
                // and the plans refused since the start.
                "config_version": channelPlans.version ?? "",
                "config_refused": String(channelPlans.refusals),
            ]
        }

        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: health),
            .init(
                service: BrokerLink(
                    transport: transport, store: store, shutdownTimeout: configuration.gateway.shutdownTimeout,
                    logger: logger),
                successTerminationBehavior: .ignore),
        ]
        if configuration.coverage.enabled {
            let interval = configuration.coverage.interval
            services.append(
                .init(
                    service: CancelledAtShutdown { await coverage.run(interval: interval) },
                    successTerminationBehavior: .ignore))
        }
        services += [
            .init(
                service: Periodic("receipts", every: credits.receiptInterval) {
                    do throws(StoreError) {
                        _ = try await receipts.issue(at: now())
                    } catch {
                        // The periods stay whole in the store: the next round receipts them.
                        receiptLogger.warning("receipts not issued this round: \(error.message)")
                    }
                }),
            .init(
                service: Periodic("nonce pruning", every: .seconds(3600), immediately: true) {
                    _ = try? await store.pruneNonces()
                }),
            // Refusal counts waiting for their report, said even when frames stop coming.
            .init(service: Periodic("refusal reports", every: .seconds(60)) { await meter.reportOverdueRefusals() }),
            .init(
                service: Periodic("stats", every: configuration.statsInterval) {
                    _ = try? await stats.report(at: now())
                }),
            .init(service: pipeline),
        ]
        // The status LED and button, where the board has them: without them the agent runs on.
        let lightLogger = Logger(label: "hotspotd.light")
        func line(_ role: LineRole, _ request: GPIOLineRequest) -> (any GPIOLine)? {
            do {
                return try hardware.requestLineIfPresent(role, request)
            } catch {
                lightLogger.warning("no \(role.rawValue): \(error.message)")
                return nil
            }
        }
        // The radio answers while its last sign of life is within three health checks, as the
        // watchdog judges it: for the status LED and the metrics.
        let radioPatience = Startup.healthCheckInterval(watchdog: notifier.watchdogInterval) * 3
        let radioAnswering: @Sendable (RadioStatistics) -> Bool = { statistics in
            clock.monotonic() - .nanoseconds(statistics.lastProgressNanoseconds) < radioPatience
        }
        let led = line(.statusLED, .output(initial: false))
        let button = line(.button, .input(edges: .both))
        if led != nil || button != nil {
            let health = (identity.signer as? ECC608Signer)?.health
            let broker = configuration.mqtt.brokerAddress
            let address = identity.address
            let lightState: @Sendable () async -> LightState = {
                LightState(
                    brokerConnected: transport.isConnected,
                    radioAnswering: radioAnswering(await radio.statistics()),
                    secureElementAnswering: health?.isHealthy ?? true)
            }
            services.append(
                .init(
                    service: StatusLight(
                        led: led, button: button, logger: lightLogger, state: lightState,
                        diagnostic: {
                            let state = await lightState()
                            let last =
                                pipeline.counters.lastUplinkAt.map {
                                    "\(max(0, (now() - $0) / 1_000_000_000)) s ago"
                                } ?? "none yet"
                            return """
                                running, LED \(state.pattern.rawValue), broker \(broker) \
                                \(state.brokerConnected ? "connected" : "not connected"), radio \
                                \(state.radioAnswering ? "answering" : "NOT answering"), last uplink \(last), \
                                address \(address)
                                """
                        })))
        }
        if let bind = configuration.metricsBind {
            let metrics = HotspotMetrics(
                version: hotspotdVersion, region: configuration.gateway.region.name.displayName,
                board: configuration.gateway.board, gatewayID: identity.gatewayID,
                startedAt: Double(clock.wallClock()) / 1e9)
            // What a scrape shows, read from the agent's own counters when it comes.
            let scrape: @Sendable () async -> String = {
                var snapshot = MetricsSnapshot()
                let pipelineCounts = pipeline.counters
                let radioCounts = await radio.statistics()
                snapshot.framesReceived = pipelineCounts.taken
                snapshot.framesMalformed = radioCounts.malformed
                snapshot.radioFramesDropped = radioCounts.framesDropped
                snapshot.radioCRCErrors = radioCounts.crcErrors
                snapshot.radioReinitialisations = radioCounts.reinitialisations
                snapshot.radioAnswering = radioAnswering(radioCounts)
                let meterCounts = await meter.counts
                snapshot.add(meterCounts)
                snapshot.outboxDepth = await store.outboxDepth()
                if let oldest = try? await store.oldestOutboxMessageTime() {
                    snapshot.outboxOldestAgeSeconds = max(0, Double(clock.wallClock() - oldest) / 1e9)
                }
                let publisher = await transport.publisher.counters
                snapshot.brokerConnected = transport.isConnected
                snapshot.brokerConnections = publisher.connections
                snapshot.brokerChanges = (transport.connection as? FailoverConnection)?.moves ?? 0
                snapshot.messagesAcknowledged = publisher.acknowledged
                snapshot.downlinks = statistics.transmitStatusTotals
                snapshot.beaconsSent = await coverage.beaconsSent
                snapshot.witnessesReported = await coverage.witnessesReported
                snapshot.storeFailures = pipelineCounts.notStored + meterCounts.rejectionsNotQueued
                snapshot.storeFailing = pipelineCounts.storeFailure != nil
                snapshot.channelPlansRefused = channelPlans.refusals
                metrics.update(snapshot)
                return metrics.render()
            }
            let server = MetricsServer(
                address: bind, logger: Logger(label: "hotspotd.metrics"),
                onRefusal: { metrics.countRefusedRequest() }, render: scrape)
            services.append(.init(service: server, successTerminationBehavior: .ignore))
        }
        var groupLogger = Logger(label: "hotspotd.services")
        groupLogger.logLevel = .warning
        group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: groupLogger))
    }

    /// Runs the services until a graceful shutdown (`shutDown()`, or one of the group this
    /// daemon is in) has drained what it could; or until cancelled.
    public func run() async throws {
        started.store(true, ordering: .sequentiallyConsistent)
        notifier.notify("READY=1\nSTATUS=receiving", patience: .seconds(2))
        logger.notice(
            "hotspotd running",
            metadata: [
                "GATEWAY_ID": "\(identity.gatewayID)", "ADDRESS": "\(identity.address)",
                "BOARD": "\(configuration.gateway.board)",
                "REGION": "\(configuration.gateway.region.name.displayName)",
            ])
        try await withGracefulShutdownHandler {
            try await group.run()
        } onGracefulShutdown: { [self] in
            Task { await shutDown() }
        }
        let waiting = await store.outboxDepth()
        logger.notice(waiting == 0 ? "stopped" : "stopped; \(waiting) messages wait in the outbox for the next start")
    }

    /// Stops receiving, flushes the outbox for up to the shutdown timeout, puts the radio to
    /// sleep, publishes OFFLINE and ends `run()`. Before `run()`, it only stops the radio.
    public func shutDown() async {
        guard started.load(ordering: .sequentiallyConsistent) else {
            await radio.stop()
            return
        }
        guard !stopping.exchange(true, ordering: .sequentiallyConsistent) else { return }
        notifier.notify("STOPPING=1", patience: .seconds(2))
        logger.notice("stopping")
        await group.triggerGracefulShutdown()
    }
}

public let hotspotdVersion = "0.1.0"
