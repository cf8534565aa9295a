/// Time as hotspotd stores and sends it: nanoseconds in an integer, since the Unix epoch for
/// the wall clock and since boot for the monotonic one. The one place that knows how many
/// nanoseconds make a second; `Duration` is used wherever a span is configured or waited.
public enum Nanoseconds {
    public static let perSecond: Int64 = 1_000_000_000

    /// A span in nanoseconds (a negative one as 0).
    public static func of(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return seconds * perSecond + attoseconds / 1_000_000_000
    }

    /// The whole seconds of a time in nanoseconds.
    public static func seconds(_ nanoseconds: Int64) -> Int64 {
        nanoseconds / perSecond
    }

    /// The nanoseconds past the whole second.
    public static func fraction(_ nanoseconds: Int64) -> Int64 {
        nanoseconds % perSecond
    }

    /// Whole seconds as nanoseconds.
    public static func fromSeconds(_ seconds: Int64) -> Int64 {
        seconds * perSecond
    }
}
