import CSQLite
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// CPU time this process has used (user + system), in microseconds.
func processCPUMicroseconds() -> Int64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let user = Int64(usage.ru_utime.tv_sec) * 1_000_000 + Int64(usage.ru_utime.tv_usec)
    let system = Int64(usage.ru_stime.tv_sec) * 1_000_000 + Int64(usage.ru_stime.tv_usec)
    return user + system
}

/// CPU time a child process has used, from /proc/PID/stat (clock ticks), in microseconds.
func childCPUMicroseconds(_ pid: pid_t) -> Int64? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return nil }
    // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Int64(fields[11]), let system = Int64(fields[12]) else { return nil }
    let ticks = Int64(sysconf(Int32(_SC_CLK_TCK)))
    return (user + system) * 1_000_000 / ticks
}

/// A field of /proc/PID/status in kB (VmRSS, VmHWM).
func statusKilobytes(_ field: String, pid: String = "self") -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(
            line.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
    }
    return nil
}

/// Starts a new peak: VmHWM falls back to the current RSS (Linux's clear_refs, value 5).
func resetPeakResidentMemory() {
    let fd = open("/proc/self/clear_refs", O_WRONLY)
    guard fd >= 0 else { return }
    _ = write(fd, "5", 1)
    close(fd)
}

/// Peak resident memory since the last reset, in MB.
func peakResidentMegabytes() -> Double {
    Double(statusKilobytes("VmHWM") ?? 0) / 1024
}

/// CLOCK_MONOTONIC in seconds.
func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// What one run of a path measured.
struct Figures: Codable {
    var name: String
    var messages: Int
    var seconds: Double
    var cpuMicroseconds: Int64
    var peakRSSMegabytes: Double?
    var peakAnonymousMegabytes: Double?
    var note: String?

    var perSecond: Double { seconds > 0 ? Double(messages) / seconds : 0 }
    var cpuPerMessage: Double { messages > 0 ? Double(cpuMicroseconds) / Double(messages) : 0 }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
func waitUntil(seconds: Double, _ condition: () async -> Bool) async -> Bool {
    let deadline = now() + seconds
    while now() < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Prints a line at once, even when standard output is a file or a pipe.
func say(_ line: String = "") {
    print(line)
    fflush(nil)
}

/// The first column of the first row of `sql` on a SQLite connection, or -1.
func queryInteger(_ db: OpaquePointer?, _ sql: String) -> Int64 {
    var statement: OpaquePointer?
    guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else { return -1 }
    defer { sqlite3_finalize(statement) }
    return sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : -1
}
