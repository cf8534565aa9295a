import Foundation

/// The repository's root, found from this file's path.
public let repositoryRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()

/// The repository's board profiles.
public let boardDirectory = repositoryRoot + "/Board"

/// The Python that has ChirpStack's published bindings (PyPI chirpstack-api): the virtual
/// environment `scripts/test` makes in `.build-python`.
public func chirpStackPython() throws -> String {
    let python = repositoryRoot + "/.build-python/bin/python3"
    guard FileManager.default.isExecutableFile(atPath: python) else {
        throw BrokerError("\(python) is missing: scripts/test makes it (a virtual environment with chirpstack-api)")
    }
    return python
}
