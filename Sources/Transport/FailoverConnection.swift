import Clocks
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A connection to the first of several brokers that answers (`mqtt.servers`). It holds one
/// broker at a time: when the current one has been unreachable for `failoverAfter`, it leaves
/// it for the next in the list (round the list); while on any but the first, it checks every
/// `failbackInterval` whether the first answers again and, if so, goes back to it.
///
/// Leaving a broker that still answers (going back to the first), it publishes the OFFLINE
/// state there, retained, before saying goodbye, so that each broker's retained state stays
/// right; a broker that went away publishes the last will itself when it notices. The events
/// of the broker left behind end with a `.disconnected`; those of the next follow. A
/// publisher that sees `brokerAddress` change at a `.connected` knows the new broker holds
/// nothing of what was in flight on the old one (see `OutboxPublisher`).
public final class FailoverConnection: MQTTConnection {
    /// Makes a fresh connection to a broker of the list (a connection, once stopped, does not
    /// start again).
    public typealias Factory = @Sendable () throws(MQTTError) -> any MQTTConnection

    public struct Broker: Sendable {
        public var address: String
        public var make: Factory
        /// Whether the broker answers at all (a TCP connection to its port, for the agent);
        /// called on the connection's own thread, never on Swift's cooperative pool.
        public var answers: @Sendable () -> Bool

        public init(address: String, make: @escaping Factory, answers: @escaping @Sendable () -> Bool) {
            self.address = address
            self.make = make
            self.answers = answers
        }
    }

    private struct State {
        var index = 0
        var current: (any MQTTConnection)?
        /// Bumped at every move: events of a connection left behind are dropped.
        var generation = 0
        var connected = false
        /// Since when the current broker has not been connected (monotonic nanoseconds).
        var unreachableSince: UInt64 = 0
        var lastFailbackCheck: UInt64 = 0
        var stopped = false
        /// The OFFLINE message published before leaving, waiting for its PUBACK.
        var goodbyeID: Int32?
        var goodbyeAcknowledged = false
        var moves = 0
    }

    public let brokers: [Broker]
    public let failoverAfter: Duration
    public let failbackInterval: Duration
    /// The retained OFFLINE state, published on a broker before leaving it while it answers.
    private let offline: (topic: String, payload: [UInt8])?
    private let logger: Logger
    private let state = Mutex(State())
    public let events: AsyncStream<MQTTEvent>
    private let continuation: AsyncStream<MQTTEvent>.Continuation

    public init(
        brokers: [Broker], failoverAfter: Duration, failbackInterval: Duration,
        offline: (topic: String, payload: [UInt8])?, logger: Logger
    ) {
        precondition(!brokers.isEmpty, "a failover connection needs at least one broker")
        self.brokers = brokers
        self.failoverAfter = failoverAfter
        self.failbackInterval = failbackInterval
        self.offline = offline
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: MQTTEvent.self)
    }

    /// The broker in use now.
    public var brokerAddress: String { brokers[state.withLock { $0.index }].address }

    /// Which broker of the list is in use (0: the first).
    public var currentIndex: Int { state.withLock { $0.index } }

    /// How many times the connection moved from one broker to another.
    public var moves: Int { state.withLock { $0.moves } }

    /// A new connection at every move: what was in flight on the last one is not on this one.
    public var session: Int { state.withLock { $0.generation } }

    public var isConnected: Bool {
        state.withLock { $0.connected && $0.current?.isConnected == true }
    }

    /// Connects to the first broker, and watches the connection from a thread of its own: the
    /// moves stop clients, wait for a goodbye's PUBACK and probe the first broker, all of which
    /// block, so none of it runs on Swift's cooperative pool.
    public func start() throws(MQTTError) {
        try connect(to: 0)
        guard brokers.count > 1 else { return }
        do {
            let watcher = try DedicatedThread(name: "mqtt-failover") { [self] in
                while !state.withLock({ $0.stopped }) {
                    usleep(200_000)
                    supervise()
                }
            }
            // It ends by itself once stopped; nobody waits for it.
            watcher.detach()
        } catch {
            throw MQTTError("cannot start the failover thread: \(error)")
        }
    }

    @discardableResult
    public func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool) throws(MQTTError) -> Int32 {
        guard let current = state.withLock({ $0.current }) else {
            throw MQTTError("publish to \(topic): not connected")
        }
        return try current.publish(topic: topic, payload: payload, qos: qos, retain: retain)
    }

    public func stop() {
        finish { $0.stop() }
    }

    public func abandon() {
        finish { $0.abandon() }
    }

    private func finish(_ end: (any MQTTConnection) -> Void) {
        let (current, wasConnected) = state.withLock { state -> ((any MQTTConnection)?, Bool) in
            state.stopped = true
            state.generation += 1
            defer {
                state.current = nil
                state.connected = false
            }
            return (state.current, state.connected)
        }
        if let current { end(current) }
        if wasConnected { continuation.yield(.disconnected(nil)) }
        continuation.finish()
    }

    /// Makes and starts a connection to broker `index`, and forwards its events while it is
    /// the current one. A broker whose client cannot be made counts as unreachable.
    private func connect(to index: Int) throws(MQTTError) {
        let connection: any MQTTConnection
        do {
            connection = try brokers[index].make()
        } catch {
            state.withLock {
                $0.index = index
                $0.unreachableSince = monotonicNanoseconds()
            }
            throw error
        }
        let generation = state.withLock { state -> Int? in
            guard !state.stopped else { return nil }
            state.index = index
            state.current = connection
            state.connected = false
            state.unreachableSince = monotonicNanoseconds()
            state.lastFailbackCheck = monotonicNanoseconds()
            state.goodbyeID = nil
            state.goodbyeAcknowledged = false
            return state.generation
        }
        guard let generation else {
            connection.stop()
            return
        }
        Task { [weak self] in
            for await event in connection.events {
                guard let self, self.forward(event, generation: generation) else { return }
            }
        }
        try connection.start()
    }

    /// Passes an event on if its connection is still the current one; false when it is not.
    /// The check and the hand-over happen under one lock, so that nothing of a connection left
    /// behind follows a move's `.disconnected`.
    private func forward(_ event: MQTTEvent, generation: Int) -> Bool {
        state.withLock { state -> Bool in
            guard state.generation == generation else { return false }
            switch event {
            case .connected:
                state.connected = true
            case .disconnected:
                if state.connected { state.unreachableSince = monotonicNanoseconds() }
                state.connected = false
            case .published(let messageID) where messageID == state.goodbyeID:
                // The OFFLINE published before leaving: the publisher above knows nothing of it.
                state.goodbyeAcknowledged = true
                return true
            default:
                break
            }
            continuation.yield(event)
            return true
        }
    }

    /// Moves on from a broker unreachable too long; goes back to the first when it answers.
    private func supervise() {
        let now = monotonicNanoseconds()
        let (index, connected, unreachableSince, lastCheck, stopped) = state.withLock {
            ($0.index, $0.connected, $0.unreachableSince, $0.lastFailbackCheck, $0.stopped)
        }
        guard !stopped else { return }
        if !connected, now >= unreachableSince + UInt64(Nanoseconds.of(failoverAfter)) {
            let next = (index + 1) % brokers.count
            let seconds = failoverAfter.components.seconds
            logger.warning(
                "broker \(brokers[index].address) unreachable for \(seconds) s: moving to \(brokers[next].address)")
            move(to: next, sayingGoodbye: false)
        } else if connected, index != 0, now >= lastCheck + UInt64(Nanoseconds.of(failbackInterval)) {
            state.withLock { $0.lastFailbackCheck = now }
            guard brokers[0].answers() else { return }
            logger.info("broker \(brokers[0].address) answers again: moving back to it from \(brokers[index].address)")
            move(to: 0, sayingGoodbye: true)
        }
    }

    /// Leaves the current broker (publishing OFFLINE there first when it answers) for `index`.
    private func move(to index: Int, sayingGoodbye: Bool) {
        if sayingGoodbye, let offline, let current = state.withLock({ $0.current }),
            let id = try? current.publish(topic: offline.topic, payload: offline.payload, qos: 1, retain: true)
        {
            state.withLock { $0.goodbyeID = id }
            let deadline = monotonicNanoseconds() + UInt64(Nanoseconds.of(MQTTTransport.goodbyePatience))
            while monotonicNanoseconds() < deadline, !state.withLock({ $0.goodbyeAcknowledged }) {
                usleep(10_000)
            }
        }
        let left = state.withLock { state -> (connection: (any MQTTConnection)?, connected: Bool)? in
            guard !state.stopped else { return nil }
            state.generation += 1
            state.moves += 1
            defer {
                state.current = nil
                state.connected = false
            }
            if state.connected { continuation.yield(.disconnected("moving to \(brokers[index].address)")) }
            return (state.current, state.connected)
        }
        guard let left else { return }
        if let connection = left.connection {
            // Stopping a client joins its network thread, which may sit in a connect to a broker
            // that drops packets: a thread of its own waits for that.
            if let retiring = try? DedicatedThread(name: "mqtt-retire", { connection.stop() }) {
                retiring.detach()
            } else {
                connection.stop()
            }
        }
        do {
            try connect(to: index)
        } catch {
            // Counted as unreachable from now (connect says so): the next move comes after
            // `failoverAfter`.
            logger.error("cannot make a connection to \(brokers[index].address): \(error.message)")
        }
    }
}

/// Whether something accepts TCP connections at `host`:`port` within `timeout`: how the agent
/// asks whether the first broker is back before leaving the one it has. It blocks: call it from
/// a thread of its own.
public func acceptsConnections(host: String, port: Int, timeout: Duration = .seconds(3)) -> Bool {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &list) == 0, let list else { return false }
    defer { freeaddrinfo(list) }
    let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
    var entry: UnsafeMutablePointer<addrinfo>? = list
    while let address = entry {
        defer { entry = address.pointee.ai_next }
        let fd = socket(address.pointee.ai_family, address.pointee.ai_socktype | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { continue }
        defer { close(fd) }
        if connect(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 { return true }
        guard errno == EINPROGRESS else { continue }
        var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&ready, 1, milliseconds) == 1 else { continue }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error == 0 { return true }
    }
    return false
}
