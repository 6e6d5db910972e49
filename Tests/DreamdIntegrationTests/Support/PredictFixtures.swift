import Crypto
import DreamdCore
import DreamdSim
import DreamdUpstreams
import Foundation

/// Inputs for Dream Engines jobs: frames, action arrays, job bodies, and a data directory per test.
enum PredictFixtures {
    static let model = DreamEnginesSimulator.activeSlug
    static let inactiveModel = DreamEnginesSimulator.inactiveSlug

    static let frame640x480 = SimulatedFrame.png(width: 640, height: 480).base64EncodedString()

    static func frame(width: Int, height: Int) -> String { SimulatedFrame.png(width: width, height: height).base64EncodedString() }

    /// `.npy` `<f4` bytes of shape (rows, columns), a small sweep.
    static func actions(rows: Int = 48, columns: Int = 384) -> NPYFloat32Matrix {
        NPYFloat32Matrix(values: (0..<rows).map { t in (0..<columns).map { d in 0.05 * sin(Double(t) / 8 + Double(d) / 100) } })
    }

    static func actionsBase64(rows: Int = 48, columns: Int = 384) -> String { actions(rows: rows, columns: columns).npyBytes.base64EncodedString() }

    /// A `.npy` of float64 (`<f8`) values: the wrong dtype.
    static func float64NPYBase64(rows: Int = 48, columns: Int = 384) -> String {
        var header = "{'descr': '<f8', 'fortran_order': False, 'shape': (\(rows), \(columns)), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        data.append(contentsOf: header.utf8)
        data.append(Data(count: rows * columns * 8))
        return data.base64EncodedString()
    }

    static func params(model: String = model, frame: JSONValue? = nil, actions: JSONValue? = nil, extra: [String: JSONValue] = [:]) -> JSONValue {
        var params: [String: JSONValue] = [
            "model": .string(model),
            "start_frame": frame ?? ["base64": .string(frame640x480)],
            "actions": actions ?? ["base64": .string(actionsBase64())],
        ]
        params.merge(extra) { $1 }
        return .object(params)
    }

    /// A `predict` job body.
    static func predictBody(model: String = model, frame: JSONValue? = nil, actions: JSONValue? = nil,
                            extra: [String: JSONValue] = [:], job: [String: JSONValue] = [:]) -> String {
        var body: [String: JSONValue] = ["kind": "predict", "params": params(model: model, frame: frame, actions: actions, extra: extra)]
        body.merge(job) { $1 }
        return (try? DreamdJSON.string(JSONValue.object(body))) ?? "{}"
    }

    /// A `predict_batch` job body with `k` sequences of `rows` actions.
    static func batchBody(k: Int, rows: Int = 12) -> String {
        let sequences = (0..<k).map { _ in JSONValue.object(["base64": .string(actionsBase64(rows: rows))]) }
        let body: JSONValue = ["kind": "predict_batch", "params": [
            "model": .string(model), "start_frame": ["base64": .string(frame640x480)], "actions": .array(sequences), "seed": 7,
        ]]
        return (try? DreamdJSON.string(body)) ?? "{}"
    }
}

/// A fresh data directory for `body`, removed afterwards.
func withDataDirectory<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("dreamd-data-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// Daemon settings for Dream Engines tests: the simulator, a data directory, fast retries.
func predictOverrides(_ simulator: Simulator, dataDirectory: String, _ extra: [String: String] = [:]) -> [String: String] {
    var overrides = [
        "DREAM_BASE_URL": simulator.baseURL,
        "DREAMD_DATA_DIR": dataDirectory,
        "DREAMD_DREAM_TIMEOUT": "20s",
        "DREAMD_DREAM_PAUSE_COOLDOWN": "10m",
        // Rollouts hold their claim for a while; a short lease on a loaded test machine would be taken over.
        "DREAMD_LEASE_DURATION": "15s",
    ]
    overrides.merge(extra) { $1 }
    return overrides
}

/// The SHA-256 of a file, hex.
func sha256Hex(ofFile path: String) throws -> String {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return SHA256Digest.hex(data)
}

enum SHA256Digest {
    static func hex(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }
}
