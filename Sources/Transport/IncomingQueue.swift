import Synchronization

/// A message from the broker, as the client took it.
public enum IncomingMessage: Sendable, Equatable {
    case payload([UInt8])
    /// Larger than `MQTTClient.maximumIncomingPayload`: refused by its size, never read.
    case oversized(size: Int)

    var byteCount: Int {
        switch self {
        case .payload(let bytes): bytes.count
        case .oversized: 0
        }
    }
}

/// Messages from the broker waiting for their handler, bounded in bytes and in count: whoever
/// may publish can send faster than the radio transmits or the store commits, and MQTT allows
/// 256 MB a message. When full, a newcomer is dropped and counted; what waits keeps its place.
/// One consumer (`drain`), any number of producers (`put`, from the MQTT client's events).
final class IncomingQueue: Sendable {
    private struct State {
        var items: [(topic: String, message: IncomingMessage)] = []
        var head = 0
        var bytes = 0
        var dropped = 0
        var finished = false
    }

    let maximumBytes: Int
    let maximumCount: Int
    private let state = Mutex(State())
    private let signals: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    init(maximumBytes: Int, maximumCount: Int) {
        self.maximumBytes = maximumBytes
        self.maximumCount = maximumCount
        (signals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues a message; false (and counted) when it would pass either bound.
    @discardableResult
    func put(_ topic: String, _ message: IncomingMessage) -> Bool {
        let taken = state.withLock { state -> Bool in
            let waiting = state.items.count - state.head
            guard !state.finished, waiting < maximumCount, state.bytes + message.byteCount <= maximumBytes else {
                state.dropped += 1
                return false
            }
            state.items.append((topic, message))
            state.bytes += message.byteCount
            return true
        }
        if taken { signal.yield() }
        return taken
    }

    /// Hands every message to `handle`, oldest first, one at a time, until `finish`.
    func drain(with handle: (_ topic: String, _ message: IncomingMessage) async -> Void) async {
        for await _ in signals {
            while let item = take() { await handle(item.topic, item.message) }
        }
    }

    private func take() -> (topic: String, message: IncomingMessage)? {
        state.withLock { state in
            guard state.head < state.items.count else { return nil }
            let item = state.items[state.head]
            state.head += 1
            state.bytes -= item.message.byteCount
            // The taken head goes in one move once it is as long as what waits.
            if state.head > 64, state.head * 2 > state.items.count {
                state.items.removeFirst(state.head)
                state.head = 0
            }
            return item
        }
    }

    func finish() {
        state.withLock { $0.finished = true }
        signal.finish()
    }

    /// Messages dropped because the queue was full, since the start.
    var dropped: Int { state.withLock { $0.dropped } }
    /// Bytes waiting now.
    var bytes: Int { state.withLock { $0.bytes } }
}
