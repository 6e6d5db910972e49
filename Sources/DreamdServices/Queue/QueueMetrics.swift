import Metrics

/// The queue engine's own metrics (swift-metrics; exported by whichever backend is bootstrapped).
enum QueueMetrics {
    /// One batch written by a ``WriteBatcher`` (`batch`: `outcomes`, `deliveries`): how many writes, and how
    /// long the statement took.
    static func writeBatch(_ batch: String, size: Int, seconds: Double) {
        Recorder(label: "dreamd_write_batch_size", dimensions: [("batch", batch)]).record(size)
        Timer(label: "dreamd_write_batch_duration_seconds", dimensions: [("batch", batch)]).recordNanoseconds(Int64(seconds * 1e9))
    }

    /// Steps cancelled because their claim's lease was lost.
    static func leasesLost(_ count: Int, queue: String) {
        Counter(label: "dreamd_leases_lost_total", dimensions: [("queue", queue)]).increment(by: count)
    }
}
