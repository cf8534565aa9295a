import Foundation
import Logging
import Synchronization
import Testing

/// Keeps the agent's log lines out of the test output: each test's lines are captured, and
/// printed (to standard error, under the test's name) only when that test records an issue
/// or throws. A suite opts in with `@Suite(.capturingLogs)`; its tests and the tasks they
/// start log into their own buffer. Lines logged on threads of their own (a radio's, the
/// MQTT client's), which carry no test with them, go to a shared ring of the last lines,
/// printed with a failing test's own as what the process said around it.
public struct CapturingLogs: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func scopeProvider(for test: Test, testCase: Test.Case?) -> CapturingLogs? {
        testCase == nil ? nil : self
    }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        _ = Self.bootstrap
        let buffer = LogBuffer()
        do {
            try await LogBuffer.$current.withValue(buffer) {
                let noticeIssues = IssueHandlingTrait.compactMapIssues { issue in
                    buffer.failed.withLock { $0 = true }
                    return issue
                }
                try await noticeIssues.provideScope(for: test, testCase: testCase, performing: function)
            }
        } catch {
            buffer.failed.withLock { $0 = true }
            buffer.print(test: test)
            throw error
        }
        if buffer.failed.withLock({ $0 }) { buffer.print(test: test) }
    }

    /// Every `Logger(label:)` made from now on logs into the current test's buffer.
    static let bootstrap: Void = {
        LoggingSystem.bootstrap { label in
            ForwardingLogHandler(label: label) { level, message, metadata in
                let rendered =
                    metadata.isEmpty
                    ? ""
                    : " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                LogBuffer.append("\(level) \(label):\(rendered) \(message)")
            }
        }
    }()
}

extension Trait where Self == CapturingLogs {
    /// The suite's log lines are printed only for a test that fails.
    public static var capturingLogs: CapturingLogs { CapturingLogs() }
}

final class LogBuffer: Sendable {
    @TaskLocal static var current: LogBuffer?
    /// Lines logged outside any test's tasks, the last `sharedCapacity` of them.
    static let shared = Mutex<[String]>([])
    static let sharedCapacity = 200

    let lines = Mutex<[String]>([])
    let failed = Mutex(false)

    static func append(_ line: String) {
        if let current {
            current.lines.withLock { $0.append(line) }
        } else {
            shared.withLock { lines in
                lines.append(line)
                if lines.count > sharedCapacity { lines.removeFirst(lines.count - sharedCapacity) }
            }
        }
    }

    func print(test: Test) {
        let own = lines.withLock { $0 }
        let others = Self.shared.withLock { $0 }
        var text = "── log of \(test.name) (\(own.count) lines) ──\n" + own.map { $0 + "\n" }.joined()
        if !others.isEmpty {
            text +=
                "── lines from threads outside any test, the last \(others.count) ──\n"
                + others.map { $0 + "\n" }.joined()
        }
        text += "── end of the log of \(test.name) ──\n"
        FileHandle.standardError.write(Data(text.utf8))
    }
}
