import CMosquitto
import Dispatch
import Synchronization

/// The floor: libmosquitto alone publishing the same messages at QoS 1 from a tight loop, with
/// the same bound on messages in flight as the agent, until the broker has acknowledged all.
final class FloorPublisher: @unchecked Sendable {
    private let window: DispatchSemaphore
    private let done = DispatchSemaphore(value: 0)
    private let acknowledged = Atomic<Int>(0)
    private let connected = DispatchSemaphore(value: 0)
    private var expected = 0

    init(maximumInFlight: Int) {
        window = DispatchSemaphore(value: maximumInFlight)
    }

    /// Publishes `payloads` to `topic`; returns once every one is acknowledged (nil if the
    /// broker could not be reached).
    func run(host: String, port: Int, topic: String, payloads: [[UInt8]], maximumInFlight: Int) -> Figures? {
        mosquitto_lib_init()
        let context = Unmanaged.passUnretained(self).toOpaque()
        guard let mosq = mosquitto_new("hotspot-bench-floor", true, context) else { return nil }
        defer { mosquitto_destroy(mosq) }
        mosquitto_max_inflight_messages_set(mosq, UInt32(maximumInFlight))
        mosquitto_connect_callback_set(mosq) { _, context, code in
            let floor = Unmanaged<FloorPublisher>.fromOpaque(context!).takeUnretainedValue()
            if code == 0 { floor.connected.signal() }
        }
        mosquitto_publish_callback_set(mosq) { _, context, _ in
            let floor = Unmanaged<FloorPublisher>.fromOpaque(context!).takeUnretainedValue()
            floor.window.signal()
            if floor.acknowledged.add(1, ordering: .relaxed).newValue == floor.expected { floor.done.signal() }
        }
        expected = payloads.count
        guard mosquitto_connect(mosq, host, Int32(port), 30) == MOSQ_ERR_SUCCESS.rawValue,
            mosquitto_loop_start(mosq) == MOSQ_ERR_SUCCESS.rawValue
        else { return nil }
        defer {
            mosquitto_disconnect(mosq)
            mosquitto_loop_stop(mosq, false)
        }
        guard connected.wait(timeout: .now() + 10) == .success else { return nil }

        let cpuBefore = processCPUMicroseconds()
        let start = now()
        for payload in payloads {
            window.wait()
            let code = payload.withUnsafeBytes { bytes in
                mosquitto_publish(mosq, nil, topic, Int32(bytes.count), bytes.baseAddress, 1, false)
            }
            precondition(code == MOSQ_ERR_SUCCESS.rawValue, "mosquitto_publish: \(code)")
        }
        done.wait()
        let seconds = now() - start
        return Figures(
            name: "floor", messages: payloads.count, seconds: seconds,
            cpuMicroseconds: processCPUMicroseconds() - cpuBefore)
    }
}
