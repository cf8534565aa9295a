import Synchronization

/// A connection to an MQTT broker, as the outbox publisher and the transport use it:
/// `MQTTClient` over libmosquitto in the agent, `InProcessConnection` in tests of the logic
/// above it (as the mock board stands in for SPI).
public protocol MQTTConnection: AnyObject, Sendable {
    /// What happens on the connection, in order; ends when it stops.
    var events: AsyncStream<MQTTEvent> { get }
    /// The broker as a person names it (`mqtt://host:port`).
    var brokerAddress: String { get }
    var isConnected: Bool { get }
    /// Connects in the background and keeps the connection.
    func start() throws(MQTTError)
    /// Publishes; returns the message id its PUBACK will carry (QoS 1).
    @discardableResult
    func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool) throws(MQTTError) -> Int32
    /// Says goodbye (no last will) and ends `events`.
    func stop()
    /// Drops the connection without a goodbye, as a crash would (the broker publishes the will).
    func abandon()
    /// Which connection this is: a new number means a new client, holding nothing of what was
    /// in flight before (a move between brokers). One client keeps its session across
    /// reconnects: libmosquitto sends its own in-flight messages again.
    var session: Int { get }
}

extension MQTTConnection {
    public var session: Int { 0 }
}

extension MQTTClient: MQTTConnection {}

/// An MQTT connection to a broker that lives in the process: what the code under test
/// publishes is recorded, PUBACKs come when the test says (or at once), and the test connects,
/// disconnects and delivers messages as a broker would. Message ids count up from 1 and wrap
/// within 1...65535, as MQTT's do.
public final class InProcessConnection: MQTTConnection {
    /// A publish the connection took.
    public struct Publication: Sendable, Equatable {
        public var messageID: Int32
        public var topic: String
        public var payload: [UInt8]
        public var qos: Int
        public var retain: Bool
    }

    private struct State {
        var connected = false
        var started = false
        var stopped = false
        var nextID: Int32 = 1
        var published: [Publication] = []
        var unacknowledged: [Int32] = []
        var acknowledgeAtOnce: Bool
        var failPublishes: MQTTError?
    }

    public let events: AsyncStream<MQTTEvent>
    private let continuation: AsyncStream<MQTTEvent>.Continuation
    private let state: Mutex<State>
    public let brokerAddress = "mqtt://in-process"
    /// The retained message and the will the connection carries, as a broker would keep them.
    public let will: (topic: String, payload: [UInt8])?

    /// `acknowledgeAtOnce`: every QoS 1 publish is acknowledged as it is made; otherwise the
    /// test acknowledges with `acknowledge(_:)`.
    public init(acknowledgeAtOnce: Bool = false, will: (topic: String, payload: [UInt8])? = nil) {
        (events, continuation) = AsyncStream.makeStream(of: MQTTEvent.self)
        state = Mutex(State(acknowledgeAtOnce: acknowledgeAtOnce))
        self.will = will
    }

    public var isConnected: Bool { state.withLock { $0.connected } }

    /// Everything published so far, oldest first.
    public var published: [Publication] { state.withLock { $0.published } }

    /// Message ids published at QoS 1 and not yet acknowledged, oldest first.
    public var unacknowledged: [Int32] { state.withLock { $0.unacknowledged } }

    public func start() throws(MQTTError) {
        state.withLock { $0.started = true }
    }

    /// The broker accepts the connection.
    public func connect() {
        let changed = state.withLock { state -> Bool in
            guard !state.stopped, !state.connected else { return false }
            state.connected = true
            return true
        }
        if changed { continuation.yield(.connected) }
    }

    /// The connection drops: what was unacknowledged stays so (a real client resends it).
    public func disconnect(reason: String = "connection lost") {
        let changed = state.withLock { state -> Bool in
            defer { state.connected = false }
            return state.connected
        }
        if changed { continuation.yield(.disconnected(reason)) }
    }

    /// From now on `publish` fails with `error` (nil: it works again).
    public func failPublishes(with error: MQTTError?) {
        state.withLock { $0.failPublishes = error }
    }

    @discardableResult
    public func publish(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) throws(MQTTError) -> Int32
    {
        let result = state.withLock { state -> Result<(Int32, Bool), MQTTError> in
            if let error = state.failPublishes { return .failure(error) }
            guard state.connected else { return .failure(MQTTError("publish to \(topic): not connected")) }
            let id = state.nextID
            state.nextID = state.nextID == 65_535 ? 1 : state.nextID + 1
            state.published.append(Publication(messageID: id, topic: topic, payload: payload, qos: qos, retain: retain))
            guard qos > 0 else { return .success((id, false)) }
            if state.acknowledgeAtOnce { return .success((id, true)) }
            state.unacknowledged.append(id)
            return .success((id, false))
        }
        switch result {
        case .failure(let error):
            throw error
        case .success(let (id, acknowledged)):
            if acknowledged { continuation.yield(.published(messageID: id)) }
            return id
        }
    }

    /// The broker acknowledges these message ids (all waiting ones when nil).
    public func acknowledge(_ ids: [Int32]? = nil) {
        let acknowledged = state.withLock { state -> [Int32] in
            let chosen = ids ?? state.unacknowledged
            state.unacknowledged.removeAll { chosen.contains($0) }
            return chosen
        }
        for id in acknowledged { continuation.yield(.published(messageID: id)) }
    }

    /// A message arrives on a subscribed topic.
    public func deliver(topic: String, payload: [UInt8]) {
        continuation.yield(.message(topic: topic, payload: payload))
    }

    public func stop() {
        let wasConnected = state.withLock { state -> Bool in
            defer {
                state.stopped = true
                state.connected = false
            }
            return state.connected
        }
        if wasConnected { continuation.yield(.disconnected(nil)) }
        continuation.finish()
    }

    public func abandon() {
        let wasConnected = state.withLock { state -> Bool in
            defer {
                state.stopped = true
                state.connected = false
            }
            return state.connected
        }
        if wasConnected, let will {
            state.withLock {
                $0.published.append(
                    Publication(messageID: 0, topic: will.topic, payload: will.payload, qos: 1, retain: true))
            }
        }
        continuation.finish()
    }
}
