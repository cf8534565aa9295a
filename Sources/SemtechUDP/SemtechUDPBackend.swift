import Clocks
import HAL
import LoRaPHY
import Logging
import Radio
import Synchronization
import Wire

/// The `semtech_udp` radio backend: a server for Semtech's packet forwarder (`lora_pkt_fwd`)
/// in front of an SX1301/SX1302/SX1303 concentrator, protocol versions 1 and 2.
///
/// Datagrams are read on a thread of their own and answered as soon as they are handled
/// (PUSH_ACK, PULL_ACK), the token echoed byte for byte. Each forwarder is known by its gateway EUI; a downlink goes to
/// the forwarder that heard the uplink, at the address of its last PULL_DATA. A malformed
/// datagram or `rxpk` is counted, logged at notice level with its reason (at most a burst of
/// 20, then one a minute, the others counted in the next line) and dropped; it never holds up
/// the next one. An `rxpk` whose `size` disagrees with its `data` is taken by its data, and
/// the disagreement counted and logged once per forwarder.
public final class SemtechUDPBackend: Radio {
    public let frames: AsyncStream<RadioFrame>
    private let output: AsyncStream<RadioFrame>.Continuation
    private let bindAddress: String
    private let makePolicy: @Sendable () -> any TransmitPolicy
    private let logger: Logger
    private let acknowledgementTimeout: Duration
    private let trusted: [TrustedForwarder]
    /// The forwarder's concentrator senses the channel before it transmits (`lbt` in its
    /// global_conf.json): where the rules require listen-before-talk, nothing is sent without.
    private let forwarderSensesChannel: Bool

    /// A forwarder named in `semtech_udp.forwarders`: its gateway EUI and, optionally, the host
    /// its datagrams must come from. Written "AA555A0000000001" or "AA555A0000000001@192.0.2.7".
    public struct TrustedForwarder: Sendable, Hashable, CustomStringConvertible {
        public var gateway: EUI64
        /// The source host (any port), as `SocketAddress.host` writes it; nil for any.
        public var host: String?

        public init(gateway: EUI64, host: String? = nil) {
            self.gateway = gateway
            self.host = host
        }

        /// Parses "EUI" or "EUI@host" (an IPv4 or IPv6 address, no port).
        public init?(_ text: String) {
            let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
            guard let gateway = EUI64(String(parts[0])) else { return nil }
            self.gateway = gateway
            if parts.count == 2 {
                // The host as the socket will write it, so that "::0001" matches "::1".
                let bare =
                    parts[1].hasPrefix("[") && parts[1].hasSuffix("]") ? parts[1].dropFirst().dropLast() : parts[1]
                guard let address = SocketAddress(bare.contains(":") ? "[\(bare)]:0" : "\(bare):0") else { return nil }
                host = address.host
            }
        }

        func admits(_ gateway: EUI64, from sender: SocketAddress) -> Bool {
            self.gateway == gateway && (host == nil || host == sender.host)
        }

        public var description: String {
            host.map { "\(gateway)@\($0)" } ?? "\(gateway)"
        }
    }

    /// A packet forwarder, as last heard from.
    public struct Forwarder: Sendable {
        public var gateway: EUI64
        public var version: UInt8
        /// Where downlinks go: the source of its last PULL_DATA.
        public var downlinkAddress: SocketAddress?
        public var lastSeenNanoseconds: UInt64
        /// Its concentrator counter at the last uplink, and when that arrived (monotonic).
        public var lastTimestamp: (value: UInt32, at: UInt64)?
        public var status: ForwarderStatus?
        /// Frames whose `size` disagreed with their `data` (taken by their data).
        public var sizeDisagreements = 0
        /// When it was first heard (monotonic): beacons go through the first one registered.
        public var firstSeenNanoseconds: UInt64 = 0
    }

    /// Counters beyond `RadioStatistics`.
    public struct Counters: Sendable, Equatable {
        public var datagrams = 0
        public var malformedDatagrams = 0
        public var malformedPackets = 0
        public var unsupportedPackets = 0
        /// Frames taken by their `data` although their `size` said otherwise.
        public var sizeDisagreements = 0
        /// Datagrams from a gateway EUI not tracked because `maximumForwarders` were, all active.
        public var forwardersRefused = 0
        /// Datagrams from a forwarder (EUI and source) that `semtech_udp.forwarders` does not name.
        public var forwardersNotListed = 0
        /// TX_ACKs that answer no PULL_RESP sent to their sender: late, or forged.
        public var unmatchedTxAcks = 0
        public var pushData = 0
        public var pullData = 0
        public var txAcks = 0
    }

    private struct State {
        var socket: UDPSocket?
        var thread: DedicatedThread?
        var forwarders: [EUI64: Forwarder] = [:]
        /// PULL_RESPs waiting for their TX_ACK: by token, with the forwarder and the address the
        /// PULL_RESP went to, which the TX_ACK must come from.
        var pending:
            [GWMP.Token: (gateway: EUI64, address: SocketAddress, continuation: CheckedContinuation<[UInt8]?, Never>)] =
                [:]
        /// The region's rules and the duty-cycle budget: the radio's, whichever forwarder (or
        /// gateway EUI, which anyone on the LAN may invent) a downlink goes through.
        var policy: (any TransmitPolicy)?
        /// The forwarder beacons went through last, to say when that changes.
        var beaconForwarder: EUI64?
        var stats = RadioStatistics()
        var counters = Counters()
        var running = false

        /// Whether datagrams of `gateway` are taken: a forwarder tracked already, or a new one
        /// while there is room. A full table makes room by forgetting forwarders silent for
        /// `forwarderSilence`; if all are active, the newcomer is refused (and counted).
        mutating func admit(_ gateway: EUI64, now: UInt64) -> Bool {
            if forwarders[gateway] != nil { return true }
            if forwarders.count >= SemtechUDPBackend.maximumForwarders {
                for (eui, forwarder) in forwarders
                where now &- forwarder.lastSeenNanoseconds > SemtechUDPBackend.forwarderSilence {
                    forwarders[eui] = nil
                }
            }
            guard forwarders.count < SemtechUDPBackend.maximumForwarders else {
                counters.forwardersRefused += 1
                return false
            }
            return true
        }
    }

    /// The most packet forwarders tracked at once: a concentrator has one, a site a handful.
    /// Each new gateway EUI would otherwise hold memory for good, and anyone on the LAN can
    /// invent EUIs.
    public static let maximumForwarders = 16
    /// A forwarder silent this long (a PULL_DATA comes every 10 s by default) may be forgotten
    /// to make room for another.
    public static let forwarderSilence: UInt64 = 120_000_000_000

    private let state = Mutex(State())
    private let stopping = Mutex(false)
    /// Refused datagrams and packets are logged within this budget; a forwarder that sends
    /// nothing but garbage must not fill the journal.
    private let refusalLog = RefusalLimiter(burst: 20, perSecond: 1.0 / 60)
    /// The same for forwarders announcing where their downlinks go.
    private let announcements = RefusalLimiter(burst: 20, perSecond: 1.0 / 60)

    /// `region` sets the rules downlinks are held to; `makePolicy`, when given, replaces them.
    /// There is one policy, and one duty-cycle budget, whatever the number of forwarders.
    /// `trusted`, when not empty, names the only forwarders whose datagrams are taken; the first
    /// of them that is ready sends beacons.
    public init(
        bind: String = "127.0.0.1:1700", region: Region, trusted: [TrustedForwarder] = [],
        forwarderSensesChannel: Bool = false,
        makePolicy: (@Sendable () -> any TransmitPolicy)? = nil,
        logger: Logger = Logger(label: "hotspotd.semtech-udp"), acknowledgementTimeout: Duration = .seconds(1),
        frameBuffer: Int = 1024
    ) {
        bindAddress = bind
        self.trusted = trusted
        self.forwarderSensesChannel = forwarderSensesChannel
        self.makePolicy = makePolicy ?? { RegionalTransmitPolicy(region: region) }
        self.logger = logger
        self.acknowledgementTimeout = acknowledgementTimeout
        (frames, output) = AsyncStream.makeStream(of: RadioFrame.self, bufferingPolicy: .bufferingOldest(frameBuffer))
    }

    /// The address the server is bound to (the port is the real one when 0 was asked for).
    public var localAddress: SocketAddress? {
        state.withLock { $0.socket?.localAddress }
    }

    public var forwarders: [Forwarder] {
        state.withLock { Array($0.forwarders.values).sorted { $0.gateway < $1.gateway } }
    }

    public var counters: Counters {
        state.withLock { $0.counters }
    }

    // MARK: Life cycle

    public func start() async throws(RadioError) {
        guard let address = SocketAddress(bindAddress) else {
            throw RadioError("semtech_udp.bind '\(bindAddress)' is not an address and port (such as 127.0.0.1:1700)")
        }
        let socket: UDPSocket
        do {
            socket = try UDPSocket(binding: address)
        } catch {
            throw RadioError(error.description)
        }
        stopping.withLock { $0 = false }
        let thread: DedicatedThread
        do {
            thread = try DedicatedThread(name: "semtech-udp") { [self] in receiveLoop(socket) }
        } catch {
            throw RadioError(error.message)
        }
        state.withLock {
            $0.socket = socket
            $0.thread = thread
            $0.running = true
            $0.stats.lastProgressNanoseconds = monotonicNanoseconds()
        }
        logger.info(
            "semtech_udp listening for packet forwarders",
            metadata: [
                "bind": "\(socket.localAddress)",
                "forwarders": "\(trusted.isEmpty ? "any" : trusted.map(\.description).joined(separator: ","))",
            ])
        if trusted.isEmpty, !socket.localAddress.isLoopback {
            logger.warning(
                """
                semtech_udp.bind is reachable from the network and semtech_udp.forwarders is empty: anyone who can \
                reach \(socket.localAddress) can send frames as a forwarder (with the RSSI, SNR and times they \
                like, which witness reports carry) and receive this hotspot's downlinks; name the forwarders in \
                semtech_udp.forwarders, or bind to 127.0.0.1
                """,
                metadata: ["bind": "\(socket.localAddress)"])
        }
    }

    public func stop() async {
        stopping.withLock { $0 = true }
        let (thread, pending) = state.withLock { state in
            defer {
                state.running = false
                state.thread = nil
                state.pending.removeAll()
            }
            return (state.thread, Array(state.pending.values))
        }
        thread?.join()
        for waiter in pending { waiter.continuation.resume(returning: nil) }
        state.withLock { $0.socket = nil }
        output.finish()
        sink.withLock { $0 }?.finish()
    }

    public func statistics() async -> RadioStatistics {
        state.withLock { $0.stats }
    }

    /// Where received frames go instead of `frames`, once `deliver(to:)` named it.
    private let sink = Mutex<(any FrameSink)?>(nil)

    public func deliver(to sink: any FrameSink) async {
        self.sink.withLock { $0 = sink }
        if stopping.withLock({ $0 }) { sink.finish() }
    }

    // MARK: Receiving

    /// Receives until stopped. Each turn (at least every 100 ms) is the backend's sign of life:
    /// a forwarder that falls silent is not something a restart of hotspotd would cure, a stuck
    /// receive thread is.
    private func receiveLoop(_ socket: UDPSocket) {
        while !stopping.withLock({ $0 }) {
            let received = socket.receive(timeoutMilliseconds: 100)
            state.withLock { $0.stats.lastProgressNanoseconds = monotonicNanoseconds() }
            guard let (datagram, sender) = received else { continue }
            handle(datagram, from: sender, socket: socket)
        }
    }

    /// Handles one datagram. Internal so tests can feed datagrams without a network.
    func handle(_ datagram: [UInt8], from sender: SocketAddress, socket: UDPSocket?) {
        state.withLock { $0.counters.datagrams += 1 }
        let packet: GWMP.Upstream
        do {
            packet = try GWMP.parse(datagram)
        } catch {
            malformed("\(error)", from: sender)
            return
        }
        let now = monotonicNanoseconds()
        guard isTrusted(packet.gateway, from: sender) else {
            state.withLock { $0.counters.forwardersNotListed += 1 }
            refused(
                "datagram refused: the forwarder is not in semtech_udp.forwarders",
                metadata: ["forwarder_eui": "\(packet.gateway)", "from": "\(sender)"])
            return
        }
        switch packet {
        case .pullData(let version, let token, let gateway):
            let (admitted, moved) = state.withLock { state -> (Bool, Bool) in
                state.counters.pullData += 1
                guard state.admit(gateway, now: now) else { return (false, false) }
                var forwarder =
                    state.forwarders[gateway]
                    ?? Forwarder(
                        gateway: gateway, version: version, lastSeenNanoseconds: now, firstSeenNanoseconds: now)
                let moved = forwarder.downlinkAddress != sender
                forwarder.version = version
                forwarder.downlinkAddress = sender
                forwarder.lastSeenNanoseconds = now
                state.forwarders[gateway] = forwarder
                return (true, moved)
            }
            guard admitted else {
                refused(
                    "packet forwarder refused: \(Self.maximumForwarders) active forwarders are tracked already",
                    metadata: ["forwarder_eui": "\(gateway)", "from": "\(sender)"])
                return
            }
            socket?.send(GWMP.acknowledgement(.pullAck, version: version, token: token), to: sender)
            if moved {
                // Within the budget: an address that keeps changing is someone else's doing.
                let (report, unreported) = announcements.admit()
                if report {
                    logger.info(
                        "packet forwarder ready for downlinks",
                        metadata: [
                            "forwarder_eui": "\(gateway)", "address": "\(sender)", "protocol": "\(version)",
                        ].merging(unreported > 0 ? ["not_logged_before": "\(unreported)"] : [:]) { $1 })
                }
            }

        case .pushData(let version, let token, let gateway, let json):
            // Acknowledged once its frames are handed on (well inside the forwarder's 100 ms).
            handlePushData(json, version: version, gateway: gateway, from: sender, at: now)
            socket?.send(GWMP.acknowledgement(.pushAck, version: version, token: token), to: sender)

        case .txAck(_, let token, let gateway, let json):
            // Only the forwarder the PULL_RESP went to, from that address, answers for it: anyone
            // else on the LAN could otherwise report a transmission failed (or done).
            let waiter = state.withLock { state -> CheckedContinuation<[UInt8]?, Never>? in
                state.counters.txAcks += 1
                guard let pending = state.pending[token], pending.gateway == gateway, pending.address == sender else {
                    state.counters.unmatchedTxAcks += 1
                    return nil
                }
                state.pending[token] = nil
                return pending.continuation
            }
            if let waiter {
                waiter.resume(returning: json)
            } else {
                refused(
                    "TX_ACK refused: it answers no PULL_RESP sent to its sender (late, or forged)",
                    metadata: ["forwarder_eui": "\(gateway)", "from": "\(sender)"])
            }
        }
    }

    private func handlePushData(
        _ json: [UInt8], version: UInt8, gateway: EUI64, from sender: SocketAddress, at now: UInt64
    ) {
        guard state.withLock({ $0.admit(gateway, now: now) }) else {
            refused(
                "packet forwarder refused: \(Self.maximumForwarders) active forwarders are tracked already",
                metadata: ["forwarder_eui": "\(gateway)", "from": "\(sender)"])
            return
        }
        let contents: PushDataContents
        do {
            contents = try PushDataContents(json: json, gateway: gateway)
        } catch {
            malformed("\(error)", from: sender)
            return
        }
        for problem in contents.malformed {
            refused("rxpk refused: \(problem)", metadata: ["forwarder_eui": "\(gateway)", "from": "\(sender)"])
        }
        for problem in contents.unsupported {
            logger.debug("rxpk skipped: \(problem)", metadata: ["forwarder_eui": "\(gateway)"])
        }
        let frames = contents.frames
        let malformedPackets = contents.malformed.count
        let unsupported = contents.unsupported.count
        let status = contents.status
        var dropped = 0
        let sink = self.sink.withLock { $0 }
        for frame in frames {
            if let sink {
                if !sink.put(frame) { dropped += 1 }
            } else if case .dropped = output.yield(frame) {
                dropped += 1
            }
        }
        let firstDisagreement = state.withLock { state -> Bool in
            state.counters.pushData += 1
            state.counters.malformedPackets += malformedPackets
            state.counters.unsupportedPackets += unsupported
            state.stats.malformed += malformedPackets
            state.stats.framesReceived += frames.count
            state.stats.crcErrors += frames.filter { $0.crc == .bad }.count
            state.stats.framesDropped += dropped
            if !frames.isEmpty { state.stats.lastProgressNanoseconds = now }
            var forwarder =
                state.forwarders[gateway]
                ?? Forwarder(gateway: gateway, version: version, lastSeenNanoseconds: now, firstSeenNanoseconds: now)
            forwarder.version = version
            forwarder.lastSeenNanoseconds = now
            if let latest = frames.last?.timestamp {
                forwarder.lastTimestamp = (latest, now)
            }
            if let status { forwarder.status = status }
            let first = contents.sizeDisagreements > 0 && forwarder.sizeDisagreements == 0
            state.counters.sizeDisagreements += contents.sizeDisagreements
            forwarder.sizeDisagreements += contents.sizeDisagreements
            state.forwarders[gateway] = forwarder
            return first
        }
        // Once per forwarder, and within the refusal budget: the EUI is the sender's to choose.
        if firstDisagreement, let (size, length) = contents.firstSizeDisagreement {
            refused(
                """
                packet forwarder writes an rxpk size that disagrees with its data (size \(size), data \(length) \
                bytes): frames are taken by their data
                """,
                metadata: ["forwarder_eui": "\(gateway)", "from": "\(sender)"])
        }
    }

    /// Whether `semtech_udp.forwarders` (when set) names this forwarder at this source.
    private func isTrusted(_ gateway: EUI64, from sender: SocketAddress) -> Bool {
        trusted.isEmpty || trusted.contains { $0.admits(gateway, from: sender) }
    }

    /// Logs a refusal at notice level within `refusalLog`'s budget.
    private func refused(_ message: String, metadata: Logger.Metadata) {
        let (report, unreported) = refusalLog.admit()
        guard report else { return }
        var metadata = metadata
        if unreported > 0 { metadata["not_logged_before"] = "\(unreported)" }
        logger.notice("\(message)", metadata: metadata)
    }

    private func malformed(_ reason: String, from sender: SocketAddress) {
        state.withLock {
            $0.counters.malformedDatagrams += 1
            $0.stats.malformed += 1
        }
        refused("datagram refused: \(reason)", metadata: ["from": "\(sender)"])
    }

    // MARK: Transmitting

    public func transmit(_ request: TransmitRequest) async -> TransmitOutcome {
        let target = state.withLock { state -> (Forwarder, UDPSocket, any TransmitPolicy)? in
            guard state.running, let socket = state.socket else { return nil }
            let ready = state.forwarders.values.filter { $0.downlinkAddress != nil }
            // A downlink goes back through the forwarder that heard its uplink; a frame tied to
            // none (a beacon) through the first of semtech_udp.forwarders that is ready, or,
            // with none listed, the forwarder registered first, which stays the one as long as
            // it is there.
            let listed = trusted.lazy.compactMap { entry in ready.first { $0.gateway == entry.gateway } }.first
            let chosen =
                request.gatewayEUI.map { gateway in ready.first { $0.gateway == gateway } }
                ?? listed
                ?? ready.min { ($0.firstSeenNanoseconds, $0.gateway) < ($1.firstSeenNanoseconds, $1.gateway) }
            guard let forwarder = chosen else { return nil }
            if request.gatewayEUI == nil, state.beaconForwarder != forwarder.gateway {
                state.beaconForwarder = forwarder.gateway
                let rule = listed == nil ? "the first registered" : "the first of semtech_udp.forwarders that is ready"
                logger.info(
                    "frames for no forwarder in particular (beacons) go through \(rule)",
                    metadata: [
                        "forwarder_eui": "\(forwarder.gateway)", "forwarders": "\(ready.count)",
                    ])
            }
            let policy = state.policy ?? makePolicy()
            state.policy = policy
            return (forwarder, socket, policy)
        }
        guard let (forwarder, socket, policy) = target, let address = forwarder.downlinkAddress else {
            let which = request.gatewayEUI.map { "forwarder \($0)" } ?? "any forwarder"
            return refused(.failed("no PULL_DATA from \(which) yet: nowhere to send the downlink"))
        }
        if let rule = policy.listenBeforeTalk, !forwarderSensesChannel {
            return refused(
                .failed(
                    """
                    the region requires listen-before-talk (\(Int(rule.thresholdDBm)) dBm, \
                    \(rule.sensingMicroseconds / 1000) ms) and semtech_udp.listen_before_talk does not say the \
                    concentrator does it
                    """
                ))
        }
        let ticket: TransmitTicket
        switch policy.admit(request) {
        case .failure(let refusal): return refused(refusal.outcome)
        case .success(let admitted): ticket = admitted
        }
        let (outcome, handedOver) = await send(request, to: forwarder, at: address, through: socket)
        if outcome.isSent {
            state.withLock {
                $0.stats.framesTransmitted += 1
                $0.stats.lastProgressNanoseconds = monotonicNanoseconds()
            }
            return outcome
        }
        // Airtime goes back only when the forwarder was never given the frame. Once it was, a
        // TX_ACK's error (which a spoofed source can forge) or its absence does not show the
        // frame stayed off the air: the budget counts it as sent.
        if !handedOver { policy.cancel(ticket) }
        return refused(outcome)
    }

    /// Sends the PULL_RESP and waits for its TX_ACK; whether the forwarder was given the frame.
    private func send(
        _ request: TransmitRequest, to forwarder: Forwarder, at address: SocketAddress, through socket: UDPSocket
    ) async -> (TransmitOutcome, handedOver: Bool) {
        let txpk = Downlink.txpk(request)
        guard forwarder.version >= 2 else {
            // Version 1 has no token and no TX_ACK: the forwarder took it, or not; nobody says.
            let sent = socket.send(GWMP.pullResponse(version: 1, token: GWMP.Token(0, 0), txpk: txpk), to: address)
            return sent ? (.sent(powerDBm: nil), true) : (.failed("sending PULL_RESP to \(address) failed"), false)
        }
        let handedOver = Mutex(false)
        let acknowledgement: [UInt8]? = await withCheckedContinuation { continuation in
            // A fresh token, chosen and registered under one lock.
            let token = state.withLock { state in
                var token: GWMP.Token
                repeat {
                    token = GWMP.Token(UInt8.random(in: 0...255), UInt8.random(in: 0...255))
                } while state.pending[token] != nil
                state.pending[token] = (forwarder.gateway, address, continuation)
                return token
            }
            if !socket.send(GWMP.pullResponse(version: forwarder.version, token: token, txpk: txpk), to: address) {
                resumePending(token, with: nil)
                return
            }
            handedOver.withLock { $0 = true }
            let timeout = acknowledgementTimeout
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                self?.resumePending(token, with: nil)
            }
        }
        let given = handedOver.withLock { $0 }
        guard let acknowledgement else {
            return (
                .failed(
                    given
                        ? "no TX_ACK from forwarder \(forwarder.gateway) within \(acknowledgementTimeout)"
                        : "sending PULL_RESP to \(address) failed"), given
            )
        }
        return (Downlink.outcome(ofAcknowledgement: acknowledgement, requestedPowerDBm: request.powerDBm), given)
    }

    private func resumePending(_ token: GWMP.Token, with value: [UInt8]?) {
        let waiter = state.withLock { state in
            defer { state.pending[token] = nil }
            return state.pending[token]?.continuation
        }
        waiter?.resume(returning: value)
    }

    private func refused(_ outcome: TransmitOutcome) -> TransmitOutcome {
        state.withLock { $0.stats.transmissionsRefused += 1 }
        return outcome
    }

    /// The concentrator counter of the most recently heard forwarder, advanced by the time
    /// since: good enough to schedule against, as every downlink time is relative to an uplink's.
    public func currentTimestamp() async -> UInt32 {
        currentTimestamp(of: nil)
    }

    /// The counter of one forwarder's concentrator (each has its own), or of the most recently
    /// heard one; the local microsecond counter when none has sent an uplink yet.
    public func currentTimestamp(of gateway: EUI64?) -> UInt32 {
        state.withLock { state in
            let now = monotonicNanoseconds()
            let candidates = gateway.map { state.forwarders[$0].map { [$0] } ?? [] } ?? Array(state.forwarders.values)
            guard let latest = candidates.compactMap(\.lastTimestamp).max(by: { $0.at < $1.at }) else {
                return microsecondCounter()
            }
            let elapsed = now > latest.at ? now - latest.at : 0
            return latest.value &+ UInt32(truncatingIfNeeded: elapsed / 1000)
        }
    }
}
