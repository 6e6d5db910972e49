import DreamdCore
import DreamdSim
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// The dreambooth params every checkpoint test trains with.
let trainingParams = #"{"image_urls": ["https://example.com/1.jpg"], "instance_prompt": "photo of sks dog", "steps": 100, "learning_rate": 2e-6, "base_model": "sd-v1-5"}"#

/// Retention in seconds, as issue 8's tests ask: expiring 2 s before, expired 4 s after training.
let fastRetention = ["DREAMD_CHECKPOINT_RETENTION": "4s", "DREAMD_CHECKPOINT_EXPIRY_WARNING": "2s", "DREAMD_RETENTION_SWEEP_INTERVAL": "100ms"]

extension RunningDaemon {
    /// Trains a checkpoint through a dreambooth job and returns it as `GET /v1/checkpoints` shows it.
    func trainCheckpoint(archive: Bool = false) async throws -> JSONValue {
        let body = #"{"kind": "dreambooth", "params": \#(trainingParams)\#(archive ? #", "archive_checkpoints": true"# : "")}"#
        let submitted = try await submit(body)
        #expect(submitted.status == 201)
        let jobID = try #require(submitted.json["id"]?.stringValue)
        let job = try await waitFinal(jobID)
        #expect(job["state"]?.stringValue == "succeeded")
        let listed = try await request(.GET, "/v1/checkpoints?job_id=\(jobID)").json["data"]?.arrayValue ?? []
        return try #require(listed.first)
    }

    func checkpoint(_ id: String) async throws -> JSONValue {
        try await request(.GET, "/v1/checkpoints/\(id)").json
    }
}

/// A fresh directory for `DREAMD_DATA_DIR`.
func temporaryDataDirectory() -> String {
    let path = NSTemporaryDirectory() + "dreamd-test-" + UUID().uuidString.prefix(8).lowercased()
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func jsonDate(_ value: JSONValue?) -> Date? { value?.stringValue.flatMap(DreamdJSON.parseDate) }
