import Clocks
import Logging
import Store

/// The gateway's MQTT side: the connection (a retained OFFLINE last will, ONLINE on every
/// connect), the outbox drained to the broker, and the messages of subscribed topics handed to
/// `handler` in two bounded lanes. It carries and never decides: what a message means is the
/// handler's business.
public final class MQTTTransport: Sendable {
    /// The retained connection state: where it goes and its two payloads.
    public struct Presence: Sendable {
        public var topic: String
        public var online: [UInt8]
        public var offline: [UInt8]
        public init(topic: String, online: [UInt8], offline: [UInt8]) {
            self.topic = topic
            self.online = online
            self.offline = offline
        }
    }

    /// Takes one message from the broker; called from one lane at a time, in arrival order.
    public typealias Handler = @Sendable (_ topic: String, _ message: IncomingMessage) async -> Void

    public let connection: any MQTTConnection
    public let publisher: OutboxPublisher
    private let presence: Presence
    /// Messages on this topic wait in a lane of their own (downlinks wait for airtime and a
    /// TX_ACK, and must not hold up a pairing or a credit behind them).
    private let slowTopic: String?
    private let handler: Handler
    private let logger: Logger
    let commandQueue = IncomingQueue(maximumBytes: 256 * 1024, maximumCount: 256)
    let downlinkQueue = IncomingQueue(maximumBytes: 1024 * 1024, maximumCount: 256)
    /// Messages dropped for a full queue are said within this budget.
    private let dropLog = RefusalLimiter(burst: 5, perSecond: 1.0 / 60)

    /// Over a connection made elsewhere (an `InProcessConnection` in tests).
    public init(
        connection: any MQTTConnection, store: Store, presence: Presence, slowTopic: String?,
        maximumInFlight: Int = 100,
        qos: Int = 1, logger: Logger = Logger(label: "hotspotd.mqtt"), handler: @escaping Handler
    ) {
        self.connection = connection
        publisher = OutboxPublisher(
            store: store, client: connection, maximumInFlight: maximumInFlight, qos: qos, logger: logger)
        self.presence = presence
        self.slowTopic = slowTopic
        self.handler = handler
        self.logger = logger
    }

    /// Over libmosquitto: the presence's OFFLINE becomes the last will, `subscriptions` are
    /// renewed on every connect.
    public convenience init(
        settings: MQTTSettings, subscriptions: [String], store: Store, presence: Presence, slowTopic: String?,
        qos: Int = 1,
        logger: Logger = Logger(label: "hotspotd.mqtt"), handler: @escaping Handler
    ) throws(MQTTError) {
        var settings = settings
        settings.will = (presence.topic, presence.offline)
        let client = try MQTTClient(settings: settings, subscriptions: subscriptions)
        self.init(
            connection: client, store: store, presence: presence, slowTopic: slowTopic,
            maximumInFlight: settings.maximumInFlight,
            qos: qos, logger: logger, handler: handler)
    }

    public var isConnected: Bool { connection.isConnected }

    /// Messages the broker acknowledged since the start.
    public var acknowledged: Int {
        get async { await publisher.counters.acknowledged }
    }

    /// Connects and runs until `stop()`.
    public func run() async throws(MQTTError) {
        let slowTopic = self.slowTopic
        await publisher.deliverIncoming { [self] topic, message in
            let queue = topic == slowTopic ? downlinkQueue : commandQueue
            guard !queue.put(topic, message) else { return }
            let (report, unreported) = dropLog.admit()
            guard report else { return }
            var metadata: Logger.Metadata = ["topic": "\(topic)", "dropped": "\(queue.dropped)"]
            if unreported > 0 { metadata["not_logged_before"] = "\(unreported)" }
            logger.warning(
                """
                incoming message dropped: its handler is \(queue.maximumBytes / 1024) KB or \(queue.maximumCount) \
                messages behind
                """,
                metadata: metadata)
        }
        try connection.start()
        let connection = self.connection
        let presence = self.presence
        let handler = self.handler
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [publisher] in
                await publisher.run {
                    _ = try? connection.publish(topic: presence.topic, payload: presence.online, qos: 1, retain: true)
                }
            }
            for queue in [commandQueue, downlinkQueue] {
                group.addTask { await queue.drain(with: handler) }
            }
            // The connection's events end when it stops: so do the queues.
            await group.next()
            commandQueue.finish()
            downlinkQueue.finish()
        }
    }

    /// How long `stop()` waits for the broker to acknowledge the OFFLINE state.
    public static let goodbyePatience: Duration = .seconds(1)

    /// Publishes OFFLINE (retained), waits up to `goodbyePatience` for its PUBACK, says goodbye
    /// to the broker and stops. Returns whether the broker acknowledged OFFLINE.
    @discardableResult
    public func stop() async -> Bool {
        let acknowledged = await publisher.publishAcknowledged(
            topic: presence.topic, payload: presence.offline, retain: true, within: Self.goodbyePatience)
        connection.stop()
        await publisher.flushAcknowledgements()
        return acknowledged
    }
}
