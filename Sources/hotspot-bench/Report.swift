import Foundation

/// The machine the figures come from.
struct Machine: Codable {
    var cpu: String
    var cores: Int
    var memoryGigabytes: Int
    var kernel: String

    static func current() -> Machine {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) }
            ?? "unknown CPU"
        var name = utsname()
        uname(&name)
        let kernel = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return Machine(
            cpu: model, cores: ProcessInfo.processInfo.activeProcessorCount,
            memoryGigabytes: Int((Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824).rounded()),
            kernel: kernel
        )
    }

    var summary: String { "\(cores) cores (\(cpu)), \(memoryGigabytes) GiB, Linux \(kernel)" }
}

struct Startup: Codable {
    var runs: Int
    var medianMilliseconds: Double
    var maximumMilliseconds: Double
    var peakRSSMegabytes: Double
}

struct Target: Codable {
    var name: String
    var required: String
    var measured: String
    var met: Bool
}

struct Report: Codable {
    var machine: Machine
    var date: String
    var inFlight: Int
    var floor: Figures
    var pipeline: Figures
    var concentrator: Figures
    var drainAccept: Figures
    var drain: Figures
    var startup: Startup
    var paced: [PacedComparison]
    var targets: [Target] = []

    init(
        machine: Machine, date: String, inFlight: Int, floor: Figures, pipeline: Figures, concentrator: Figures,
        drainAccept: Figures, drain: Figures, startup: Startup, paced: [PacedComparison]
    ) {
        self.paced = paced
        self.machine = machine
        self.date = date
        self.inFlight = inFlight
        self.floor = floor
        self.pipeline = pipeline
        self.concentrator = concentrator
        self.drainAccept = drainAccept
        self.drain = drain
        self.startup = startup
        let peak =
            ([pipeline.peakRSSMegabytes ?? 0, drain.peakRSSMegabytes ?? 0] + paced.map(\.hotspotd.peakRSSMegabytes))
            .max() ?? 0
        targets = [
            Target(
                name: "pipeline throughput", required: "≥ 60 % of the floor's",
                measured: Self.percent(pipeline.perSecond / floor.perSecond),
                met: pipeline.perSecond >= 0.6 * floor.perSecond),
            Target(
                name: "pipeline CPU per frame", required: "≤ 2 × the floor's per message",
                measured: String(format: "%.2f ×", pipeline.cpuPerMessage / floor.cpuPerMessage),
                met: pipeline.cpuPerMessage <= 2 * floor.cpuPerMessage),
            Target(
                name: "peak RSS, every run", required: "≤ 24 MB", measured: String(format: "%.1f MB", peak),
                met: peak <= 24),
            Target(
                name: "exec to READY=1", required: "≤ 300 ms",
                measured: String(format: "%.0f ms (median)", startup.medianMilliseconds),
                met: startup.medianMilliseconds <= 300),
            Target(
                name: "drain rate", required: "≥ 50 % of the floor's",
                measured: Self.percent(drain.perSecond / floor.perSecond), met: drain.perSecond >= 0.5 * floor.perSecond
            ),
        ]
        for comparison in paced {
            let point = comparison.hotspotd.point
            let name = "\(point.framesPerSecond)/s × \(point.perDatagram)"
            targets.append(
                Target(
                    name: "CPU per frame at \(name)", required: "≤ 1.5 × the C bridge's",
                    measured: String(format: "%.2f ×", comparison.cpuRatio), met: comparison.cpuRatio <= 1.5))
            targets.append(
                Target(
                    name: "written per frame at \(name)", required: "≤ the C bridge's",
                    measured: String(format: "%.2f ×", comparison.writtenRatio), met: comparison.writtenRatio <= 1))
        }
    }

    static func percent(_ ratio: Double) -> String { String(format: "%.0f %%", ratio * 100) }

    func table() -> String {
        var lines: [String] = []
        func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
        }
        func padLeft(_ text: String, _ width: Int) -> String {
            text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
        }
        lines.append(
            pad("path", 22) + padLeft("messages", 9) + padLeft("seconds", 9) + padLeft("msg/s", 9)
                + padLeft("CPU µs/msg", 12) + padLeft("vs floor", 10) + padLeft("peak RSS", 10) + padLeft("anon", 9))
        for figures in [floor, pipeline, concentrator, drainAccept, drain] {
            let ratio = figures.name == "floor" ? "1.00" : String(format: "%.2f", figures.perSecond / floor.perSecond)
            lines.append(
                pad(figures.name, 22) + padLeft("\(figures.messages)", 9)
                    + padLeft(String(format: "%.2f", figures.seconds), 9)
                    + padLeft(String(format: "%.0f", figures.perSecond), 9)
                    + padLeft(String(format: "%.1f", figures.cpuPerMessage), 12)
                    + padLeft(ratio, 10)
                    + padLeft(figures.peakRSSMegabytes.map { String(format: "%.1f MB", $0) } ?? "", 10)
                    + padLeft(figures.peakAnonymousMegabytes.map { String(format: "%.1f MB", $0) } ?? "", 9)
            )
        }
        lines.append(
            String(
                format: "start-up: exec to READY=1 %.0f ms median, %.0f ms at most (%d restarts); %.1f MB resident",
                startup.medianMilliseconds, startup.maximumMilliseconds, startup.runs, startup.peakRSSMegabytes))
        for figures in [floor, pipeline, concentrator, drainAccept, drain] {
            if let note = figures.note { lines.append("\(figures.name): \(note)") }
        }
        lines.append("")
        lines.append("paced, against the C bridge floor:")
        lines.append(pacedTable(paced))
        lines.append("")
        lines.append("targets (\(inFlight) messages in flight):")
        for target in targets {
            lines.append(
                "  " + pad(target.met ? "met" : "NOT MET", 9) + pad(target.name, 36) + pad(target.measured, 18)
                    + "required " + target.required)
        }
        return lines.joined(separator: "\n")
    }
}

extension Workload {
    /// The frames as `hotspotd run --replay-frames` reads them: a 2-byte big-endian length each.
    func writeReplayFile(_ path: String) throws {
        var data = Data()
        for frame in frames {
            data.append(UInt8(frame.count >> 8))
            data.append(UInt8(frame.count & 0xFF))
            data.append(contentsOf: frame)
        }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
