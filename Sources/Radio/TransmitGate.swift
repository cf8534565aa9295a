import Clocks
import HAL
import Synchronization

/// What every SPI radio checks before it keys up: the region's rules, the timing of a scheduled
/// frame against the microsecond counter, and collisions with frames already accepted.
final class TransmitGate: Sendable {
    /// A frame admitted for transmission at `start`; hand it back to `finish` when done.
    struct Admission: Sendable {
        var id: Int
        var start: UInt32
        var ticket: TransmitTicket
    }

    private let policy: any TransmitPolicy
    private let timing: RadioTiming
    private let schedule = TransmitSchedule()
    private let ids = Mutex(0)
    /// Kept free after each frame: the radio returns to receive and the next one is prepared.
    static let guardMicroseconds: UInt32 = 10_000

    init(policy: any TransmitPolicy, timing: RadioTiming) {
        self.policy = policy
        self.timing = timing
    }

    func admit(_ request: TransmitRequest, now: UInt32) -> Result<Admission, TransmitRefusal> {
        let start: UInt32
        switch request.timing {
        case .immediately:
            start = now &+ UInt32(timing.minimumLeadMicroseconds)
        case .atTimestamp(let target):
            let lead = Int64(Int32(bitPattern: target &- now))
            if lead < timing.minimumLeadMicroseconds { return .failure(.init(.tooLate)) }
            if lead > timing.maximumLeadMicroseconds { return .failure(.init(.tooEarly)) }
            start = target
        }
        let id = ids.withLock { id in
            defer { id += 1 }
            return id
        }
        let duration = UInt32(clamping: max(request.airtime.nanoseconds, 0) / 1000) &+ Self.guardMicroseconds
        guard schedule.reserve(id: id, start: start, durationMicroseconds: duration) else {
            return .failure(.init(.collisionPacket))
        }
        switch policy.admit(request) {
        case .failure(let refusal):
            schedule.release(id: id)
            return .failure(refusal)
        case .success(let ticket):
            return .success(Admission(id: id, start: start, ticket: ticket))
        }
    }

    /// Ends a reservation; a frame that did not go out gives its airtime back.
    func finish(_ admission: Admission, sent: Bool) {
        schedule.release(id: admission.id)
        if !sent { policy.cancel(admission.ticket) }
    }

    /// How many frames are admitted and not finished.
    var pending: Int { schedule.count }
}

/// One transmission at a time on a radio: a FIFO of waiters, for an actor whose transmit
/// suspends (waiting for its start time, for TxDone) while others may call it.
struct TransmitQueue {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    var isBusy: Bool { busy }

    /// Waits for the radio; call `release()` when the transmission is over.
    mutating func acquire(_ continuation: CheckedContinuation<Void, Never>) {
        if busy {
            waiters.append(continuation)
        } else {
            busy = true
            continuation.resume()
        }
    }

    mutating func release() {
        if waiters.isEmpty {
            busy = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}

/// Sleeps until about `before` microseconds ahead of `target`, on the caller's actor, so that a
/// driver's final spin happens on its own thread.
func sleepUntil(_ target: UInt32, leaving before: Int64, isolation: isolated (any Actor)? = #isolation) async {
    let remaining = Int64(Int32(bitPattern: target &- microsecondCounter()))
    if remaining > before + 1_000 {
        try? await Task.sleep(for: .microseconds(remaining - before))
    }
}

/// Spins until the counter reaches `target`. Only on a radio's own thread, for the last
/// milliseconds before a frame goes out.
func spinUntil(_ target: UInt32) {
    while Int32(bitPattern: target &- microsecondCounter()) > 0 {}
}

/// How late `target` has become, in microseconds (negative while it is still ahead).
func lateness(of target: UInt32) -> Int64 {
    Int64(Int32(bitPattern: microsecondCounter() &- target))
}
