import Metrics

/// `dreamd_upstream_requests_total{upstream,status}` and `dreamd_upstream_request_duration_seconds{upstream,status}`
/// (time to the response head; a streaming body is not included).
enum UpstreamMetrics {
    static func record(upstream: String, status: String, since start: ContinuousClock.Instant) {
        let dimensions = [("upstream", upstream), ("status", status)]
        Counter(label: "dreamd_upstream_requests_total", dimensions: dimensions).increment()
        Timer(label: "dreamd_upstream_request_duration_seconds", dimensions: dimensions)
            .recordNanoseconds(Int64((ContinuousClock.now - start).seconds * 1e9))
    }
}
