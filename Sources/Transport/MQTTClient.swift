import CMosquitto
import Clocks
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Where and how to connect.
public struct MQTTSettings: Sendable {
    public var host: String
    public var port: Int
    public var clientID: String
    /// MQTT 3.1.1 (4) or 5.
    public var protocolVersion: Int
    public var keepaliveSeconds: Int
    public var username: String?
    public var password: String?
    /// TLS when a CA file is given: the broker's certificate must chain to it.
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?
    /// The last will: published by the broker, retained, if the connection drops without a goodbye.
    public var will: (topic: String, payload: [UInt8])?
    /// QoS 1 messages libmosquitto keeps in flight at once.
    public var maximumInFlight: Int
    /// Reconnect delays: the first, and the cap; doubling between them, with jitter.
    public var reconnectDelaySeconds: Int
    public var reconnectDelayMaximumSeconds: Int
    /// A clean session (the default); a persistent one keeps QoS 1 messages queued at the
    /// broker while the client is away.
    public var cleanSession: Bool = true

    /// The broker as a person names it: `mqtt://host:port`, or `mqtts://host:port` over TLS.
    public var brokerAddress: String {
        "\(caFile == nil ? "mqtt" : "mqtts")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    public init(
        host: String, port: Int, clientID: String, protocolVersion: Int = 4, keepaliveSeconds: Int = 30,
        username: String? = nil, password: String? = nil, caFile: String? = nil, certificateFile: String? = nil,
        keyFile: String? = nil,
        will: (topic: String, payload: [UInt8])? = nil, maximumInFlight: Int = 100,
        reconnectDelaySeconds: Int = 1, reconnectDelayMaximumSeconds: Int = 30
    ) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.protocolVersion = protocolVersion
        self.keepaliveSeconds = keepaliveSeconds
        self.username = username
        self.password = password
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.will = will
        self.maximumInFlight = maximumInFlight
        self.reconnectDelaySeconds = reconnectDelaySeconds
        self.reconnectDelayMaximumSeconds = reconnectDelayMaximumSeconds
    }
}

/// What the connection reports, in order.
public enum MQTTEvent: Sendable, Equatable {
    /// Connected (again): subscriptions are renewed, the caller publishes its ONLINE state.
    case connected
    /// Refused by the broker (bad credentials, not authorised …) or a transport failure.
    case connectionFailed(String)
    /// The connection ended: the reason, or nil when this client asked for it (a clean stop).
    case disconnected(String?)
    /// The broker acknowledged the QoS 1 publish with this message id.
    case published(messageID: Int32)
    case message(topic: String, payload: [UInt8])
    /// A message larger than `MQTTClient.maximumIncomingPayload`: not copied, only its size.
    case oversizedMessage(topic: String, size: Int)
}

public struct MQTTError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// libmosquitto's error code, when it gave one.
    public var code: Int32?
    public init(_ message: String, code: Int32? = nil) {
        self.message = message
        self.code = code
    }
    public var description: String { message }

    /// An error that retrying cannot cure: the payload or packet is too large.
    public var isPermanent: Bool {
        code == MOSQ_ERR_PAYLOAD_SIZE.rawValue || code == MOSQ_ERR_OVERSIZE_PACKET.rawValue
            || code == MOSQ_ERR_INVAL.rawValue
    }
}

/// An MQTT client over libmosquitto. libmosquitto runs its own network thread
/// (`mosquitto_loop_start`), reconnects with a capped exponential backoff (jittered here on
/// every disconnect) and calls back on that thread; the callbacks touch nothing but a small
/// thread-safe bridge that hands every event to an `AsyncStream`.
public final class MQTTClient: Sendable {
    /// The largest message payload taken from the broker: a downlink is at most
    /// `DownlinkHandler.maximumSize`, a signed command far less. MQTT allows 256 MB; a larger
    /// one is refused by its size, never copied or queued.
    public static let maximumIncomingPayload = 16_384

    public let events: AsyncStream<MQTTEvent>
    private let bridge: Bridge
    private let handle: Handle
    private let settings: MQTTSettings
    private let subscriptions: [String]
    private let stopping = Flag()
    private let connector = Mutex<DedicatedThread?>(nil)

    /// A flag shared with the connection thread.
    final class Flag: Sendable {
        private let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    /// The C handle; libmosquitto's publish, subscribe and disconnect are thread-safe once the
    /// network thread runs.
    private final class Handle: @unchecked Sendable {
        let mosq: OpaquePointer
        init(_ mosq: OpaquePointer) { self.mosq = mosq }
    }

    /// Everything the C callbacks may touch.
    final class Bridge: Sendable {
        let continuation: AsyncStream<MQTTEvent>.Continuation
        let subscriptions: [String]
        let settings: MQTTSettings
        let connected = Mutex(false)

        init(continuation: AsyncStream<MQTTEvent>.Continuation, subscriptions: [String], settings: MQTTSettings) {
            self.continuation = continuation
            self.subscriptions = subscriptions
            self.settings = settings
        }
    }

    private static let libraryInitialised: Bool = {
        mosquitto_lib_init()
        return true
    }()

    /// Creates the client; `subscriptions` are (re)subscribed at QoS 1 on every connect.
    public init(settings: MQTTSettings, subscriptions: [String]) throws(MQTTError) {
        _ = Self.libraryInitialised
        self.settings = settings
        self.subscriptions = subscriptions
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTEvent.self)
        events = stream
        bridge = Bridge(continuation: continuation, subscriptions: subscriptions, settings: settings)
        guard
            let mosq = mosquitto_new(
                settings.clientID, settings.cleanSession, Unmanaged.passUnretained(bridge).toOpaque())
        else {
            throw MQTTError("cannot create an MQTT client")
        }
        handle = Handle(mosq)
        try configure()
    }

    deinit {
        stopping.set()
        connector.withLock { $0 }?.join()
        // Not forced: cancelling the network thread inside a callback would unwind through Swift.
        mosquitto_disconnect(handle.mosq)
        mosquitto_loop_stop(handle.mosq, false)
        mosquitto_destroy(handle.mosq)
        bridge.continuation.finish()
    }

    private func configure() throws(MQTTError) {
        let mosq = handle.mosq
        try check(
            mosquitto_int_option(
                mosq, MOSQ_OPT_PROTOCOL_VERSION,
                Int32(settings.protocolVersion == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311)), "protocol version")
        try check(
            mosquitto_max_inflight_messages_set(mosq, UInt32(max(settings.maximumInFlight, 1))), "in-flight limit")
        if let username = settings.username {
            try check(mosquitto_username_pw_set(mosq, username, settings.password), "username")
        }
        if let caFile = settings.caFile {
            try check(
                mosquitto_tls_set(mosq, caFile, nil, settings.certificateFile, settings.keyFile, nil),
                "TLS (CA \(caFile))")
        }
        if let will = settings.will {
            try check(
                will.payload.withUnsafeBytes {
                    mosquitto_will_set(mosq, will.topic, Int32($0.count), $0.baseAddress, 1, true)
                }, "last will")
        }
        try check(
            mosquitto_reconnect_delay_set(
                mosq, UInt32(settings.reconnectDelaySeconds), UInt32(settings.reconnectDelayMaximumSeconds), true),
            "reconnect delay")
        mosquitto_connect_callback_set(mosq) { mosq, context, code in
            let bridge = Unmanaged<Bridge>.fromOpaque(context!).takeUnretainedValue()
            guard code == 0 else {
                bridge.continuation.yield(.connectionFailed(String(cString: mosquitto_connack_string(code))))
                return
            }
            bridge.connected.withLock { $0 = true }
            for topic in bridge.subscriptions {
                mosquitto_subscribe(mosq, nil, topic, 1)
            }
            bridge.continuation.yield(.connected)
        }
        mosquitto_disconnect_callback_set(mosq) { mosq, context, code in
            let bridge = Unmanaged<Bridge>.fromOpaque(context!).takeUnretainedValue()
            bridge.connected.withLock { $0 = false }
            // Jitter: the next attempts start from a random fraction of the base delay, so a
            // fleet of hotspots does not reconnect in step after a broker restart.
            let base = max(bridge.settings.reconnectDelaySeconds, 1)
            mosquitto_reconnect_delay_set(
                mosq, UInt32.random(in: 1...UInt32(base * 2)), UInt32(bridge.settings.reconnectDelayMaximumSeconds),
                true)
            bridge.continuation.yield(.disconnected(code == 0 ? nil : String(cString: mosquitto_strerror(code))))
        }
        mosquitto_publish_callback_set(mosq) { _, context, messageID in
            let bridge = Unmanaged<Bridge>.fromOpaque(context!).takeUnretainedValue()
            bridge.continuation.yield(.published(messageID: messageID))
        }
        mosquitto_message_callback_set(mosq) { _, context, message in
            guard let context, let message else { return }
            let bridge = Unmanaged<Bridge>.fromOpaque(context).takeUnretainedValue()
            let topic = String(cString: message.pointee.topic)
            let count = Int(message.pointee.payloadlen)
            guard count <= MQTTClient.maximumIncomingPayload else {
                bridge.continuation.yield(.oversizedMessage(topic: topic, size: count))
                return
            }
            let payload =
                count > 0 && message.pointee.payload != nil
                ? Array(UnsafeRawBufferPointer(start: message.pointee.payload, count: count))
                : []
            bridge.continuation.yield(.message(topic: topic, payload: payload))
        }
    }

    /// Connects in the background and keeps the connection: until a first connection attempt
    /// gets under way, a thread of its own retries with the capped, jittered backoff; from then
    /// on libmosquitto's network thread reconnects by itself.
    public func start() throws(MQTTError) {
        let handle = self.handle
        let bridge = self.bridge
        let settings = self.settings
        let stopping = self.stopping
        let thread = try? DedicatedThread(name: "mqtt-connect") {
            var delay = Double(max(settings.reconnectDelaySeconds, 1))
            while !stopping.isSet {
                let code = mosquitto_connect_async(
                    handle.mosq, settings.host, Int32(settings.port), Int32(settings.keepaliveSeconds))
                if code == MOSQ_ERR_SUCCESS.rawValue {
                    let started = mosquitto_loop_start(handle.mosq)
                    if started != MOSQ_ERR_SUCCESS.rawValue {
                        bridge.continuation.yield(.connectionFailed("network thread: \(MQTTClient.describe(started))"))
                    }
                    return
                }
                bridge.continuation.yield(.connectionFailed(MQTTClient.describe(code)))
                // Sleep in short steps so that stop() is not held up.
                let wait = delay * Double.random(in: 0.5...1.5)
                var slept = 0.0
                while slept < wait && !stopping.isSet {
                    usleep(50_000)
                    slept += 0.05
                }
                delay = min(delay * 2, Double(max(settings.reconnectDelayMaximumSeconds, 1)))
            }
        }
        guard let thread else { throw MQTTError("cannot start the connection thread") }
        connector.withLock { $0 = thread }
    }

    /// Says goodbye (no last will) and stops the network thread.
    public func stop() {
        stopping.set()
        connector.withLock { $0 }?.join()
        mosquitto_disconnect(handle.mosq)
        mosquitto_loop_stop(handle.mosq, false)
        bridge.continuation.finish()
    }

    /// Drops the connection without a goodbye, as a crash would: the broker publishes the last
    /// will. For a second termination signal, when there is no time for anything else.
    public func abandon() {
        stopping.set()
        connector.withLock { $0 }?.join()
        mosquitto_loop_stop(handle.mosq, true)
        let socket = mosquitto_socket(handle.mosq)
        if socket >= 0 { shutdown(socket, Int32(SHUT_RDWR)) }
        bridge.continuation.finish()
    }

    /// The broker this client connects to (`mqtt://host:port` or `mqtts://…`).
    public var brokerAddress: String {
        settings.brokerAddress
    }

    public var isConnected: Bool {
        bridge.connected.withLock { $0 }
    }

    /// Publishes; returns the message id its PUBACK will carry (QoS 1).
    @discardableResult
    public func publish(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) throws(MQTTError) -> Int32
    {
        var messageID: Int32 = 0
        let code = payload.withUnsafeBytes {
            mosquitto_publish(handle.mosq, &messageID, topic, Int32($0.count), $0.baseAddress, Int32(qos), retain)
        }
        guard code == MOSQ_ERR_SUCCESS.rawValue else {
            throw MQTTError("publish to \(topic): \(Self.describe(code))", code: code)
        }
        return messageID
    }

    private func check(_ code: Int32, _ what: String) throws(MQTTError) {
        guard code == MOSQ_ERR_SUCCESS.rawValue else { throw MQTTError("\(what): \(Self.describe(code))") }
    }

    static func describe(_ code: Int32) -> String {
        String(cString: mosquitto_strerror(code))
    }
}
