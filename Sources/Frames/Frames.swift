import LoRaPHY

/// Whether a received frame's payload CRC checked.
public enum CRCStatus: String, Sendable, Hashable {
    case ok, bad, absent
}

/// A frame as a radio backend received it.
public struct RadioFrame: Sendable, Hashable {
    public var payload: [UInt8]
    public var frequencyHz: UInt32
    public var dataRate: LoRaDataRate
    public var codingRate: CodingRate?
    public var rssiDBm: Double
    public var snrDB: Double
    public var crc: CRCStatus
    /// A free-running 32-bit microsecond counter at the end of the frame, like a concentrator's
    /// `tmst`: a downlink is scheduled against it (RX1 = timestamp + 1 s).
    public var timestamp: UInt32
    /// Wall-clock time of reception, nanoseconds since the Unix epoch, when known.
    public var receivedAt: Int64?
    /// The packet forwarder that heard it (semtech_udp); nil for the board's own radio.
    public var gatewayEUI: EUI64?
    /// The concentrator's IF channel and RF chain, when it reports them.
    public var channel: Int?
    public var rfChain: Int?

    public init(
        payload: [UInt8], frequencyHz: UInt32, dataRate: LoRaDataRate, codingRate: CodingRate?,
        rssiDBm: Double, snrDB: Double, crc: CRCStatus, timestamp: UInt32, receivedAt: Int64? = nil,
        gatewayEUI: EUI64? = nil, channel: Int? = nil, rfChain: Int? = nil
    ) {
        self.payload = payload
        self.frequencyHz = frequencyHz
        self.dataRate = dataRate
        self.codingRate = codingRate
        self.rssiDBm = rssiDBm
        self.snrDB = snrDB
        self.crc = crc
        self.timestamp = timestamp
        self.receivedAt = receivedAt
        self.gatewayEUI = gatewayEUI
        self.channel = channel
        self.rfChain = rfChain
    }
}

/// When a frame is to be sent.
public enum TransmitTiming: Sendable, Hashable {
    case immediately
    /// When the backend's microsecond counter reaches this value (the uplink's timestamp plus the
    /// receive delay, for a Class A downlink).
    case atTimestamp(UInt32)
}

/// A frame to send.
public struct TransmitRequest: Sendable, Hashable {
    public var payload: [UInt8]
    public var frequencyHz: UInt32
    public var dataRate: LoRaDataRate
    public var codingRate: CodingRate
    public var powerDBm: Int
    /// Downlinks to devices are inverted; beacons are not.
    public var invertedIQ: Bool
    public var preambleLength: Int
    /// A payload CRC: on for uplink-like frames (beacons), off for LoRaWAN downlinks.
    public var crc: Bool
    public var timing: TransmitTiming
    /// For semtech_udp: the forwarder to send through (the one that heard the uplink).
    public var gatewayEUI: EUI64?

    public init(
        payload: [UInt8], frequencyHz: UInt32, dataRate: LoRaDataRate, codingRate: CodingRate = .cr4_5,
        powerDBm: Int, invertedIQ: Bool, preambleLength: Int = 8, crc: Bool? = nil,
        timing: TransmitTiming = .immediately, gatewayEUI: EUI64? = nil
    ) {
        self.payload = payload
        self.frequencyHz = frequencyHz
        self.dataRate = dataRate
        self.codingRate = codingRate
        self.powerDBm = powerDBm
        self.invertedIQ = invertedIQ
        self.preambleLength = preambleLength
        self.crc = crc ?? !invertedIQ
        self.timing = timing
        self.gatewayEUI = gatewayEUI
    }

    public var airtime: LoRaAirtime {
        LoRaAirtime(
            modulation: dataRate.modulation(codingRate: codingRate), payloadLength: payload.count,
            preambleLength: preambleLength, crc: crc)
    }
}

/// What became of a transmission. The cases follow the packet forwarder's `txpk_ack` errors and
/// ChirpStack's `TxAckStatus`, so each maps one to one.
public enum TransmitOutcome: Sendable, Hashable {
    /// On air; with the power actually used (a radio that cannot reach the power asked for
    /// sends at its maximum), when the backend reports it.
    case sent(powerDBm: Int?)
    case tooLate
    case tooEarly
    case collisionPacket
    case collisionBeacon
    case frequencyNotAllowed
    case powerNotAllowed
    case dutyCycleExhausted
    case gpsUnlocked
    case queueFull
    /// The radio failed (did not answer, no TxDone); the reason is for the log.
    case failed(String)

    public var isSent: Bool {
        if case .sent = self { return true }
        return false
    }
}
