import Credits
import FoundationEssentials
import HAL
import Logging
import Messages
import Radio
import Store
import SwiftProtobuf

/// The gateway's MQTT side: the connection (client id = gateway id, a retained OFFLINE last
/// will, ONLINE on every connect), the outbox drained to the broker, and the command topics
/// handed to their handlers (`command/down` to the radio, `command/pair|unpair|credit` and
/// `network/entropy` to the credits module).
public final class MQTTTransport: Sendable {
    public let client: MQTTClient
    public let publisher: OutboxPublisher
    private let topics: Topics
    private let encoding: MessageEncoding
    private let commands: CommandProcessor?
    private let downlinks: DownlinkHandler?
    private let logger: Logger
    private let now: @Sendable () -> Int64
    /// Commands and downlinks wait apart: a downlink waits for its airtime and its TX_ACK,
    /// and must not hold up a pairing or a credit behind it.
    let commandQueue = IncomingQueue(maximumBytes: 256 * 1024, maximumCount: 256)
    let downlinkQueue = IncomingQueue(maximumBytes: 1024 * 1024, maximumCount: 256)
    /// Messages dropped for a full queue are said within this budget.
    private let dropLog = RefusalLimiter(burst: 5, perSecond: 1.0 / 60)

    public init(
        settings: MQTTSettings, store: Store, topics: Topics, encoding: MessageEncoding = .protobuf,
        commands: CommandProcessor?, downlinks: DownlinkHandler?, qos: Int = 1,
        logger: Logger = Logger(label: "hotspotd.mqtt"), now: @escaping @Sendable () -> Int64
    ) throws(MQTTError) {
        var settings = settings
        settings.will = (topics.connState, Self.connState(.offline, gatewayID: topics.gatewayID, encoding: encoding))
        var subscriptions = [topics.down, topics.pair, topics.unpair, topics.credit]
        subscriptions.append(topics.entropy)
        client = try MQTTClient(settings: settings, subscriptions: subscriptions)
        publisher = OutboxPublisher(store: store, client: client, maximumInFlight: settings.maximumInFlight, qos: qos, logger: logger)
        self.topics = topics
        self.encoding = encoding
        self.commands = commands
        self.downlinks = downlinks
        self.logger = logger
        self.now = now
    }

    /// The encoded `gw.ConnState`.
    public static func connState(_ state: Gw_ConnState.State, gatewayID: String, encoding: MessageEncoding) -> [UInt8] {
        if encoding == .json, state == .offline {
            // proto3's JSON mapping leaves out a field at its default, and OFFLINE is the enum's
            // 0: a person reading the retained message should still see the word.
            return Array(#"{"gatewayId":"\#(gatewayID)","state":"OFFLINE"}"#.utf8)
        }
        var message = Gw_ConnState()
        message.gatewayID = gatewayID
        message.state = state
        return (try? encoding.encode(message)) ?? []
    }

    /// Connects and runs until `stop()`. Entropy commands that were applied are passed to
    /// `onEntropy` (the coverage service's remote entropy).
    public func run(onEntropy: @Sendable @escaping ([UInt8], UInt64) async -> Void = { _, _ in }) async throws(MQTTError) {
        let downTopic = topics.down
        await publisher.deliverIncoming { [self] topic, message in
            let queue = topic == downTopic ? downlinkQueue : commandQueue
            guard !queue.put(topic, message) else { return }
            let (report, unreported) = dropLog.admit()
            guard report else { return }
            logger.warning("incoming message dropped: its handler is \(queue.maximumBytes / 1024) KB or \(queue.maximumCount) messages behind", metadata: [
                "topic": "\(topic)", "dropped": "\(queue.dropped)",
            ].merging(unreported > 0 ? ["not_logged_before": "\(unreported)"] : [:]) { $1 })
        }
        try client.start()
        let client = self.client
        let online = Self.connState(.online, gatewayID: topics.gatewayID, encoding: encoding)
        let connStateTopic = topics.connState
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [publisher] in
                await publisher.run {
                    _ = try? client.publish(topic: connStateTopic, payload: online, qos: 1, retain: true)
                }
            }
            for queue in [commandQueue, downlinkQueue] {
                group.addTask { [self] in
                    await queue.drain { topic, message in await dispatch(topic: topic, message: message, onEntropy: onEntropy) }
                }
            }
            // The client's events end when it stops: so do the queues.
            await group.next()
            commandQueue.finish()
            downlinkQueue.finish()
        }
    }

    private func dispatch(topic: String, message: IncomingMessage, onEntropy: @Sendable ([UInt8], UInt64) async -> Void) async {
        do {
            if topic == topics.down {
                guard let downlinks else { return }
                switch message {
                case .payload(let payload): try await downlinks.handle(payload, now: now())
                case .oversized(let size): try await downlinks.refuseOversized(size: size, now: now())
                }
            } else if let commands {
                switch message {
                case .payload(let payload):
                    if case .success(.entropy(let data, let timestamp)) = try await commands.process(payload, topic: topic) {
                        await onEntropy(data, timestamp)
                    }
                case .oversized(let size):
                    try await commands.refuseOversized(size: size, topic: topic)
                }
            }
        } catch {
            logger.error("handling a message on \(topic) failed: \(error)")
        }
    }

    /// Publishes OFFLINE (retained), says goodbye to the broker and stops.
    public func stop() {
        _ = try? client.publish(topic: topics.connState, payload: Self.connState(.offline, gatewayID: topics.gatewayID, encoding: encoding), qos: 1, retain: true)
        client.stop()
    }
}
