/// Helium's data-credit price: one credit per 24 bytes of PHYPayload, rounded up, at least one.
public enum Pricing {
    public static let bytesPerCredit = 24

    public static func credits(forPayloadOf length: Int) -> Int64 {
        Int64(max(1, (length + bytesPerCredit - 1) / bytesPerCredit))
    }
}
