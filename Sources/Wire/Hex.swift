/// Hexadecimal, the one way hotspotd writes and reads it: keys, frames, EUIs, DevAddrs,
/// register values.
public enum Hex {
    /// Two digits a byte, lower case unless `uppercase`.
    public static func encode(_ bytes: some Sequence<UInt8>, uppercase: Bool = false) -> String {
        let digits = Array((uppercase ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// One byte, two digits (`0x` not included).
    public static func encode(_ byte: UInt8, uppercase: Bool = true) -> String {
        encode(CollectionOfOne(byte), uppercase: uppercase)
    }

    /// An integer as exactly `digits` digits, most significant first (zero-padded; cut to the
    /// low digits when the value needs more).
    public static func encode(_ value: some BinaryInteger, digits: Int, uppercase: Bool = false) -> String {
        let text = String(value, radix: 16, uppercase: uppercase)
        return text.count >= digits
            ? String(text.suffix(digits)) : String(repeating: "0", count: digits - text.count) + text
    }

    /// Bytes from hex (either case; spaces, colons and dashes ignored), or nil.
    public static func decode(_ text: String) -> [UInt8]? {
        let digits = text.utf8.filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: ":") && $0 != UInt8(ascii: "-") }
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = digits.startIndex
        while index < digits.endIndex {
            guard let high = Character(Unicode.Scalar(digits[index])).hexDigitValue,
                let low = Character(Unicode.Scalar(digits[index + 1])).hexDigitValue
            else { return nil }
            bytes.append(UInt8(high << 4 | low))
            index += 2
        }
        return bytes
    }
}
