import Foundation
import Testing

/// The modules' dependencies point one way, as Package.swift draws them: building blocks →
/// hardware → radios → metering and store → transport → the agent's services → the CLI.
/// Both the manifest and every source file's imports are read, so that neither a target's
/// dependency list nor an `import` can slip a dependency past the picture.
@Suite struct ModuleDirectionTests {
    /// The layers, lowest first. A module may use its own layer and those below.
    static let layers: [[String]] = [
        ["Clocks", "TOML", "LoRaPHY", "Wire", "Cryptography", "LoRaWAN", "Frames", "Messages", "ChirpStack"],
        ["HAL", "HALLinux", "HALMock"],
        ["Radio", "SemtechUDP", "SecureElement"],
        ["Store", "Credits", "Coverage"],
        ["Transport"],
        ["Agent"],
        ["hotspotd"],
    ]

    /// Within the picture, what each of these must still not use.
    static let forbidden: [String: Set<String>] = [
        // Metering knows frames, not radios.
        "Credits": ["Radio", "SemtechUDP", "HAL", "HALLinux", "HALMock", "Coverage"],
        // The store stores rows it is given.
        "Store": ["Credits", "Coverage", "Messages", "ChirpStack", "Frames", "LoRaWAN", "LoRaPHY", "HAL"],
        // The transport carries and never decides.
        "Transport": ["Credits", "Coverage", "Radio", "SemtechUDP", "HAL", "Messages", "ChirpStack"],
        // The mapping to gw.proto knows messages and frames only.
        "ChirpStack": ["Cryptography", "LoRaWAN", "Wire", "TOML"],
        // The pure blocks need no clock of the process.
        "Frames": ["Clocks", "Messages", "ChirpStack"],
        "Clocks": ["TOML", "LoRaPHY", "Wire", "Cryptography", "LoRaWAN", "Frames", "Messages", "ChirpStack"],
    ]

    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    static func layer(of module: String) -> Int? {
        layers.firstIndex { $0.contains(module) }
    }

    static var modules: [String] { layers.flatMap { $0 } }

    /// Each target's dependencies on hotspotd's own modules, as Package.swift lists them.
    static func manifestDependencies() throws -> [String: Set<String>] {
        let manifest = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let starts = manifest.ranges(of: /\.(?:target|executableTarget|testTarget|systemLibrary)\(/).map(\.lowerBound)
        var result: [String: Set<String>] = [:]
        for (index, start) in starts.enumerated() {
            let end = index + 1 < starts.count ? starts[index + 1] : manifest.endIndex
            let block = manifest[start..<end]
            guard let name = block.firstMatch(of: /name: "([A-Za-z-]+)"/)?.1 else { continue }
            var uses: Set<String> = []
            if let list = block.firstMatch(of: /dependencies: \[([^\]]*)\]/)?.1 {
                uses = Set(list.matches(of: /"([A-Za-z-]+)"/).map { String($0.1) }.filter(modules.contains))
            }
            result[String(name)] = uses
        }
        return result
    }

    /// The hotspotd modules each source file of a module imports.
    static func sourceImports(of module: String) throws -> [(file: String, module: String)] {
        let directory = root.appendingPathComponent("Sources").appendingPathComponent(module)
        guard let files = FileManager.default.enumerator(atPath: directory.path) else { return [] }
        var found: [(String, String)] = []
        for case let file as String in files where file.hasSuffix(".swift") {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            for match in text.matches(
                of: /(?m)^(?:@_exported |@testable |public |internal |package )?import ([A-Za-z]+)$/)
            {
                let imported = String(match.1)
                if modules.contains(imported), imported != module { found.append(("\(module)/\(file)", imported)) }
            }
        }
        return found
    }

    static func violation(from module: String, to dependency: String) -> String? {
        guard let from = layer(of: module), let to = layer(of: dependency) else { return nil }
        if to > from { return "\(module) (layer \(from)) depends on \(dependency) (layer \(to)), above it" }
        if forbidden[module]?.contains(dependency) == true { return "\(module) must not depend on \(dependency)" }
        return nil
    }

    @Test func everyModuleHasItsPlace() throws {
        let sources = try FileManager.default.contentsOfDirectory(
            atPath: Self.root.appendingPathComponent("Sources").path)
        let placed = Set(Self.modules)
        let unplaced = sources.filter {
            !placed.contains($0) && !["CShims", "FuzzTargets", "hotspot-bench", "hotspot-fuzz"].contains($0)
        }
        #expect(unplaced.isEmpty, "modules missing from the layers: \(unplaced)")
    }

    @Test func theManifestPointsOneWay() throws {
        let dependencies = try Self.manifestDependencies()
        #expect(dependencies["Credits"] != nil && dependencies["Transport"] != nil, "the manifest was read")
        var violations: [String] = []
        for (module, uses) in dependencies {
            for dependency in uses.sorted() {
                if let violation = Self.violation(from: module, to: dependency) { violations.append(violation) }
            }
        }
        #expect(violations.isEmpty, "\(violations.sorted().joined(separator: "\n"))")
    }

    @Test func everyImportPointsOneWay() throws {
        var violations: [String] = []
        for module in Self.modules {
            for (file, imported) in try Self.sourceImports(of: module) {
                if let violation = Self.violation(from: module, to: imported) {
                    violations.append("\(file): \(violation)")
                }
            }
        }
        #expect(violations.isEmpty, "\(violations.sorted().joined(separator: "\n"))")
    }

    @Test func theRulesCatchAWrongDependency() {
        #expect(Self.violation(from: "Credits", to: "Radio") != nil)
        #expect(Self.violation(from: "Transport", to: "Credits") != nil)
        #expect(Self.violation(from: "Store", to: "HAL") != nil)
        #expect(Self.violation(from: "Radio", to: "Store") != nil)
        #expect(Self.violation(from: "Agent", to: "Transport") == nil)
    }
}
