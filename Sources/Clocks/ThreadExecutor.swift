import Dispatch
import Synchronization

/// A serial executor on a thread of its own. An actor that makes blocking C calls (a radio
/// driver's SPI transfers and BUSY waits, the store's SQLite writes and fsyncs) runs on one of
/// these, so they never block Swift's cooperative pool, while the rest of the program talks to
/// it with plain `await`.
///
/// The thread ends by itself once the executor is released and its queue is empty.
public final class ThreadExecutor: SerialExecutor {
    /// What the thread and the executor share. The thread holds it strongly, the executor too;
    /// the thread never holds the executor, so releasing the executor cannot deadlock on a join.
    private final class Queue: Sendable {
        let jobs = Mutex<(pending: [UnownedJob], executor: UnownedSerialExecutor?, stopping: Bool)>(([], nil, false))
        let available = DispatchSemaphore(value: 0)

        func run() {
            while true {
                available.wait()
                let next = jobs.withLock { state -> (UnownedJob, UnownedSerialExecutor)?? in
                    if let executor = state.executor, !state.pending.isEmpty {
                        return (state.pending.removeFirst(), executor)
                    }
                    return state.stopping ? .some(nil) : nil
                }
                switch next {
                case .some(.some(let (job, executor))):
                    job.runSynchronously(on: executor)
                case .some(.none):
                    return
                case .none:
                    continue
                }
            }
        }
    }

    private let queue = Queue()

    public init(name: String) throws(ThreadError) {
        let queue = self.queue
        try DedicatedThread(name: name) { queue.run() }.detach()
        queue.jobs.withLock { $0.executor = UnownedSerialExecutor(ordinary: self) }
    }

    deinit {
        queue.jobs.withLock { $0.stopping = true }
        queue.available.signal()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unownedJob = UnownedJob(job)
        queue.jobs.withLock { $0.pending.append(unownedJob) }
        queue.available.signal()
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }
}
