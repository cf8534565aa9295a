import Messages

/// ChirpStack's retained `gw.ConnState`: ONLINE on every connect, OFFLINE as the last will
/// and at a clean stop.
public enum ConnStateMessages {
    public static func encoded(_ state: Gw_ConnState.State, gatewayID: String, encoding: MessageEncoding) -> [UInt8] {
        if encoding == .json, state == .offline {
            // proto3's JSON mapping leaves out a field at its default, and OFFLINE is the enum's
            // 0: a person reading the retained message should still see the word.
            return Array(#"{"gatewayId":"\#(gatewayID)","state":"OFFLINE"}"#.utf8)
        }
        var message = Gw_ConnState()
        message.gatewayID = gatewayID
        message.state = state
        return (try? encoding.encode(message)) ?? []
    }
}
