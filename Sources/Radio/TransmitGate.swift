import HAL

/// What every transmitting backend checks before it keys up: the region's rules, the timing of
/// a scheduled frame against the backend's microsecond counter, and collisions with frames
/// already accepted.
final class TransmitGate: Sendable {
    enum Admission {
        case refused(TransmitOutcome)
        /// Send at `start` (in the backend's counter); call `finish(id)` when done, sent or not.
        case accepted(id: Int, start: UInt32)
    }

    private let policy: any TransmitPolicy
    private let timing: RadioTiming
    private let schedule = TransmitSchedule()
    private let ids = Mutex(0)

    init(policy: any TransmitPolicy, timing: RadioTiming) {
        self.policy = policy
        self.timing = timing
    }

    func admit(_ request: TransmitRequest, now: UInt32) -> Admission {
        if let refusal = policy.check(request) {
            return .refused(refusal)
        }
        let start: UInt32
        switch request.timing {
        case .immediately:
            start = now &+ 1_000
        case .atTimestamp(let target):
            let lead = Int64(Int32(bitPattern: target &- now))
            if lead < timing.minimumLeadMicroseconds { return .refused(.tooLate) }
            if lead > timing.maximumLeadMicroseconds { return .refused(.tooEarly) }
            start = target
        }
        let id = ids.withLock { id in
            defer { id += 1 }
            return id
        }
        let duration = UInt32(clamping: request.airtime.nanoseconds / 1000 + 1)
        guard schedule.reserve(id: id, start: start, durationMicroseconds: duration) else {
            return .refused(.collisionPacket)
        }
        return .accepted(id: id, start: start)
    }

    /// Ends a reservation; a frame that went out counts against the duty cycle.
    func finish(id: Int, request: TransmitRequest, sent: Bool) {
        schedule.release(id: id)
        if sent { policy.record(request) }
    }
}

/// Sleeps until a little before `target` on the microsecond counter, then spins to it. Called
/// on a radio's own thread, where spinning for two milliseconds blocks nobody else.
func waitUntil(_ target: UInt32) async {
    let remaining = Int64(Int32(bitPattern: target &- microsecondCounter()))
    if remaining > 3_000 {
        try? await Task.sleep(for: .microseconds(remaining - 2_000))
    }
    while Int32(bitPattern: target &- microsecondCounter()) > 0 {}
}

import Synchronization
