import Clocks
import Logging
import Store

/// Drains the outbox to the broker, in order, with a bounded number of messages in flight,
/// and deletes a message only when the broker has acknowledged it (PUBACK, QoS 1).
///
/// Messages in flight when the connection drops are sent again by libmosquitto when it
/// reconnects (with their message ids, so their PUBACKs still find their rows); one still
/// unacknowledged a minute into a connection is published again; after a restart the drain
/// starts from the oldest message in the outbox. A consumer may therefore see a message more
/// than once, identified by the ids inside it, and never misses one. Memory stays bounded by
/// the in-flight window however many messages wait on disk.
public actor OutboxPublisher {
    private let store: Store
    private let client: any MQTTConnection
    private let maximumInFlight: Int
    private let qos: Int
    private let logger: Logger

    private var connected = false
    /// Message ids of publishes not yet acknowledged, to outbox ids and when they were sent.
    private var inFlight: [Int32: (id: Int64, sentAt: UInt64)] = [:]
    /// Bumped at every connect and disconnect: a drain that awaited across one drops its batch.
    private var epoch = 0
    /// An unacknowledged message is published again after this long on a live connection.
    private let resendAfterNanoseconds = UInt64(Nanoseconds.of(.seconds(60)))
    /// The newest outbox id published since the process started.
    private var cursor: Int64 = 0
    private var connectedAt: UInt64 = 0
    private var pumping = false
    private var incoming: (@Sendable (_ topic: String, _ message: IncomingMessage) -> Void)?

    /// Counters for stats, tests and benchmarks.
    public struct Counters: Sendable, Equatable {
        public var published = 0
        public var acknowledged = 0
        public var connections = 0
        public var maximumInFlightSeen = 0
        public var republished = 0
        public var unpublishable = 0
        /// Times a connection came up on a new client, after a move between brokers (`mqtt.servers`).
        public var brokerChanges = 0
    }
    public private(set) var counters = Counters()

    public init(
        store: Store, client: any MQTTConnection, maximumInFlight: Int = 100, qos: Int = 1,
        acknowledgementDelay: Duration = .milliseconds(500), logger: Logger = Logger(label: "hotspotd.outbox")
    ) {
        self.acknowledgementDelay = acknowledgementDelay
        self.store = store
        self.client = client
        self.maximumInFlight = max(1, maximumInFlight)
        self.qos = qos
        self.logger = logger
    }

    /// Where messages that arrive on subscribed topics go, as they come (the transport's
    /// queues, which bound them).
    public func deliverIncoming(to handler: @escaping @Sendable (_ topic: String, _ message: IncomingMessage) -> Void) {
        incoming = handler
    }

    /// Follows the connection and the outbox until the client's events end. `onConnect` runs
    /// on every (re)connection, before the backlog is sent (the ONLINE state goes there).
    public func run(onConnect: @Sendable @escaping () -> Void = {}) async {
        let changes = await store.outboxChanges()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in changes { await self.pump() }
            }
            for await event in client.events {
                switch event {
                case .connected:
                    let session = client.session
                    if let last = lastSession, last != session { await rewind(leaving: lastBroker) }
                    lastSession = session
                    lastBroker = client.brokerAddress
                    connected = true
                    epoch += 1
                    connectedAt = monotonicNanoseconds()
                    counters.connections += 1
                    let depth = await store.outboxDepth()
                    logger.info(
                        "connected to the broker",
                        metadata: ["broker": "\(client.brokerAddress)", "outbox": "\(depth)"])
                    onConnect()
                    await pump()
                case .connectionFailed(let reason):
                    logger.warning("cannot connect to the broker at \(client.brokerAddress): \(reason)")
                case .disconnected(let reason):
                    if connected {
                        if let reason {
                            logger.warning("disconnected from the broker at \(client.brokerAddress): \(reason)")
                        } else {
                            logger.debug(
                                "disconnected from the broker", metadata: ["broker": "\(client.brokerAddress)"])
                        }
                    }
                    connected = false
                    epoch += 1
                case .published(let messageID):
                    if let waiter = awaited.removeValue(forKey: messageID) {
                        waiter.resume(returning: true)
                        continue
                    }
                    if let entry = inFlight.removeValue(forKey: messageID) {
                        acknowledgeLater(entry.id)
                    }
                    await pump()
                case .message(let topic, let payload):
                    incoming?(topic, .payload(payload))
                case .oversizedMessage(let topic, let size):
                    incoming?(topic, .oversized(size: size))
                }
            }
            group.cancelAll()
        }
        for waiter in awaited.values { waiter.resume(returning: false) }
        awaited.removeAll()
    }

    /// The session (see `MQTTConnection.session`) and broker of the last connection.
    private var lastSession: Int?
    private var lastBroker = ""

    /// A new client (a move between brokers): it holds nothing of what was in flight on the last one,
    /// and its PUBACKs will never come. What the last broker acknowledged is deleted first;
    /// the drain then starts again from the oldest message left, so each message the last
    /// broker did not acknowledge goes to the new one, once.
    private func rewind(leaving last: String) async {
        await flushAcknowledgements()
        let unacknowledged = inFlight.count
        inFlight.removeAll()
        readAhead.removeAll()
        cursor = 0
        readCursor = 0
        counters.brokerChanges += 1
        logger.info(
            "moved to another broker: what the last one did not acknowledge is sent again",
            metadata: ["from": "\(last)", "to": "\(client.brokerAddress)", "unacknowledged": "\(unacknowledged)"])
    }

    /// Publishes outside the outbox at QoS 1 and waits up to `patience` for the PUBACK (the
    /// OFFLINE state at a clean stop). False when it could not be published or was not
    /// acknowledged in time.
    public func publishAcknowledged(topic: String, payload: [UInt8], retain: Bool, within patience: Duration) async
        -> Bool
    {
        guard let messageID = try? client.publish(topic: topic, payload: payload, qos: 1, retain: retain) else {
            return false
        }
        let timer = Task {
            try? await Task.sleep(for: patience)
            self.giveUpWaiting(for: messageID)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            awaited[messageID] = continuation
        }
    }

    private func giveUpWaiting(for messageID: Int32) {
        awaited.removeValue(forKey: messageID)?.resume(returning: false)
    }

    /// Publishes waiting for their PUBACK outside the outbox, by message id.
    private var awaited: [Int32: CheckedContinuation<Bool, Never>] = [:]

    /// Publishes from the outbox while connected and the window has room. A call made while a
    /// pump is under way makes that pump look once more before it stops.
    public func pump() async {
        if pumping {
            wakeAgain = true
            return
        }
        pumping = true
        defer { pumping = false }
        repeat {
            wakeAgain = false
            await drain()
        } while wakeAgain
    }

    private var wakeAgain = false

    /// Messages read from the outbox ahead of the window, oldest first, and the id of the newest
    /// one read: a PUBACK frees a slot that is filled from here at once, and the store is
    /// visited once per window's worth of messages, not once per message.
    private var readAhead: [OutboxMessage] = []
    private var readCursor: Int64 = 0

    private func drain() async {
        await resendStale()
        while connected && inFlight.count < maximumInFlight {
            if readAhead.isEmpty {
                let started = epoch
                let batch: [OutboxMessage]
                do {
                    batch = try await store.outbox(after: max(cursor, readCursor), limit: maximumInFlight)
                } catch {
                    logger.error("cannot read the outbox: \(error.message)")
                    return
                }
                // A connect or disconnect happened during the read: the batch may be stale.
                guard epoch == started else { continue }
                guard !batch.isEmpty else { return }
                // Another pass may have filled the read-ahead meanwhile: keep the order.
                guard readAhead.isEmpty else { continue }
                readAhead = batch
                readCursor = batch.last!.id
            }
            var published = 0
            var acknowledgedAtOnce: [Int64] = []
            defer { readAhead.removeFirst(published) }
            for message in readAhead {
                guard connected, inFlight.count < maximumInFlight else { break }
                do {
                    let messageID = try client.publish(
                        topic: message.topic, payload: message.payload, qos: qos, retain: false)
                    counters.published += 1
                    cursor = message.id
                    if qos == 0 {
                        acknowledgedAtOnce.append(message.id)
                    } else {
                        inFlight[messageID] = (message.id, monotonicNanoseconds())
                        counters.maximumInFlightSeen = max(counters.maximumInFlightSeen, inFlight.count)
                    }
                } catch  where error.isPermanent {
                    // A message the broker can never take (too large): it must not hold up the rest.
                    logger.error(
                        "dropping an outbox message that cannot be published: \(error.message)",
                        metadata: ["topic": "\(message.topic)"])
                    cursor = message.id
                    acknowledgedAtOnce.append(message.id)
                    counters.unpublishable += 1
                } catch {
                    // Not connected after all: the next connection goes on from here.
                    logger.debug("publish deferred: \(error.message)")
                    break
                }
                published += 1
            }
            for id in acknowledgedAtOnce { acknowledgeLater(id) }
            if published == 0 { return }
        }
    }

    public var inFlightCount: Int { inFlight.count }

    /// Acknowledged ids not yet deleted from the outbox, and whether a deletion is under way.
    private var pendingAcknowledgements: [Int64] = []
    private var deletingAcknowledged = false

    /// Deletes acknowledged messages in batches: the PUBACKs of `acknowledgementDelay` go
    /// together into one deletion (or sooner, once `acknowledgementBatch` wait), so that a
    /// hotspot's trickle of messages does not rewrite the outbox's last page for each. The
    /// window frees at once; the rows go a moment later (a crash in between sends them again,
    /// which QoS 1 allows).
    private func acknowledgeLater(_ id: Int64) {
        pendingAcknowledgements.append(id)
        if pendingAcknowledgements.count >= Self.acknowledgementBatch { acknowledgementWait?.cancel() }
        guard !deletingAcknowledged else { return }
        deletingAcknowledged = true
        let delay = acknowledgementDelay
        let wait = Task { _ = try? await Task.sleep(for: delay) }
        acknowledgementWait = wait
        Task {
            await wait.value
            await deleteAcknowledged()
        }
    }

    /// Deletes what is acknowledged now, without waiting (a clean stop).
    public func flushAcknowledgements() async {
        acknowledgementWait?.cancel()
        while deletingAcknowledged { try? await Task.sleep(for: .milliseconds(5)) }
        await deleteAcknowledged()
    }

    /// How long acknowledgements gather before their rows are deleted, and how many make a
    /// deletion go at once.
    public static let acknowledgementBatch = 512
    private let acknowledgementDelay: Duration
    private var acknowledgementWait: Task<Void, Never>?

    private func deleteAcknowledged() async {
        defer { deletingAcknowledged = false }
        while !pendingAcknowledgements.isEmpty {
            let batch = pendingAcknowledgements
            pendingAcknowledgements.removeAll(keepingCapacity: true)
            do throws(StoreError) {
                try await store.acknowledge(batch)
                counters.acknowledged += batch.count
            } catch {
                logger.error("cannot delete acknowledged messages from the outbox: \(error.message)")
            }
        }
    }

    /// Publishes again what a live connection has left unacknowledged for a minute.
    private func resendStale() async {
        let now = monotonicNanoseconds()
        guard connected, now > connectedAt + resendAfterNanoseconds else { return }
        let started = epoch
        for (messageID, entry) in inFlight where now > entry.sentAt + resendAfterNanoseconds {
            let found = try? await store.outbox(after: entry.id - 1, limit: 1).first
            // A connect, a disconnect or a move happened during the read: this window is gone.
            guard epoch == started, connected else { return }
            guard let message = found, message.id == entry.id else {
                inFlight[messageID] = nil
                continue
            }
            guard
                let newID = try? client.publish(topic: message.topic, payload: message.payload, qos: qos, retain: false)
            else { return }
            inFlight[messageID] = nil
            inFlight[newID] = (entry.id, monotonicNanoseconds())
            counters.republished += 1
        }
    }
}
