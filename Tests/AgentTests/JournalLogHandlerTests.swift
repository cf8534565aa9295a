import ChirpStack
import Clocks
import Foundation
import Logging
import TestSupport
import Testing

@testable import Agent

#if canImport(Glibc)
    import Glibc
#endif

/// Parses the native protocol back into fields, as journald does.
private func decode(_ datagram: [UInt8]) -> [String: String] {
    var fields: [String: String] = [:]
    var index = 0
    while index < datagram.count {
        guard let end = datagram[index...].firstIndex(where: { $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\n") })
        else { break }
        let name = String(decoding: datagram[index..<end], as: UTF8.self)
        if datagram[end] == UInt8(ascii: "=") {
            let stop = datagram[(end + 1)...].firstIndex(of: UInt8(ascii: "\n")) ?? datagram.count
            fields[name] = String(decoding: datagram[(end + 1)..<stop], as: UTF8.self)
            index = stop + 1
        } else {
            var length = 0
            for shift in 0..<8 { length |= Int(datagram[end + 1 + shift]) << (8 * shift) }
            let start = end + 9
            fields[name] = String(decoding: datagram[start..<(start + length)], as: UTF8.self)
            index = start + length + 1
        }
    }
    return fields
}

@Suite(.capturingLogs) struct JournalLogHandlerTests {
    @Test func entriesCarryPriorityIdentifierAndMetadataAsFields() throws {
        let journal = DatagramSink()
        let socket = try #require(JournalSocket(path: journal.path))
        let provider = Logger.MetadataProvider { ["GATEWAY_ID": "0016c001ff10a235"] }
        var logger = Logger(label: "hotspotd.meter") { label in
            JournalLogHandler(label: label, socket: socket, metadataProvider: provider)
        }
        logger.logLevel = .info
        logger.notice(
            "uplink refused: no credit", metadata: ["DEV_ADDR": "26011BDA", "owner": "alice", "frequency": "868100000"])
        let fields = decode(try #require(journal.receive()))
        #expect(fields["PRIORITY"] == "5")
        #expect(fields["SYSLOG_IDENTIFIER"] == "hotspotd")
        #expect(fields["MESSAGE"] == "uplink refused: no credit")
        #expect(fields["LOGGER"] == "hotspotd.meter")
        #expect(fields["DEV_ADDR"] == "26011BDA")
        #expect(fields["OWNER"] == "alice")
        #expect(fields["FREQUENCY"] == "868100000")
        #expect(fields["GATEWAY_ID"] == "0016c001ff10a235")
        #expect(fields["CODE_FILE"]?.hasSuffix("JournalLogHandlerTests.swift") == true)
        #expect(socket.failedEntries == 0)

        logger.debug("below the level")
        logger.error("two\nlines")
        let second = decode(try #require(journal.receive()))
        #expect(second["PRIORITY"] == "3")
        #expect(second["MESSAGE"] == "two\nlines", "a value with a newline travels length-prefixed")
    }

    @Test func multilineValuesUseTheBinaryForm() {
        let bytes = JournalSocket.encode([("MESSAGE", "a\nb")])
        #expect(bytes == Array("MESSAGE\n".utf8) + [3, 0, 0, 0, 0, 0, 0, 0] + Array("a\nb\n".utf8))
        #expect(JournalSocket.encode([("PRIORITY", "6")]) == Array("PRIORITY=6\n".utf8))
    }

    @Test func fieldNamesAreMadeJournalSafe() {
        #expect(JournalSocket.fieldName("dev_addr") == "DEV_ADDR")
        #expect(JournalSocket.fieldName("radio-alive") == "RADIO_ALIVE")
        #expect(JournalSocket.fieldName("_SYSTEMD_UNIT") == "SYSTEMD_UNIT", "trusted fields cannot be forged")
        #expect(JournalSocket.fieldName("9lives") == "LIVES")
        #expect(JournalSocket.fieldName(String(repeating: "A", count: 100)).count == 64)
    }

    @Test func priorities() {
        #expect(JournalLogHandler.priority(.trace) == 7)
        #expect(JournalLogHandler.priority(.info) == 6)
        #expect(JournalLogHandler.priority(.warning) == 4)
        #expect(JournalLogHandler.priority(.critical) == 2)
    }

    @Test func aJournalSocketThatIsGoneCountsTheLoss() throws {
        let socket = try #require(JournalSocket(path: "/nonexistent/journal.sock"))
        #expect(!socket.send([("MESSAGE", "lost")]))
        #expect(socket.failedEntries == 1)
    }

    @Test func journalStreamMustMatchStandardError() {
        #expect(!standardErrorIsTheJournal(environment: [:]))
        #expect(!standardErrorIsTheJournal(environment: ["JOURNAL_STREAM": "nonsense"]))
        var status = stat()
        fstat(STDERR_FILENO, &status)
        #expect(standardErrorIsTheJournal(environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino)"]))
        #expect(!standardErrorIsTheJournal(environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino &+ 1)"]))
    }
}

@Suite(.capturingLogs) struct SystemdNotifierTests {
    /// A manager that stops reading its socket fills it; the agent must not wait on it, since
    /// its reports are sent from the threads everything else runs on.
    @Test(.timeLimit(.minutes(1))) func aManagerThatDoesNotReadNeverStallsTheSender() {
        let manager = DatagramSink()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": manager.path])
        var delivered = 0
        for index in 0..<5_000 where notifier.notify("STATUS=report \(index)") {
            delivered += 1
        }
        #expect(delivered > 0, "the first reports went through")
        #expect(delivered < 5_000, "the rest were dropped, not waited for")
        #expect(manager.receive()?.starts(with: Array("STATUS=report 0".utf8)) == true)
    }

    /// READY=1 is said once: it waits (a while) for room in a full queue rather than be lost.
    @Test(.timeLimit(.minutes(1))) func readinessWaitsForRoomInAFullQueue() {
        let manager = DatagramSink()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": manager.path])
        while notifier.notify("STATUS=filling") {}
        #expect(!notifier.notify("READY=1"), "full: a report is dropped")
        Thread.detachNewThread {
            usleep(300_000)
            while manager.receive(timeoutMilliseconds: 100) != nil {}
        }
        #expect(notifier.notify("READY=1", patience: .seconds(5)), "READY=1 waited for the manager to read")
    }
}
