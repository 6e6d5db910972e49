import DreamdCore
import Foundation

/// How the dashboard writes times, durations, money and ids.
enum Format {
    /// `2026-12-04 15:04:23Z`.
    static func time(_ date: Date?) -> String {
        guard let date else { return "—" }
        let text = DreamdJSON.formatDate(date)
        // `2026-12-04T15:04:23.123Z` → `2026-12-04 15:04:23Z`
        let trimmed = text.split(separator: ".").first.map(String.init) ?? text
        return trimmed.replacingOccurrences(of: "T", with: " ") + (trimmed.hasSuffix("Z") ? "" : "Z")
    }

    /// A date in a time zone: `2026-12-04 16:04 CET`.
    static func time(_ date: Date?, in zone: TimeZone) -> String {
        guard let date else { return "—" }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let abbreviation = zone.abbreviation(for: date) ?? zone.identifier
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d ", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
            + abbreviation
    }

    /// `3d 4h`, `12m 5s`, `40s`.
    static func duration(seconds: Double) -> String {
        let total = Int(seconds.rounded())
        let negative = total < 0
        var s = abs(total)
        let days = s / 86_400; s %= 86_400
        let hours = s / 3600; s %= 3600
        let minutes = s / 60; s %= 60
        let text: String
        if days > 0 { text = "\(days)d \(hours)h" } else if hours > 0 { text = "\(hours)h \(minutes)m" } else if minutes > 0 { text = "\(minutes)m \(s)s" } else { text = "\(s)s" }
        return negative ? "−" + text : text
    }

    /// `$1.234567` trimmed to cents when it is whole cents.
    static func money(_ value: Double?) -> String {
        guard let value else { return "—" }
        if value == 0 { return "$0" }
        return value >= 0.01 ? String(format: "$%.2f", value) : String(format: "$%.6f", value)
    }

    static func id(_ id: UUID) -> String { id.uuidString.lowercased() }
    static func shortID(_ id: UUID) -> String { String(id.uuidString.lowercased().prefix(8)) }

    /// A URL as shown: scheme, host, port and path only. Query strings and user info can carry secrets.
    static func safeURL(_ text: String) -> String {
        guard var parts = URLComponents(string: text) else { return "(unreadable URL)" }
        let hadQuery = parts.query != nil
        parts.user = nil
        parts.password = nil
        parts.query = nil
        parts.fragment = nil
        return (parts.string ?? "(unreadable URL)") + (hadQuery ? "?…" : "")
    }

    /// Pretty JSON for a `<pre>`, or nil for nothing worth showing.
    static func json(_ value: JSONValue?) -> String? {
        guard let value, value != .null else { return nil }
        if case .object(let object) = value, object.isEmpty { return nil }
        let encoder = DreamdJSON.encoder()
        encoder.outputFormatting.insert(.prettyPrinted)
        guard let data = try? encoder.encode(value) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// One line of JSON (audit details).
    static func compactJSON(_ value: JSONValue) -> String? {
        if case .object(let object) = value, object.isEmpty { return nil }
        return try? DreamdJSON.string(value)
    }
}
