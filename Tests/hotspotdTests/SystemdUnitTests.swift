import Foundation
import TestSupport
import Testing

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
        try unit.replacingOccurrences(of: "/usr/bin/hotspotd", with: productsDirectory.appendingPathComponent("hotspotd").path)
            .write(to: copy, atomically: true, encoding: .utf8)
        let result = try run("/usr/bin/systemd-analyze", ["verify", copy.path])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.isEmpty, "\(result.error)")
    }

    @Test func theUnitIsANotifyServiceWithAWatchdogAndHardening() {
        #expect(values("Type") == ["notify"])
        #expect(values("ExecStart") == ["/usr/bin/hotspotd run --config /etc/hotspotd/hotspotd.toml"])
        #expect(values("WatchdogSec").count == 1)
        #expect(values("Restart") == ["on-failure"])
        #expect(values("RestartPreventExitStatus") == ["78"])
        #expect(values("User") == ["hotspotd"])
        #expect(values("StateDirectory") == ["hotspotd"])
        #expect(values("ConfigurationDirectory") == ["hotspotd"])
        for key in ["NoNewPrivileges", "ProtectHome", "PrivateTmp"] { #expect(values(key) == ["yes"], "\(key)") }
        #expect(values("ProtectSystem") == ["strict"])
        #expect(values("DevicePolicy") == ["closed"])
        #expect(Set(values("DeviceAllow")) == ["char-spi rw", "char-gpiochip rw"])
        #expect(values("RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"])
    }
}
