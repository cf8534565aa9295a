import TOML

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Finds board profiles: a name is looked up as `NAME.toml` in each search directory in turn;
/// anything with a slash or a `.toml` ending is read as a path.
public struct BoardCatalog: Sendable {
    public var directories: [String]

    public init(directories: [String]) {
        self.directories = directories
    }

    /// The usual places, in order: `$HOTSPOTD_BOARD_DIR`, `/etc/hotspotd/boards` (an owner's own
    /// profiles), the package's `share/hotspotd/boards` beside the binary, `/usr/share/hotspotd/boards`,
    /// the `Board/` of the source checkout a development build's binary lies in
    /// (`CHECKOUT/.build/debug/hotspotd`), and `Board/` in the working directory.
    public static func standard(environment: [String: String], executablePath: String?) -> BoardCatalog {
        var directories: [String] = []
        if let custom = environment["HOTSPOTD_BOARD_DIR"], !custom.isEmpty {
            directories.append(contentsOf: custom.split(separator: ":").map(String.init))
        }
        directories.append("/etc/hotspotd/boards")
        if let executablePath, let slash = executablePath.lastIndex(of: "/") {
            let binDirectory = String(executablePath[..<slash])
            directories.append(binDirectory + "/../share/hotspotd/boards")
        }
        directories.append("/usr/share/hotspotd/boards")
        if let executablePath, let checkout = sourceCheckout(containing: executablePath) {
            directories.append(checkout + "/Board")
        }
        directories.append("Board")
        return BoardCatalog(directories: directories)
    }

    /// The source checkout whose build folder holds `executablePath`: the nearest ancestor with
    /// both `Package.swift` and `Board/`, at most five levels up.
    static func sourceCheckout(containing executablePath: String) -> String? {
        var directory = executablePath
        for _ in 0..<5 {
            guard let slash = directory.lastIndex(of: "/"), slash != directory.startIndex else { return nil }
            directory = String(directory[..<slash])
            if access(directory + "/Package.swift", F_OK) == 0 && access(directory + "/Board", F_OK) == 0 {
                return directory
            }
        }
        return nil
    }

    /// One profile file found in the catalog, parsed or not.
    public struct Entry: Sendable {
        public var name: String
        public var path: String
        public var profile: Result<BoardProfile, TOMLConfigError>
    }

    /// Every profile in the search directories; a name found twice is listed from the first
    /// directory only, as `load` would pick it.
    public func entries() -> [Entry] {
        var seen: Set<String> = []
        var entries: [Entry] = []
        for directory in directories {
            for file in Self.listDirectory(directory).sorted() where file.hasSuffix(".toml") {
                let name = String(file.dropLast(5))
                guard seen.insert(name).inserted else { continue }
                let path = directory + "/" + file
                entries.append(
                    Entry(
                        name: name, path: path,
                        profile: Result { () throws(TOMLConfigError) in try Self.loadFile(path) }))
            }
        }
        return entries.sorted { $0.name < $1.name }
    }

    /// Loads a profile by name or path.
    public func load(_ nameOrPath: String) throws(TOMLConfigError) -> BoardProfile {
        if nameOrPath.contains("/") || nameOrPath.hasSuffix(".toml") {
            return try Self.loadFile(nameOrPath)
        }
        for directory in directories {
            let path = directory + "/" + nameOrPath + ".toml"
            if access(path, F_OK) == 0 {
                return try Self.loadFile(path)
            }
        }
        let known = entries().map(\.name)
        throw TOMLConfigError(
            file: nameOrPath, line: 0, key: "",
            message: "no board profile named '\(nameOrPath)' in \(directories.joined(separator: ", "))"
                + (known.isEmpty ? "" : " (known: \(known.joined(separator: ", ")))")
                + "; HOTSPOTD_BOARD_DIR=DIR adds a directory of profiles"
        )
    }

    /// Reads and parses one profile file.
    public static func loadFile(_ path: String) throws(TOMLConfigError) -> BoardProfile {
        let text: String
        do {
            text = try readTextFile(path)
        } catch {
            throw TOMLConfigError(file: path, line: 0, key: "", message: error.message)
        }
        let profile = try BoardProfile.parse(text, file: path)
        let fileName = path.split(separator: "/").last.map(String.init) ?? path
        if fileName.hasSuffix(".toml"), String(fileName.dropLast(5)) != profile.name {
            throw TOMLConfigError(
                file: path, line: 0, key: "name",
                message:
                    """
                    '\(profile.name)' does not match the file name: call the file \(profile.name).toml, or name \
                    the profile '\(fileName.dropLast(5))'
                    """
            )
        }
        return profile
    }

    static func listDirectory(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names
    }
}

/// Reads a whole file as UTF-8 text. Files over `limit` bytes are refused: configuration and
/// profiles are small, and a wrong path to a huge file should fail fast.
public func readTextFile(_ path: String, limit: Int = 1 << 20) throws(HardwareError) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        let code = errno
        switch code {
        case ENOENT: throw HardwareError(.notFound, "cannot read: no such file", errno: code)
        case EACCES, EPERM: throw HardwareError(.permissionDenied, "cannot read: permission denied", errno: code)
        default: throw HardwareError(.io, "cannot read: \(String(cString: strerror(code)))", errno: code)
        }
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16_384)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            let code = errno
            throw HardwareError(.io, "cannot read: \(String(cString: strerror(code)))", errno: code)
        }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
        if bytes.count > limit {
            throw HardwareError(
                .invalidRequest, "larger than \(limit) bytes, too large to be a text file hotspotd reads")
        }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw HardwareError(.invalidRequest, "not UTF-8 text")
    }
    return text
}
