import Wire

/// A MAC command from FOpts or an FPort 0 payload, named when LoRaWAN 1.0.x defines it.
public struct MACCommand: Hashable, Sendable, CustomStringConvertible {
    public var identifier: UInt8
    public var name: String
    public var payload: [UInt8]

    /// (name, payload length) by CID, for commands a device sends (uplink) and receives.
    static let uplink: [UInt8: (String, Int)] = [
        0x02: ("LinkCheckReq", 0), 0x03: ("LinkADRAns", 1), 0x04: ("DutyCycleAns", 0),
        0x05: ("RXParamSetupAns", 1), 0x06: ("DevStatusAns", 2), 0x07: ("NewChannelAns", 1),
        0x08: ("RXTimingSetupAns", 0), 0x09: ("TxParamSetupAns", 0), 0x0A: ("DlChannelAns", 1),
        0x0D: ("DeviceTimeReq", 0),
    ]
    static let downlink: [UInt8: (String, Int)] = [
        0x02: ("LinkCheckAns", 2), 0x03: ("LinkADRReq", 4), 0x04: ("DutyCycleReq", 1),
        0x05: ("RXParamSetupReq", 4), 0x06: ("DevStatusReq", 0), 0x07: ("NewChannelReq", 5),
        0x08: ("RXTimingSetupReq", 1), 0x09: ("TxParamSetupReq", 1), 0x0A: ("DlChannelReq", 4),
        0x0D: ("DeviceTimeAns", 5),
    ]

    /// Splits a MAC command sequence. An unknown CID ends the parse: its length is unknown, so
    /// the rest is returned as one unnamed command.
    public static func parse(_ bytes: [UInt8], uplink: Bool) -> [MACCommand] {
        let table = uplink ? Self.uplink : Self.downlink
        var commands: [MACCommand] = []
        var index = 0
        while index < bytes.count {
            let cid = bytes[index]
            guard let (name, length) = table[cid], index + 1 + length <= bytes.count else {
                commands.append(MACCommand(identifier: cid, name: "unknown", payload: Array(bytes[(index + 1)...])))
                break
            }
            commands.append(
                MACCommand(identifier: cid, name: name, payload: Array(bytes[(index + 1)..<(index + 1 + length)])))
            index += 1 + length
        }
        return commands
    }

    public var description: String {
        let hex = Hex.encode(payload)
        return hex.isEmpty ? name : "\(name)(\(hex))"
    }
}
