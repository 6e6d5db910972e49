import Foundation
import Synchronization

/// The optional configuration file of `dreamd serve --config FILE` and `dreamd config check --config FILE`.
///
/// Its format is the `KEY=value` lines of a systemd `EnvironmentFile` (so one file can serve both):
/// `#` comments, blank lines, an optional `export ` prefix, values optionally in single or double quotes.
/// Keys are the environment variables of `README.md`; the environment wins over the file, so a one-off
/// `DREAMD_LOG_LEVEL=debug dreamd serve --config ...` works. Unknown keys are refused by name, which
/// catches typos that would otherwise silently leave a default in place.
public struct ConfigFile: Sendable {
    public var path: String
    /// Settings in file order, with their line numbers.
    public var entries: [(key: String, value: String, line: Int)]

    /// Keys read outside `DaemonConfiguration` (logging, migrations) or only as fallbacks.
    static let extraKnownKeys: Set<String> = ["DREAMD_LOG_LEVEL", "DREAMD_LOG_FORMAT", "DREAMD_MIGRATIONS_DIR", "DREAM_ENGINE_API_KEY"]

    /// Reads and parses `path`; errors name the file and line.
    public init(path: String) throws(ConfigurationError) {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigurationError(key: "--config", message: "cannot read \(path): \(error.localizedDescription)")
        }
        try self.init(path: path, text: text)
    }

    public init(path: String, text: String) throws(ConfigurationError) {
        self.path = path
        entries = []
        var seen: [String: Int] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasSuffix("\r") { line.removeLast() }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst("export ".count)).trimmingCharacters(in: .whitespaces) }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigurationError(key: "--config", message: "\(path) line \(number): expected KEY=value, got \"\(line.prefix(40))\"")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, key.allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" }) else {
                throw ConfigurationError(key: "--config", message: "\(path) line \(number): \"\(key)\" is not a setting name (UPPER_CASE)")
            }
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            if let earlier = seen[key] {
                throw ConfigurationError(key: key, message: "set twice in \(path) (lines \(earlier) and \(number))")
            }
            seen[key] = number
            entries.append((key, value, number))
        }
    }

    /// The file's settings under the environment's (the environment wins).
    public func merged(under environment: [String: String]) -> [String: String] {
        var result: [String: String] = [:]
        for entry in entries { result[entry.key] = entry.value }
        result.merge(environment) { _, fromEnvironment in fromEnvironment }
        return result
    }
}

extension DaemonConfiguration {
    /// The configuration from `environment` and, when given, a `ConfigFile` under it. Every key the file
    /// sets must be one `dreamd` reads.
    public static func load(environment: [String: String], file: ConfigFile?) throws(ConfigurationError) -> (DaemonConfiguration, [String: String]) {
        guard let file else { return (try DaemonConfiguration(environment: environment), environment) }
        let merged = file.merged(under: environment)
        let keys = KeyLog()
        let configuration = try DaemonConfiguration(environment: merged, keyLog: keys)
        let known = keys.keys.union(ConfigFile.extraKnownKeys)
        if let unknown = file.entries.first(where: { !known.contains($0.key) }) {
            throw ConfigurationError(key: unknown.key, message: "is not a dreamd setting (\(file.path) line \(unknown.line))")
        }
        return (configuration, merged)
    }
}

/// The keys a configuration read, to tell unknown keys in a config file.
final class KeyLog: Sendable {
    private let read = Mutex<Set<String>>([])
    func record(_ key: String) { _ = read.withLock { $0.insert(key) } }
    var keys: Set<String> { read.withLock { $0 } }
}
