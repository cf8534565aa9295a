import SwiftProtobuf

/// How messages travel: protobuf (the default) or protobuf's JSON mapping (`mqtt.json = true`),
/// as ChirpStack's MQTT forwarder offers both.
public enum MessageEncoding: String, Sendable, Hashable {
    case protobuf, json

    public func encode(_ message: some SwiftProtobuf.Message) throws -> [UInt8] {
        switch self {
        case .protobuf: return try message.serializedBytes()
        case .json: return Array(try message.jsonString().utf8)
        }
    }

    public func decode<M: SwiftProtobuf.Message>(_ type: M.Type, from bytes: [UInt8]) throws -> M {
        switch self {
        case .protobuf: return try M(serializedBytes: bytes)
        case .json: return try M(jsonUTF8Bytes: bytes)
        }
    }
}
