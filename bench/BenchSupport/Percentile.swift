extension [Double] {
    /// The nearest-rank percentile `p` (0...1) of a sorted array; NaN when empty.
    public func percentile(_ p: Double) -> Double {
        guard !isEmpty else { return .nan }
        let rank = Swift.max(0, Int((Double(count) * p).rounded(.up)) - 1)
        return self[Swift.min(count - 1, rank)]
    }
}
