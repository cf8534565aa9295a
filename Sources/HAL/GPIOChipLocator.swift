/// A GPIO chip as the system presents it.
public struct GPIOChipInfo: Sendable, Hashable {
    /// "/dev/gpiochip0"
    public var path: String
    /// The driver's label, e.g. "pinctrl-bcm2711" (Pi 4) or "pinctrl-rp1" (Pi 5).
    public var label: String
    public var lineCount: Int

    public init(path: String, label: String, lineCount: Int) {
        self.path = path
        self.label = label
        self.lineCount = lineCount
    }
}

/// Picks a chip for a line by label or path. Chip numbers move between kernels and models (the
/// Pi 5's header was gpiochip4, then gpiochip0), labels do not: profiles name labels.
public enum GPIOChipLocator {
    /// The first candidate, in the profile's order, that names one of `chips`: a path
    /// ("/dev/gpiochip0"), a device name ("gpiochip0") or a label ("pinctrl-bcm2835").
    public static func locate(_ candidates: [String], among chips: [GPIOChipInfo]) -> GPIOChipInfo? {
        for candidate in candidates {
            if candidate.hasPrefix("/") {
                if let chip = chips.first(where: { $0.path == candidate }) { return chip }
            } else if candidate.hasPrefix("gpiochip"), candidate.dropFirst(8).allSatisfy(\.isNumber) {
                if let chip = chips.first(where: { $0.path == "/dev/" + candidate }) { return chip }
            } else if let chip = chips.first(where: { $0.label == candidate }) {
                return chip
            }
        }
        return nil
    }

    /// The error for a line whose chip is not there, listing what is.
    public static func notFound(_ candidates: [String], role: String, among chips: [GPIOChipInfo]) -> HardwareError {
        let present =
            chips.isEmpty
            ? """
            this system has no GPIO chips (no /dev/gpiochip*): is this a Raspberry Pi, and is the board's overlay \
            loaded?
            """
            : "present: " + chips.map { "\($0.path) \"\($0.label)\"" }.joined(separator: ", ")
        return HardwareError(
            .notFound, "no GPIO chip for the \(role) line: looked for \(candidates.joined(separator: ", ")); \(present)"
        )
    }
}
