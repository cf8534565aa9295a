/// The MQTT topics of one gateway, ChirpStack's layout: `{prefix}/gateway/{id}/…`.
public struct Topics: Sendable, Hashable {
    public var prefix: String
    /// 16 lower-case hex digits.
    public var gatewayID: String

    public init(prefix: String, gatewayID: String) {
        self.prefix = prefix
        self.gatewayID = gatewayID
    }

    private var base: String {
        prefix.isEmpty ? "gateway/\(gatewayID)" : "\(prefix)/gateway/\(gatewayID)"
    }

    public var up: String { base + "/event/up" }
    public var stats: String { base + "/event/stats" }
    public var ack: String { base + "/event/ack" }
    public var beacon: String { base + "/event/beacon" }
    public var witness: String { base + "/event/witness" }
    public var receipt: String { base + "/event/receipt" }
    public var rejected: String { base + "/event/rejected" }
    public var connState: String { base + "/state/conn" }
    public var down: String { base + "/command/down" }
    public var pair: String { base + "/command/pair" }
    public var unpair: String { base + "/command/unpair" }
    public var credit: String { base + "/command/credit" }
    /// The network server's channel plan (`gw.GatewayConfiguration`).
    public var config: String { base + "/command/config" }
    public var entropy: String { prefix.isEmpty ? "network/entropy" : "\(prefix)/network/entropy" }
}
