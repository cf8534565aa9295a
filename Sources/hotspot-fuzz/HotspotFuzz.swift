import FoundationEssentials
import FuzzTargets

#if canImport(Glibc)
    import Glibc
#endif

/// Writes to standard error.
func complain(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

#if FUZZING
    /// libFuzzer's entry point when a program keeps its own `main` (compiler-rt, FuzzerInterface.h).
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// The target `fuzz` runs; set once, before libFuzzer starts calling back.
    nonisolated(unsafe) var selectedTarget = FuzzTarget.gwmp

    /// Required by libFuzzer's own `main`, which is linked in but never runs.
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        do {
            try selectedTarget.run(input)
        } catch {
            // An abort is what libFuzzer records as a finding, with the input that caused it.
            complain("hotspot-fuzz: \(selectedTarget.rawValue): \(error)\n")
            abort()
        }
        return 0
    }
#endif

/// Fuzzes hotspotd's parsers, or replays inputs through them.
///
///     hotspot-fuzz list                      the targets
///     hotspot-fuzz seeds DIR [REPOSITORY]    writes each target's seeds to DIR/TARGET/
///     hotspot-fuzz replay TARGET PATH…       runs files (or every file of directories) once
///     hotspot-fuzz fuzz TARGET [LIBFUZZER OPTIONS AND CORPUS DIRECTORIES]
///                                            (only in a build made by scripts/fuzz)
@main struct HotspotFuzz {
    static func main() {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2 else { usage() }
        switch arguments[1] {
        case "list":
            for target in FuzzTarget.allCases { print(target.rawValue) }
        case "seeds" where arguments.count >= 3:
            writeSeeds(
                to: arguments[2],
                repository: arguments.count >= 4 ? arguments[3] : FileManager.default.currentDirectoryPath)
        case "replay" where arguments.count >= 4:
            replay(target(arguments[2]), paths: Array(arguments.dropFirst(3)))
        case "fuzz" where arguments.count >= 3:
            fuzz(target(arguments[2]), options: Array(arguments.dropFirst(3)))
        default:
            usage()
        }
    }

    static func usage() -> Never {
        complain(
            """
            usage: hotspot-fuzz list
                   hotspot-fuzz seeds DIR [REPOSITORY]
                   hotspot-fuzz replay TARGET FILE|DIR...
                   hotspot-fuzz fuzz TARGET [libFuzzer options] [CORPUS_DIR...]

            """)
        exit(64)
    }

    static func target(_ name: String) -> FuzzTarget {
        guard let target = FuzzTarget(rawValue: name) else {
            complain(
                "hotspot-fuzz: no target \(name) (\(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))\n")
            exit(64)
        }
        return target
    }

    static func writeSeeds(to directory: String, repository: String) {
        for target in FuzzTarget.allCases {
            let folder = directory + "/" + target.rawValue
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                for (index, seed) in target.seeds(repository: repository).enumerated() {
                    try Data(seed).write(to: URL(fileURLWithPath: folder + "/seed-\(index)"))
                }
            } catch {
                complain("hotspot-fuzz: cannot write seeds to \(folder): \(error)\n")
                exit(73)
            }
        }
    }

    static func replay(_ target: FuzzTarget, paths: [String]) {
        var files: [String] = []
        for path in paths {
            var isDirectory: Bool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                complain("hotspot-fuzz: \(path) does not exist\n")
                exit(66)
            }
            if isDirectory {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += names.sorted().map { path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        var failures = 0
        for file in files {
            guard let bytes = FileManager.default.contents(atPath: file) else { continue }
            do {
                try target.run(Array(bytes))
            } catch {
                failures += 1
                print("\(file): \(error)")
            }
        }
        print("\(target.rawValue): \(files.count) inputs, \(failures) broke an invariant")
        exit(failures == 0 ? 0 : 1)
    }

    static func fuzz(_ target: FuzzTarget, options: [String]) -> Never {
        #if FUZZING
            selectedTarget = target
            // libFuzzer reads argv[0] as the program and the rest as its options and corpus.
            var argv: [UnsafeMutablePointer<CChar>?] = ([CommandLine.arguments[0]] + options).map { strdup($0) }
            var argc = CInt(argv.count)
            argv.append(nil)
            let status = argv.withUnsafeMutableBufferPointer { buffer in
                var base = buffer.baseAddress!
                return LLVMFuzzerRunDriver(&argc, &base) { data, size in fuzzOne(data, size) }
            }
            exit(status)
        #else
            complain("hotspot-fuzz: this build has no fuzzer; scripts/fuzz builds one\n")
            exit(69)
        #endif
    }
}
