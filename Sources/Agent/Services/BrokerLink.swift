import Logging
import ServiceLifecycle
import Store
import Transport

/// The broker's side as a service: the transport runs until shutdown; then, while connected,
/// the outbox is given up to `shutdownTimeout` to drain before OFFLINE is published and the
/// connection closed. What is left waits on disk for the next start.
public struct BrokerLink: Service {
    public let transport: MQTTTransport
    private let store: Store
    private let shutdownTimeout: Duration
    private let logger: Logger

    public init(transport: MQTTTransport, store: Store, shutdownTimeout: Duration, logger: Logger) {
        self.transport = transport
        self.store = store
        self.shutdownTimeout = shutdownTimeout
        self.logger = logger
    }

    public func run() async {
        let transport = self.transport
        let store = self.store
        let timeout = shutdownTimeout
        await withGracefulShutdownHandler {
            do {
                try await transport.run()
            } catch {
                logger.error("MQTT: \(error)")
            }
        } onGracefulShutdown: {
            Task {
                let deadline = ContinuousClock.now + timeout
                while transport.connection.isConnected, await store.outboxDepth() > 0, ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(50))
                }
                await transport.stop()
            }
        }
    }
}
