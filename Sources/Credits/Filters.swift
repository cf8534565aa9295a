/// A prefix of a DevAddr (32 bits) or a JoinEUI (64 bits), written as ChirpStack's forwarder
/// writes them: the value in hex, a slash, the number of leading bits that count
/// (`26000000/7`, `70b3d57ed0000000/32`).
public struct BitPrefix: Sendable, Hashable, CustomStringConvertible {
    public let value: UInt64
    public let bits: Int
    /// 32 for a DevAddr, 64 for a JoinEUI.
    public let width: Int

    /// Parses `text` for a `width`-bit value; nil with the reason in `error` otherwise.
    public init(parsing text: String, width: Int) throws(FilterError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        let digits = width / 4
        guard parts.count == 2, parts[0].count == digits, let value = UInt64(parts[0], radix: 16),
            let bits = Int(parts[1]), (0...width).contains(bits)
        else {
            throw FilterError(
                "'\(text)' is not a \(width)-bit prefix: \(digits) hex digits, a slash and 0 to \(width) bits "
                    + (width == 32 ? "(such as 26000000/7)" : "(such as 70b3d57ed0000000/32)"))
        }
        self.value = value
        self.bits = bits
        self.width = width
    }

    public func matches(_ candidate: UInt64) -> Bool {
        guard bits > 0 else { return true }
        let shift = UInt64(width - bits)
        return candidate >> shift == value >> shift
    }

    public var description: String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width / 4 - hex.count)) + hex + "/\(bits)"
    }
}

public struct FilterError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Which uplinks the hotspot takes at all (`[filters]`), as ChirpStack's forwarder filters them,
/// with deny lists beside its allow lists: a data uplink by its DevAddr, a join request by its
/// JoinEUI. A frame that matches a deny prefix, or misses every allow prefix of a non-empty
/// allow list, is dropped before metering: never charged, counted by reason.
public struct UplinkFilters: Sendable, Equatable {
    public var devAddrPrefixes: [BitPrefix] = []
    public var joinEUIPrefixes: [BitPrefix] = []
    public var denyDevAddrPrefixes: [BitPrefix] = []
    public var denyJoinEUIPrefixes: [BitPrefix] = []

    public init(
        devAddrPrefixes: [BitPrefix] = [], joinEUIPrefixes: [BitPrefix] = [], denyDevAddrPrefixes: [BitPrefix] = [],
        denyJoinEUIPrefixes: [BitPrefix] = []
    ) {
        self.devAddrPrefixes = devAddrPrefixes
        self.joinEUIPrefixes = joinEUIPrefixes
        self.denyDevAddrPrefixes = denyDevAddrPrefixes
        self.denyJoinEUIPrefixes = denyJoinEUIPrefixes
    }

    public static let none = UplinkFilters()

    public func admits(devAddr: UInt32) -> Bool {
        Self.admits(UInt64(devAddr), allow: devAddrPrefixes, deny: denyDevAddrPrefixes)
    }

    public func admits(joinEUI: UInt64) -> Bool {
        Self.admits(joinEUI, allow: joinEUIPrefixes, deny: denyJoinEUIPrefixes)
    }

    static func admits(_ value: UInt64, allow: [BitPrefix], deny: [BitPrefix]) -> Bool {
        if deny.contains(where: { $0.matches(value) }) { return false }
        return allow.isEmpty || allow.contains { $0.matches(value) }
    }
}
