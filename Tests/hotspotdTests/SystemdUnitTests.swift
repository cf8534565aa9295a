import Agent
import ChirpStack
import Clocks
import Foundation
import TestSupport
import Testing
import Transport

@Suite(.capturingLogs) struct SystemdUnitTests {
    let unit = (try? String(contentsOfFile: repositoryRoot + "/systemd/hotspotd.service", encoding: .utf8)) ?? ""

    func values(_ key: String) -> [String] {
        unit.split(separator: "\n").compactMap { line in
            line.hasPrefix(key + "=") ? String(line.dropFirst(key.count + 1)) : nil
        }
    }

    @Test func systemdAcceptsTheUnit() throws {
        // verify wants the binary where ExecStart says: point it at the one just built.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("unit-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let copy = directory.appendingPathComponent("hotspotd.service")
        try unit.replacingOccurrences(
            of: "/usr/bin/hotspotd", with: productsDirectory.appendingPathComponent("hotspotd").path
        )
        .write(to: copy, atomically: true, encoding: .utf8)
        let result = try run("/usr/bin/systemd-analyze", ["verify", copy.path])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.isEmpty, "\(result.error)")
    }

    /// systemd's own measure of what the service may still do, 0 (nothing) to 10 (everything).
    /// What keeps it above 0 is what the agent needs: the network (its broker and forwarders),
    /// the radio's devices, its users' groups for them.
    @Test func systemdRatesTheUnitsExposureAtMostTwo() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("security-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("hotspotd.service")
        try unit.write(to: copy, atomically: true, encoding: .utf8)
        let result = try run("/usr/bin/systemd-analyze", ["security", "--offline=true", "--no-pager", copy.path])
        let overall = result.output.split(separator: "\n").first { $0.contains("Overall exposure level") }
        let score = overall.flatMap { line in
            line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }
        }
        #expect(score != nil, "no exposure level in: \(result.output.suffix(400)) \(result.error)")
        #expect((score ?? 10) <= 2.0, "\(overall ?? "")")
        // The README states the score; keep it true.
        let readme = try String(contentsOfFile: repositoryRoot + "/README.md", encoding: .utf8)
        if let score {
            let stated = readme.contains("exposure level of \(score)")
            #expect(stated, "the README should give the score, \(score)")
        }
    }

    @Test func theUnitIsANotifyServiceWithAWatchdogAndHardening() {
        #expect(values("Type") == ["notify"])
        #expect(values("ExecStart") == ["/usr/bin/hotspotd run --config /etc/hotspotd/hotspotd.toml"])
        #expect(values("WatchdogSec").count == 1)
        #expect(values("Restart") == ["on-failure"])
        #expect(values("RestartPreventExitStatus") == ["78"])
        #expect(values("User") == ["hotspotd"])
        #expect(values("StateDirectory") == ["hotspotd"])
        #expect(values("ConfigurationDirectory").isEmpty, "it would make /etc/hotspotd writable to the service")
        for key in ["NoNewPrivileges", "ProtectHome", "PrivateTmp"] { #expect(values(key) == ["yes"], "\(key)") }
        #expect(values("ProtectSystem") == ["strict"])
        #expect(values("DevicePolicy") == ["closed"])
        #expect(Set(values("DeviceAllow")) == ["char-spi rw", "char-gpiochip rw"])
        #expect(values("RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"])
        #expect(values("SystemCallFilter").first == "@system-service")
        #expect(values("SystemCallErrorNumber") == ["EPERM"])
        #expect(values("ProtectProc") == ["invisible"])
        #expect(values("ProcSubset") == ["pid"])
        for key in ["RemoveIPC", "PrivateIPC", "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute"] {
            #expect(values(key) == ["yes"], "\(key)")
        }
        #expect(values("MemoryMax").count == 1)
        #expect(values("TasksMax").count == 1)
    }
}
