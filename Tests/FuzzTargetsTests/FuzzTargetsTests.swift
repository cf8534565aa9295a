import FoundationEssentials
import FuzzTargets
import TestSupport
import Testing

/// The fuzz targets without the fuzzer: their seeds, hostile inputs and every input that once
/// broke a parser (Regressions/TARGET/), and a few thousand seeded mutations each, so that CI exercises them
/// on every run even where `scripts/fuzz` is not run.
@Suite(.capturingLogs) struct FuzzTargetsTests {
    @Test(arguments: FuzzTarget.allCases)
    func seedsAreAcceptedWhole(_ target: FuzzTarget) throws {
        let seeds = target.seeds(repository: repositoryRoot)
        #expect(seeds.count >= 2, "\(target) has too few seeds to start from")
        for seed in seeds {
            try target.run(seed)
        }
    }

    /// Regressions/TARGET/ holds hostile inputs written by hand (nesting too deep to recurse,
    /// absurd numbers, lengths past the end) and every input a fuzzer ever found to break one.
    @Test(arguments: FuzzTarget.allCases)
    func hostileAndOnceBreakingInputsKeepTheInvariants(_ target: FuzzTarget) throws {
        let directory = repositoryRoot + "/Tests/FuzzTargetsTests/Regressions/" + target.rawValue
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(!names.isEmpty, "no regression inputs for \(target.rawValue)")
        for name in names.sorted() {
            let bytes = try #require(FileManager.default.contents(atPath: directory + "/" + name))
            #expect(throws: Never.self, "\(target.rawValue)/\(name)") { try target.run(Array(bytes)) }
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func seededMutationsKeepTheInvariants(_ target: FuzzTarget) throws {
        var generator = SplitMix64(seed: 0x5EED_0000 ^ UInt64(target.rawValue.utf8.count))
        let seeds = target.seeds(repository: repositoryRoot)
        for _ in 0..<3_000 {
            var input = seeds.randomElement(using: &generator)!
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                input = mutate(input, using: &generator)
            }
            #expect(throws: Never.self, "input \(input)") { try target.run(input) }
        }
    }

    /// One of libFuzzer's simpler moves: flip, cut, insert, duplicate or splice bytes.
    func mutate(_ bytes: [UInt8], using generator: inout SplitMix64) -> [UInt8] {
        var bytes = bytes
        switch Int.random(in: 0..<5, using: &generator) {
        case 0 where !bytes.isEmpty:
            bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
        case 1 where !bytes.isEmpty:
            let start = Int.random(in: 0..<bytes.count, using: &generator)
            bytes.removeSubrange(start..<min(bytes.count, start + Int.random(in: 1...8, using: &generator)))
        case 2:
            let interesting: [UInt8] = [
                0, 1, 0x7F, 0x80, 0xFF, UInt8(ascii: "\""), UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: "="),
                UInt8(ascii: "\n"), UInt8(ascii: "9"),
            ]
            bytes.insert(
                interesting.randomElement(using: &generator)!, at: Int.random(in: 0...bytes.count, using: &generator))
        case 3 where !bytes.isEmpty:
            let start = Int.random(in: 0..<bytes.count, using: &generator)
            let piece = bytes[start..<min(bytes.count, start + Int.random(in: 1...16, using: &generator))]
            bytes.insert(contentsOf: piece, at: Int.random(in: 0...bytes.count, using: &generator))
        default:
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator)))
        }
        return bytes
    }
}
