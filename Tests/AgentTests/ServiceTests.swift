import Agent
import CSQLite
import ChirpStack
import Clocks
import Credits
import Foundation
import Frames
import LoRaPHY
import Logging
import Messages
import Radio
import ServiceLifecycle
import Store
import Synchronization
import TestSupport
import Testing
import Transport

private let silent = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
private let topics = Topics(prefix: "eu868", gatewayID: "0102030405060708")

private func temporaryStore() throws -> (Store, String) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "hotspotd-services-\(UInt32.random(in: 0...UInt32.max))"
    ).path
    return (try Store.open(directory: directory), directory)
}

/// A radio that hears nothing by itself: the test puts frames into its sink.
private final class QuietRadio: Radio {
    let sink = Mutex<(any FrameSink)?>(nil)
    let stops = Atomic(0)
    var frames: AsyncStream<RadioFrame> { AsyncStream { $0.finish() } }
    func start() async throws(RadioError) {}
    func transmit(_ request: TransmitRequest) async -> TransmitOutcome { .sent(powerDBm: nil) }
    func currentTimestamp() async -> UInt32 { 0 }
    func statistics() async -> RadioStatistics { RadioStatistics() }
    func stop() async {
        stops.add(1, ordering: .relaxed)
        sink.withLock { $0 }?.finish()
    }
    func deliver(to sink: any FrameSink) async { self.sink.withLock { $0 = sink } }
}

/// An unconfirmed data uplink of an unpaired DevAddr; `marker` goes into its FRMPayload.
private func uplink(fCnt: UInt16, marker: [UInt8] = [0x01, 0x02, 0x03, 0x04]) -> RadioFrame {
    let payload: [UInt8] =
        [0x40, 0x11, 0x22, 0x33, 0x44, 0x00, UInt8(fCnt & 0xFF), UInt8(fCnt >> 8), 0x01] + marker + [0, 0, 0, 0]
    return RadioFrame(
        payload: payload, frequencyHz: 868_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125),
        codingRate: .cr4_5, rssiDBm: -80, snrDB: 7, crc: .ok, timestamp: UInt32(fCnt),
        receivedAt: Int64(fCnt) * 1_000_000_000)
}

/// Runs `service` in a group of its own; the group and the task running it.
private func running(_ service: some Service) -> (ServiceGroup, Task<Void, any Error>) {
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [service], logger: silent))
    return (group, Task { try await group.run() })
}

@Suite struct PeriodicTests {
    @Test func itActsEveryIntervalAndStopsAtShutdown() async throws {
        let count = Atomic(0)
        let (group, task) = running(Periodic("count", every: .milliseconds(20)) { count.add(1, ordering: .relaxed) })
        #expect(await eventually(within: 30) { count.load(ordering: .relaxed) >= 3 })
        await group.triggerGracefulShutdown()
        try await task.value
        let settled = count.load(ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(100))
        #expect(count.load(ordering: .relaxed) == settled, "nothing runs after the shutdown")
    }

    @Test func immediatelyActsBeforeTheFirstInterval() async throws {
        let count = Atomic(0)
        let (group, task) = running(
            Periodic("once", every: .seconds(3600), immediately: true) { count.add(1, ordering: .relaxed) })
        #expect(await eventually(within: 30) { count.load(ordering: .relaxed) == 1 })
        await group.triggerGracefulShutdown()
        try await task.value
        #expect(count.load(ordering: .relaxed) == 1)
    }
}

@Suite struct CancelledAtShutdownTests {
    /// The coverage schedule has nothing to drain: a graceful shutdown cancels it.
    @Test func aGracefulShutdownCancelsTheBody() async throws {
        let started = Atomic(false)
        let cancelled = Atomic(false)
        let (group, task) = running(
            CancelledAtShutdown {
                started.store(true, ordering: .relaxed)
                try? await Task.sleep(for: .seconds(3600))
                cancelled.store(Task.isCancelled, ordering: .relaxed)
            })
        #expect(await eventually(within: 30) { started.load(ordering: .relaxed) })
        await group.triggerGracefulShutdown()
        try await task.value
        let sawCancellation = cancelled.load(ordering: .relaxed)
        #expect(sawCancellation, "the body saw its cancellation")
    }
}

@Suite struct FramePipelineTests {
    private func pipeline(store: Store, radio: QuietRadio) async -> (FramePipeline, FrameInbox, TrafficStatistics) {
        let meter = Meter(
            store: store, topics: topics, settings: MeterSettings(forwardUnpaired: true), logger: silent,
            now: { wallClockNanoseconds() })
        let inbox = FrameInbox()
        await radio.deliver(to: inbox)
        let statistics = TrafficStatistics()
        let pipeline = FramePipeline(
            inbox: inbox, radio: radio, meter: meter, statistics: statistics, clock: SystemClock(),
            dataDirectory: "/tmp",
            logger: silent
        ) { _ in }
        return (pipeline, inbox, statistics)
    }

    @Test func framesAreMeteredAndAShutdownStoresWhatTheRadioHandedOver() async throws {
        let (store, _) = try temporaryStore()
        let radio = QuietRadio()
        let (pipeline, inbox, statistics) = await pipeline(store: store, radio: radio)
        let (group, task) = running(pipeline)
        for fCnt in 1...5 { #expect(inbox.put(uplink(fCnt: UInt16(fCnt)))) }
        #expect(await eventually(within: 30) { pipeline.counters.forwarded == 5 })
        // Frames put just before the shutdown are stored too.
        for fCnt in 6...40 { _ = inbox.put(uplink(fCnt: UInt16(fCnt))) }
        await group.triggerGracefulShutdown()
        try await task.value
        #expect(radio.stops.load(ordering: .relaxed) == 1, "the shutdown stops the radio")
        #expect(pipeline.counters.taken == 40)
        #expect(pipeline.counters.forwarded == 40)
        #expect(await store.outboxDepth() == 40)
        let stats = statistics.report(gatewayID: topics.gatewayID, time: 0, metadata: [:])
        #expect(stats.rxPacketsReceived == 40)
    }

    /// A store failure injected into real SQLite (a trigger that aborts one frame's insert):
    /// the batch it was in is retried frame by frame, so the others are stored, and only the
    /// poisoned one is counted as not stored; a later frame that stores clears the failure.
    @Test func aStoreFailureCostsOnlyTheFrameThatCausedIt() async throws {
        let (store, directory) = try temporaryStore()
        var db: OpaquePointer?
        #expect(sqlite3_open("\(directory)/hotspotd.db", &db) == SQLITE_OK)
        defer { sqlite3_close(db) }
        let trigger = """
            CREATE TRIGGER poison BEFORE INSERT ON outbox WHEN instr(NEW.payload, X'DEADBEEF') > 0
            BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
            """
        #expect(sqlite3_exec(db, trigger, nil, nil, nil) == SQLITE_OK, "\(String(cString: sqlite3_errmsg(db)))")

        let radio = QuietRadio()
        let (pipeline, _, _) = await pipeline(store: store, radio: radio)
        // One batch: good, poisoned, good.
        await pipeline.meter([uplink(fCnt: 1), uplink(fCnt: 2, marker: [0xDE, 0xAD, 0xBE, 0xEF]), uplink(fCnt: 3)])
        var counters = pipeline.counters
        #expect(counters.forwarded == 2, "the good frames of the batch are stored one by one")
        #expect(counters.notStored == 1)
        #expect(
            counters.storeFailure?.contains("injected failure") == true, "\(String(describing: counters.storeFailure))")
        #expect(await store.outboxDepth() == 2)

        await pipeline.meter([uplink(fCnt: 4)])
        counters = pipeline.counters
        #expect(counters.storeFailure == nil, "a frame stored again clears the failure")
        #expect(counters.notStored == 1)
        #expect(await store.outboxDepth() == 3)
    }
}

@Suite struct HealthTests {
    private func sample(
        acknowledged: Int = 0, depth: Int = 0, connected: Bool = true, radio: Duration = .zero, dropped: Int = 0
    )
        -> HealthSample
    {
        HealthSample(
            radioLastProgress: radio, framesDropped: dropped, acknowledged: acknowledged, outboxDepth: depth,
            brokerConnected: connected, pipeline: FramePipeline.Counters())
    }

    @Test func theWatchdogIsPingedOnlyWhileRadioAndOutboxMove() {
        var policy = WatchdogPolicy(healthCheckInterval: .seconds(5), startedAt: .zero)
        #expect(policy.assess(sample(radio: .seconds(9)), at: .seconds(10)).ping)
        // The radio silent for three health checks.
        #expect(!policy.assess(sample(radio: .seconds(9)), at: .seconds(25)).radioAlive)
        // Messages waiting, connected, no acknowledgement for five minutes.
        var stuck = WatchdogPolicy(healthCheckInterval: .seconds(5), startedAt: .zero)
        #expect(stuck.assess(sample(acknowledged: 1, depth: 10, radio: .seconds(100)), at: .seconds(100)).ping)
        #expect(stuck.assess(sample(acknowledged: 1, depth: 10, radio: .seconds(399)), at: .seconds(399)).ping)
        #expect(!stuck.assess(sample(acknowledged: 1, depth: 10, radio: .seconds(401)), at: .seconds(401)).outboxMoving)
        // Disconnected is not stuck: the outbox waits on disk.
        #expect(
            stuck.assess(sample(acknowledged: 1, depth: 10, connected: false, radio: .seconds(402)), at: .seconds(402))
                .ping)
        #expect(stuck.assess(sample(acknowledged: 1, depth: 10, dropped: 7), at: .seconds(403)).newlyDropped == 7)
        #expect(stuck.assess(sample(acknowledged: 1, depth: 10, dropped: 9), at: .seconds(404)).newlyDropped == 2)
    }

    @Test func theReporterSaysStatusPingsAndWritesTheStoppedStatusLast() async throws {
        let lines = Mutex<[String]>([])
        let written = Mutex<[Bool]>([])
        let reporter = HealthReporter(
            interval: .milliseconds(20), healthCheckInterval: .seconds(5), clock: SystemClock(), logger: silent,
            sample: {
                HealthSample(
                    radioLastProgress: .nanoseconds(monotonicNanoseconds()), framesDropped: 0, acknowledged: 0,
                    outboxDepth: 0,
                    brokerConnected: true, pipeline: FramePipeline.Counters(metered: 3, forwarded: 2, refused: 1))
            },
            notify: { line in lines.withLock { $0.append(line) } },
            writeStatus: { _, running, _ in written.withLock { $0.append(running) } })
        let (group, task) = running(reporter)
        #expect(await eventually(within: 30) { lines.withLock { $0.contains("WATCHDOG=1") } })
        #expect(lines.withLock { $0.contains("STATUS=received 3, forwarded 2, refused 1, outbox 0") })
        await group.triggerGracefulShutdown()
        try await task.value
        let statuses = written.withLock { $0 }
        #expect(statuses.first == true && statuses.last == false && statuses.dropLast().allSatisfy { $0 })
    }
}

@Suite struct BrokerLinkTests {
    /// Over the in-process connection: what waits is published at a shutdown and acknowledged
    /// before OFFLINE goes out; OFFLINE's PUBACK is waited for.
    @Test func aShutdownDrainsTheOutboxThenSaysOffline() async throws {
        let (store, _) = try temporaryStore()
        let connection = InProcessConnection(acknowledgeAtOnce: true)
        let presence = MQTTTransport.presence(topics: topics, encoding: .json)
        let transport = MQTTTransport(connection: connection, store: store, presence: presence, slowTopic: nil) {
            _, _ in
        }
        let link = BrokerLink(transport: transport, store: store, shutdownTimeout: .seconds(5), logger: silent)
        let (group, task) = running(link)
        for index in 0..<20 {
            try await store.enqueue(
                [NewMessage(kind: .uplink, topic: "up", messageID: "m\(index)", payload: [UInt8(index)])], at: 0)
        }
        connection.connect()
        await group.triggerGracefulShutdown()
        try await task.value
        #expect(await store.outboxDepth() == 0)
        let published = connection.published
        #expect(published.first?.payload == presence.online, "ONLINE first")
        #expect(published.filter { $0.topic == "up" }.map(\.payload) == (0..<20).map { [UInt8($0)] }, "in order")
        #expect(published.last?.payload == presence.offline && published.last?.retain == true, "OFFLINE last, retained")
        #expect(!connection.isConnected)
    }
}
