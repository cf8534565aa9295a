import ChirpStack
import Credits
import Logging
import Messages
import Store
import Transport

/// What the broker sends, to the part of the agent that decides: `command/down` to the
/// downlink handler, `command/config` to the channel plans, signed commands and entropy to the
/// command processor.
public struct IncomingDispatch: Sendable {
    public let topics: Topics
    public let commands: CommandProcessor?
    public let downlinks: DownlinkHandler?
    public let channelPlans: ChannelPlanService?
    public let encoding: MessageEncoding
    /// Entropy commands that were applied (the coverage service's remote entropy).
    public let onEntropy: @Sendable (_ data: [UInt8], _ timestamp: UInt64) async -> Void
    public let logger: Logger
    public let now: @Sendable () -> Int64

    public init(
        topics: Topics, commands: CommandProcessor?, downlinks: DownlinkHandler?,
        channelPlans: ChannelPlanService? = nil, encoding: MessageEncoding = .protobuf, logger: Logger,
        now: @escaping @Sendable () -> Int64,
        onEntropy: @escaping @Sendable ([UInt8], UInt64) async -> Void = { _, _ in }
    ) {
        self.topics = topics
        self.commands = commands
        self.downlinks = downlinks
        self.channelPlans = channelPlans
        self.encoding = encoding
        self.onEntropy = onEntropy
        self.logger = logger
        self.now = now
    }

    /// The topics the agent subscribes to.
    public var subscriptions: [String] {
        [topics.down, topics.pair, topics.unpair, topics.credit, topics.entropy]
            + (channelPlans == nil ? [] : [topics.config])
    }

    public func handle(topic: String, message: IncomingMessage) async {
        do {
            if topic == topics.config {
                guard let channelPlans else { return }
                switch message {
                case .payload(let payload):
                    do {
                        channelPlans.submit(try encoding.decode(Gw_GatewayConfiguration.self, from: payload))
                    } catch {
                        channelPlans.refuseUnreadable(
                            "not a gw.GatewayConfiguration (\(payload.count) bytes): \(error)")
                    }
                case .oversized(let size):
                    channelPlans.refuseUnreadable("\(size) bytes is more than any plan")
                }
            } else if topic == topics.down {
                guard let downlinks else { return }
                switch message {
                case .payload(let payload): try await downlinks.handle(payload, now: now())
                case .oversized(let size): try await downlinks.refuseOversized(size: size, now: now())
                }
            } else if let commands {
                switch message {
                case .payload(let payload):
                    if case .success(.entropy(let data, let timestamp)) = try await commands.process(
                        payload, topic: topic)
                    {
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
}

extension MQTTTransport {
    /// The gateway's presence in ChirpStack's `gw.ConnState`.
    public static func presence(topics: Topics, encoding: MessageEncoding) -> Presence {
        Presence(
            topic: topics.connState,
            online: ConnStateMessages.encoded(.online, gatewayID: topics.gatewayID, encoding: encoding),
            offline: ConnStateMessages.encoded(.offline, gatewayID: topics.gatewayID, encoding: encoding))
    }

    /// The transport as the agent runs it: client id = gateway id, ChirpStack's presence,
    /// `command/down` in the slow lane, every message to `dispatch`.
    public convenience init(
        settings: MQTTSettings, store: Store, dispatch: IncomingDispatch, encoding: MessageEncoding = .protobuf,
        qos: Int = 1,
        logger: Logger = Logger(label: "hotspotd.mqtt")
    ) throws(MQTTError) {
        try self.init(
            settings: settings, subscriptions: dispatch.subscriptions, store: store,
            presence: Self.presence(topics: dispatch.topics, encoding: encoding), slowTopic: dispatch.topics.down,
            qos: qos,
            logger: logger
        ) { topic, message in await dispatch.handle(topic: topic, message: message) }
    }

    /// The transport as the agent runs it over its configured brokers: one client for one
    /// broker; over several (`mqtt.servers`), a `FailoverConnection` that moves between them,
    /// each client carrying the OFFLINE state as its last will.
    public convenience init(
        mqtt: Configuration.MQTT, clientID: String, store: Store, dispatch: IncomingDispatch,
        encoding: MessageEncoding = .protobuf, logger: Logger = Logger(label: "hotspotd.mqtt")
    ) throws(MQTTError) {
        let presence = Self.presence(topics: dispatch.topics, encoding: encoding)
        let subscriptions = dispatch.subscriptions
        let will = (topic: presence.topic, payload: presence.offline)
        let settings = mqtt.servers.indices.map { index in
            var settings = mqtt.settings(clientID: clientID, server: index)
            settings.will = will
            return settings
        }
        let connection: any MQTTConnection
        if settings.count == 1 {
            connection = try MQTTClient(settings: settings[0], subscriptions: subscriptions)
        } else {
            connection = FailoverConnection(
                brokers: settings.map { settings in
                    FailoverConnection.Broker(
                        address: settings.brokerAddress,
                        make: { () throws(MQTTError) in try MQTTClient(settings: settings, subscriptions: subscriptions)
                        },
                        answers: { acceptsConnections(host: settings.host, port: settings.port) })
                },
                failoverAfter: mqtt.failoverAfter, failbackInterval: mqtt.failbackInterval, offline: will,
                logger: logger)
        }
        self.init(
            connection: connection, store: store, presence: presence, slowTopic: dispatch.topics.down,
            maximumInFlight: mqtt.maximumInFlight, qos: mqtt.qos, logger: logger
        ) { topic, message in await dispatch.handle(topic: topic, message: message) }
    }
}
