import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Metadata every log line carries once it is known (the gateway's id): the daemon sets it,
/// the handlers read it through swift-log's metadata provider.
public let processLogMetadata = Mutex<Logger.Metadata>([:])

public let processMetadataProvider = Logger.MetadataProvider { processLogMetadata.withLock { $0 } }

/// Whether standard error is connected to the journal: systemd sets `JOURNAL_STREAM` to the
/// "device:inode" of the stream it gave the service, and a shell redirect changes stderr.
public func standardErrorIsTheJournal(environment: [String: String]) -> Bool {
    guard let stream = environment["JOURNAL_STREAM"] else { return false }
    let parts = stream.split(separator: ":")
    guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
    var status = stat()
    guard fstat(STDERR_FILENO, &status) == 0 else { return false }
    return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
}

/// The journal's native protocol: one datagram per entry to `/run/systemd/journal/socket`, with
/// fields the owner can filter on (`journalctl -u hotspotd DEV_ADDR=26011BDA`).
public final class JournalSocket: Sendable {
    public static let defaultPath = "/run/systemd/journal/socket"
    private let fd: Int32
    private let address: sockaddr_un
    /// Entries the journal did not take (socket gone, entry too large).
    private let failures = Atomic<Int>(0)

    public init?(path: String = JournalSocket.defaultPath) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.address = address
    }

    deinit { close(fd) }

    public var failedEntries: Int { failures.load(ordering: .relaxed) }

    /// Sends one entry; false when the journal did not take it.
    @discardableResult
    public func send(_ fields: [(name: String, value: String)]) -> Bool {
        let datagram = Self.encode(fields)
        var address = self.address
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, datagram, datagram.count, Int32(MSG_NOSIGNAL), $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if sent != datagram.count { failures.add(1, ordering: .relaxed) }
        return sent == datagram.count
    }

    /// `NAME=value\n`, or for a value with a newline `NAME\n`, its length as 64-bit little
    /// endian, the value and `\n`. Names are made journal-safe: upper case, digits and `_`.
    static func encode(_ fields: [(name: String, value: String)]) -> [UInt8] {
        var datagram: [UInt8] = []
        for (name, value) in fields {
            let name = fieldName(name)
            guard !name.isEmpty else { continue }
            // Keep one entry inside a datagram the journal accepts.
            let bytes = Array(value.utf8.prefix(48 * 1024))
            datagram += Array(name.utf8)
            if bytes.contains(UInt8(ascii: "\n")) {
                datagram.append(UInt8(ascii: "\n"))
                withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { datagram += $0 }
                datagram += bytes
            } else {
                datagram.append(UInt8(ascii: "="))
                datagram += bytes
            }
            datagram.append(UInt8(ascii: "\n"))
        }
        return datagram
    }

    /// A metadata key as a journal field: `dev_addr` → `DEV_ADDR`; other characters become
    /// `_`; a leading `_` (reserved for trusted fields) or digit is dropped; at most 64 bytes.
    static func fieldName(_ key: String) -> String {
        var name = String(
            key.uppercased().map { character -> Character in
                (character.isASCII && (character.isLetter || character.isNumber)) ? character : "_"
            })
        while let first = name.first, first == "_" || first.isNumber { name.removeFirst() }
        return String(name.prefix(64))
    }
}

/// A swift-log handler writing native journal entries: PRIORITY, SYSLOG_IDENTIFIER, MESSAGE,
/// LOGGER (the label), CODE_FILE/CODE_LINE/CODE_FUNC, and each metadata key as its own field.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let socket: JournalSocket
    private let identifier: String

    public init(
        label: String, socket: JournalSocket, identifier: String = "hotspotd",
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        self.label = label
        self.socket = socket
        self.identifier = identifier
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// syslog(3) priorities: swift-log's trace and debug are both LOG_DEBUG.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    public func log(event: LogEvent) {
        var merged = metadataProvider?.get() ?? [:]
        merged.merge(metadata) { _, new in new }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var fields: [(name: String, value: String)] = [
            ("PRIORITY", String(Self.priority(event.level))),
            ("SYSLOG_IDENTIFIER", identifier),
            ("MESSAGE", "\(event.message)"),
            ("LOGGER", label),
            ("CODE_FILE", event.file),
            ("CODE_LINE", String(event.line)),
            ("CODE_FUNC", event.function),
        ]
        let reserved: Set<String> = [
            "PRIORITY", "SYSLOG_IDENTIFIER", "MESSAGE", "LOGGER", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
        ]
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            let name = JournalSocket.fieldName(key)
            guard !reserved.contains(name) else { continue }
            fields.append((name, "\(value)"))
        }
        socket.send(fields)
    }
}
