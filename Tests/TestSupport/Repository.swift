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

/// Decodes each payload as the gw.proto message `message` (`UplinkFrame`, `GatewayStats` …)
/// with ChirpStack's published bindings, an independent decoder, into its JSON mapping with
/// gw.proto's field names.
public func decodeWithChirpStack(_ payloads: [[UInt8]], as message: String) throws -> [[String: Any]] {
    let script = """
        import json, sys
        from chirpstack_api.gw import gw_pb2
        from google.protobuf import json_format
        out = []
        for line in sys.stdin.read().split():
            message = gw_pb2.\(message)()
            message.ParseFromString(bytes.fromhex(line))
            out.append(json_format.MessageToDict(message, preserving_proto_field_name=True))
        print(json.dumps(out))
        """
    let input = payloads.map { $0.map { String(format: "%02x", $0) }.joined() }.joined(separator: "\n")
    let result = try run(try chirpStackPython(), ["-c", script], input: Data(input.utf8))
    guard result.status == 0 else { throw BrokerError("chirpstack-api could not decode: \(result.error)") }
    return try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]] ?? []
}

/// Whether `signature` (DER) is an ECDSA P-256 signature of SHA-256(`message`) by the point
/// X ‖ Y, as checked by PyPI's `ecdsa`, a pure-Python implementation that shares no code with
/// OpenSSL.
public func verifiedByPythonECDSA(point: [UInt8], message: [UInt8], signature: [UInt8]) throws -> Bool {
    let script = """
        import hashlib, sys
        from ecdsa import BadSignatureError, NIST256p, VerifyingKey
        from ecdsa.util import sigdecode_der
        point, message, signature = (bytes.fromhex(part) for part in sys.stdin.read().split())
        key = VerifyingKey.from_string(point, curve=NIST256p, hashfunc=hashlib.sha256)
        try:
            key.verify(signature, message, sigdecode=sigdecode_der)
            print("valid")
        except BadSignatureError:
            print("invalid")
        """
    let input = [point, message, signature].map { bytes in
        bytes.map { String(format: "%02x", $0) }.joined()
    }.joined(separator: " ")
    let result = try run(chirpStackPython(), ["-c", script], input: Data(input.utf8))
    guard result.status == 0 else { throw BrokerError("python3 ecdsa: \(result.error)") }
    return result.output.trimmingCharacters(in: .whitespacesAndNewlines) == "valid"
}

/// Encodes a gw.proto message (`GatewayConfiguration` …) from its JSON mapping with ChirpStack's
/// published bindings: what a ChirpStack network server would put on the wire.
public func encodeWithChirpStack(json: String, as message: String) throws -> [UInt8] {
    let script = """
        import sys
        from chirpstack_api.gw import gw_pb2
        from google.protobuf import json_format
        message = json_format.Parse(sys.stdin.read(), gw_pb2.\(message)())
        print(message.SerializeToString().hex())
        """
    let result = try run(try chirpStackPython(), ["-c", script], input: Data(json.utf8))
    guard result.status == 0 else { throw BrokerError("chirpstack-api could not encode: \(result.error)") }
    let hex = Array(result.output.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
    return stride(from: 0, to: hex.count - 1, by: 2).compactMap {
        UInt8(String(decoding: hex[$0...$0 + 1], as: UTF8.self), radix: 16)
    }
}
