/// The repository's root, found from this file's path.
public let repositoryRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()

/// The repository's board profiles.
public let boardDirectory = repositoryRoot + "/Board"
