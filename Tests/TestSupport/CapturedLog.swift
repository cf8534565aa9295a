import Logging
import Synchronization

/// A `Logger` whose entries are kept for the test to read, instead of going to the terminal.
public final class CapturedLog: Sendable {
    public struct Entry: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }

    private let entries = Mutex<[Entry]>([])

    public init() {}

    public var logger: Logger {
        Logger(label: "test") { label in
            ForwardingLogHandler(label: label) { [self] level, message, metadata in
                append(Entry(level: level, message: message, metadata: metadata))
            }
        }
    }

    public var all: [Entry] {
        entries.withLock { $0 }
    }

    /// The entries at `level` or above.
    public func entries(atLeast level: Logger.Level) -> [Entry] {
        all.filter { $0.level >= level }
    }

    fileprivate func append(_ entry: Entry) {
        entries.withLock { $0.append(entry) }
    }
}

/// A LogHandler that hands each entry, its metadata rendered as text, to `sink`.
struct ForwardingLogHandler: LogHandler {
    let label: String
    let sink: @Sendable (Logger.Level, String, [String: String]) -> Void
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            fields[key] = "\(value)"
        }
        sink(event.level, "\(event.message)", fields)
    }
}
