import DreamdCore
import Foundation
import Logging

/// One JSON object per line on standard error: `{"ts", "level", "label", "msg", ...metadata}`.
/// Chosen with `DREAMD_LOG_FORMAT=json`; `text` (the default) is swift-log's stream handler.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: JSONValue] = [
            "ts": .string(DreamdJSON.formatDate(Date())),
            "level": .string(event.level.rawValue),
            "label": .string(label),
            "msg": .string(event.message.description),
        ]
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for (key, value) in merged where fields[key] == nil { fields[key] = Self.json(value) }
        if event.level >= .warning { fields["source"] = .string("\(event.file):\(event.line)") }
        guard var data = try? DreamdJSON.encoder().encode(JSONValue.object(fields)) else { return }
        data.append(UInt8(ascii: "\n"))
        FileHandle.standardError.write(data)
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let text): .string(text)
        case .stringConvertible(let convertible): .string(convertible.description)
        case .array(let values): .array(values.map(json))
        case .dictionary(let values): .object(values.mapValues(json))
        }
    }
}
