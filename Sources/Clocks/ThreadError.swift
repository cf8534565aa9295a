/// A thread could not be started: the process is out of threads or memory.
public struct ThreadError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var errno: Int32
    public init(_ message: String, errno: Int32) {
        self.message = message
        self.errno = errno
    }
    public var description: String { message }
}
