import Synchronization

/// The transmissions a backend has accepted and not yet finished, in its microsecond counter's
/// time. A new one that would overlap one of them is a collision: a radio sends one frame at a time.
final class TransmitSchedule: Sendable {
    private struct Slot {
        var id: Int
        var start: UInt32
        var duration: UInt32
    }

    private let slots = Mutex<[Slot]>([])

    /// Reserves `[start, start + duration)`; false when it overlaps a reservation.
    func reserve(id: Int, start: UInt32, durationMicroseconds duration: UInt32) -> Bool {
        slots.withLock { slots in
            for slot in slots where Self.overlaps(slot.start, slot.duration, start, duration) {
                return false
            }
            slots.append(Slot(id: id, start: start, duration: duration))
            return true
        }
    }

    var count: Int {
        slots.withLock { $0.count }
    }

    func release(id: Int) {
        slots.withLock { $0.removeAll { $0.id == id } }
    }

    /// Overlap of two intervals on the wrapping 32-bit counter, each shorter than 2^31 µs.
    static func overlaps(_ a: UInt32, _ aLength: UInt32, _ b: UInt32, _ bLength: UInt32) -> Bool {
        let offset = Int64(Int32(bitPattern: b &- a))  // where b starts, relative to a
        return offset >= 0 ? offset < Int64(aLength) : -offset < Int64(bLength)
    }
}
