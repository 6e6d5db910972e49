import Metrics

/// The queue engine's own metrics (swift-metrics; exported by whichever backend is bootstrapped).
enum QueueMetrics {
    /// One batch of outcomes written: how many, and how long the statement took.
    static func outcomeBatch(size: Int, seconds: Double) {
        Recorder(label: "dreamd_outcome_batch_size").record(size)
        Timer(label: "dreamd_outcome_batch_duration_seconds").recordNanoseconds(Int64(seconds * 1e9))
    }

    /// Steps cancelled because their claim's lease was lost.
    static func leasesLost(_ count: Int, queue: String) {
        Counter(label: "dreamd_leases_lost_total", dimensions: [("queue", queue)]).increment(by: count)
    }
}
