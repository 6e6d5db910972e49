import Foundation

/// What the benchmarks read of their own process.
public enum ProcessMemory {
    /// The process's peak resident set (`VmHWM` in /proc/self/status), in MB; 0 where unavailable.
    public static func peakResidentMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return (line.split(separator: " ").compactMap { Double($0) }.first ?? 0) / 1024
        }
        return 0
    }
}
