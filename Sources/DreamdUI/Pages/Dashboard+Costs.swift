import DreamdAPI
import DreamdCore
import Foundation
import Hummingbird

/// Spend per day × kind and per API key for a range of UTC days, as a chart, tables and CSV.
extension Dashboard {
    /// The range `[from, to + 1 day)` of a `from`/`to` query (`yyyy-mm-dd`), by default the last 7 days.
    static func dayRange(_ query: Parameters) throws -> (from: Date, to: Date, fromText: String, toText: String) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? .current
        func day(_ name: String) throws -> Date? {
            guard let text = query[Substring(name)].map(String.init), !text.isEmpty else { return nil }
            let parts = text.split(separator: "-").compactMap { Int($0) }
            guard parts.count == 3, let date = calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2])) else {
                throw PageError.invalid("\(name) must be a date like 2026-12-04")
            }
            return date
        }
        let today = calendar.startOfDay(for: Date())
        let to = try day("to") ?? today
        let from = try day("from") ?? calendar.date(byAdding: .day, value: -6, to: to) ?? to
        guard from <= to else { throw PageError.invalid("from must not be after to") }
        guard let days = calendar.dateComponents([.day], from: from, to: to).day, days <= 366 else { throw PageError.invalid("a range is at most 366 days") }
        let end = calendar.date(byAdding: .day, value: 1, to: to) ?? to
        return (from, end, dayText(from), dayText(to))
    }

    static func dayText(_ date: Date) -> String { String(DreamdJSON.formatDate(date).prefix(10)) }

    @Sendable func costsPage(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await page(request, nav: "navCosts", title: "Costs", template: "costs") { _ in
            let range = try Self.dayRange(request.uri.queryParameters)
            async let daysQuery = queries.spendPerDay(from: range.from, to: range.to)
            async let keysQuery = queries.spendPerKey(from: range.from, to: range.to)
            let (days, keys) = try await (daysQuery, keysQuery)

            let kinds = Array(Set(days.map(\.kind))).sorted()
            let colour = Dictionary(uniqueKeysWithValues: kinds.enumerated().map { ($1, $0 % 6) })
            var dayList: [Date] = []
            var day = range.from
            while day < range.to { dayList.append(day); day = day.addingTimeInterval(86_400) }
            var perDay: [Date: Double] = [:]
            for row in days { perDay[row.day, default: 0] += row.costUSD }
            let peak = max(perDay.values.max() ?? 0, 0.000001)
            let width = 600.0 / Double(max(dayList.count, 1))
            var bars: [[String: Any]] = []
            for (index, date) in dayList.enumerated() {
                var y = 130.0
                for row in days where row.day == date {
                    let h = row.costUSD / peak * 115
                    y -= h
                    bars.append(["x": Double(index) * width + 1, "y": y, "w": max(width - 2, 1), "h": h, "colour": colour[row.kind] ?? 0,
                                 "day": Self.dayText(date), "kind": row.kind, "cost": Format.money(row.costUSD)])
                }
            }
            let step = max(1, dayList.count / 6)
            let labels: [[String: Any]] = dayList.enumerated().filter { $0.offset % step == 0 }.map {
                ["x": Double($0.offset) * width, "text": String(Self.dayText($0.element).dropFirst(5))]
            }
            return [
                "from": range.fromText, "to": range.toText,
                "total": Format.money(days.reduce(0) { $0 + $1.costUSD }), "jobCount": days.reduce(0) { $0 + $1.jobs },
                "bars": bars, "labels": labels, "maxDay": Format.money(perDay.values.max() ?? 0),
                "kinds": kinds.map { ["name": $0, "colour": colour[$0] ?? 0] as [String: Any] },
                "days": days.map { ["day": Self.dayText($0.day), "kind": $0.kind, "jobs": $0.jobs, "cost": Format.money($0.costUSD)] as [String: Any] },
                "keys": keys.map { ["name": $0.keyName, "jobs": $0.jobs, "cost": Format.money($0.costUSD)] as [String: Any] },
            ]
        }
    }

    /// `day,kind,api_key,jobs,cost_usd`: one row per day × kind (api_key empty), then one per key (day and kind empty).
    @Sendable func costsCSV(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard let session = try await session(request) else { return Self.redirect("/ui/login") }
        do {
            let range = try Self.dayRange(request.uri.queryParameters)
            let days = try await queries.spendPerDay(from: range.from, to: range.to)
            let keys = try await queries.spendPerKey(from: range.from, to: range.to)
            var csv = "day,kind,api_key,jobs,cost_usd\r\n"
            for row in days { csv += [Self.dayText(row.day), Self.csvField(row.kind), "", "\(row.jobs)", String(format: "%.6f", row.costUSD)].joined(separator: ",") + "\r\n" }
            for row in keys { csv += ["", "", Self.csvField(row.keyName), "\(row.jobs)", String(format: "%.6f", row.costUSD)].joined(separator: ",") + "\r\n" }
            return Response(status: .ok, headers: [
                .contentType: "text/csv; charset=utf-8", .cacheControl: "no-store",
                .contentDisposition: "attachment; filename=\"dreamd-costs-\(range.fromText)-\(range.toText).csv\"",
            ], body: .init(byteBuffer: ByteBuffer(string: csv)))
        } catch let error as PageError {
            return errorPage(error, session: session, request: request)
        }
    }

    /// A CSV field, quoted when needed; a leading `=`, `+`, `-` or `@` is defused so spreadsheets do not run it.
    static func csvField(_ text: String) -> String {
        var text = text
        if let first = text.first, "=+-@\t\r".contains(first) { text = "'" + text }
        guard text.contains(where: { ",\"\r\n".contains($0) }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
