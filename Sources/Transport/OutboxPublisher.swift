import Logging
import Store

/// Drains the outbox to the broker, in order, with a bounded number of messages in flight,
/// and deletes a message only when the broker has acknowledged it (PUBACK, QoS 1).
///
/// After a reconnect (or a restart) it starts again from the oldest message still in the
/// outbox: what was in flight is sent again, so a consumer may see a message twice, always
/// under the same id, and never misses one. Memory stays bounded by the in-flight window
/// however many messages wait on disk.
public actor OutboxPublisher {
    private let store: Store
    private let client: MQTTClient
    private let maximumInFlight: Int
    private let qos: Int
    private let logger: Logger

    private var connected = false
    /// Message ids of this connection's publishes, to outbox ids.
    private var inFlight: [Int32: Int64] = [:]
    /// The newest outbox id published on this connection.
    private var cursor: Int64 = 0
    private var pumping = false
    private var incoming: AsyncStream<(topic: String, payload: [UInt8])>.Continuation?

    /// Counters for stats, tests and benchmarks.
    public struct Counters: Sendable, Equatable {
        public var published = 0
        public var acknowledged = 0
        public var connections = 0
        public var maximumInFlightSeen = 0
    }
    public private(set) var counters = Counters()

    public init(store: Store, client: MQTTClient, maximumInFlight: Int = 100, qos: Int = 1, logger: Logger = Logger(label: "hotspotd.outbox")) {
        self.store = store
        self.client = client
        self.maximumInFlight = max(1, maximumInFlight)
        self.qos = qos
        self.logger = logger
    }

    /// Messages that arrive on subscribed topics, for the command handlers.
    public func incomingMessages() -> AsyncStream<(topic: String, payload: [UInt8])> {
        let (stream, continuation) = AsyncStream.makeStream(of: (topic: String, payload: [UInt8]).self, bufferingPolicy: .bufferingOldest(1000))
        incoming = continuation
        return stream
    }

    /// Follows the connection and the outbox until the client's events end. `onConnect` runs
    /// on every (re)connection, before the backlog is sent (the ONLINE state goes there).
    public func run(onConnect: @Sendable @escaping () -> Void = {}) async {
        let changes = store.outboxChanges
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in changes { await self.pump() }
            }
            for await event in client.events {
                switch event {
                case .connected:
                    connected = true
                    inFlight.removeAll()
                    cursor = 0
                    counters.connections += 1
                    let depth = await store.outboxDepth()
                    logger.info("connected to the broker", metadata: ["outbox": "\(depth)"])
                    onConnect()
                    await pump()
                case .connectionFailed(let reason):
                    logger.warning("cannot connect to the broker: \(reason)")
                case .disconnected(let reason):
                    if connected { logger.warning("disconnected from the broker: \(reason)") }
                    connected = false
                    inFlight.removeAll()
                    cursor = 0
                case .published(let messageID):
                    if let id = inFlight.removeValue(forKey: messageID) {
                        do throws(StoreError) {
                            try await store.acknowledge([id])
                            counters.acknowledged += 1
                        } catch {
                            logger.error("cannot delete an acknowledged message from the outbox: \(error.message)")
                        }
                    }
                    await pump()
                case .message(let topic, let payload):
                    incoming?.yield((topic, payload))
                }
            }
            incoming?.finish()
            group.cancelAll()
        }
    }

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

    private func drain() async {
        while connected && inFlight.count < maximumInFlight {
            let batch: [OutboxMessage]
            do {
                batch = try await store.outbox(after: cursor, limit: maximumInFlight - inFlight.count)
            } catch {
                logger.error("cannot read the outbox: \(error.message)")
                return
            }
            guard !batch.isEmpty else { return }
            var acknowledgedAtOnce: [Int64] = []
            for message in batch {
                guard connected else { break }
                do {
                    let messageID = try client.publish(topic: message.topic, payload: message.payload, qos: qos)
                    counters.published += 1
                    cursor = message.id
                    if qos == 0 {
                        acknowledgedAtOnce.append(message.id)
                    } else {
                        inFlight[messageID] = message.id
                        counters.maximumInFlightSeen = max(counters.maximumInFlightSeen, inFlight.count)
                    }
                } catch {
                    // Not connected after all: the next connection starts over.
                    logger.debug("publish deferred: \(error.message)")
                    return
                }
            }
            if !acknowledgedAtOnce.isEmpty {
                try? await store.acknowledge(acknowledgedAtOnce)
                counters.acknowledged += acknowledgedAtOnce.count
            }
        }
    }

    public var inFlightCount: Int { inFlight.count }
}
