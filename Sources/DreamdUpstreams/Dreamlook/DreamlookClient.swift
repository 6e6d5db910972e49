import AsyncHTTPClient
import DreamdCore
import Foundation
import Logging

/// The dreamlook.ai API as `upstream-apis.md` §2 describes it.
public struct DreamlookClient: Sendable {
    public static let provider = "dreamlook"
    /// The tag every submission carries so a lost answer can be found again.
    public static let jobTagKey = "dreamd_job_id"

    let http: JSONHTTP

    public init(baseURL: String, apiKey: String?, httpClient: HTTPClient, timeout: Duration = .seconds(60), gate: UpstreamGate? = nil) {
        self.http = JSONHTTP(provider: Self.provider, baseURL: baseURL, apiKey: apiKey, httpClient: httpClient, timeout: timeout, gate: gate)
    }

    /// Waits for the rate budget of the next call (see `submit(jobType:body:paced:logger:)`).
    public func awaitTurn() async throws(UpstreamError) { try await http.awaitTurn() }

    /// `POST /<job_type>`: returns the upstream `job_id`. `paced`: the caller already waited (``awaitTurn()``).
    public func submit(jobType: String, body: JSONValue, paced: Bool = false, logger: Logger) async throws(UpstreamError) -> String {
        let answer = try await http.send(.POST, "/\(jobType)", body: body, paced: paced, logger: logger)
        guard let jobID = answer["job_id"]?.stringValue, !jobID.isEmpty else {
            throw .outcomeUnknown(code: "upstream_bad_response", message: "dreamlook accepted the job but sent no job_id")
        }
        return jobID
    }

    /// `GET /jobs/<job_type>/<job_id>`: the job object.
    public func job(jobType: String, id: String, logger: Logger) async throws(UpstreamError) -> DreamlookJob {
        let escaped = id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? id
        return DreamlookJob(try await http.send(.GET, "/jobs/\(jobType)/\(escaped)", logger: logger))
    }

    /// How many jobs `GET /jobs/<job_type>` lists at most.
    public static let listingLimit = 50

    /// `GET /jobs/<job_type>`: the most recent jobs, newest first.
    public func recentJobs(jobType: String, logger: Logger) async throws(UpstreamError) -> [DreamlookJob] {
        let answer = try await http.send(.GET, "/jobs/\(jobType)", logger: logger)
        let list = answer["jobs"]?.arrayValue ?? answer.arrayValue ?? []
        return list.map(DreamlookJob.init)
    }
}

/// A dreamlook job object, read leniently: only the fields dreamd acts on are typed.
public struct DreamlookJob: Sendable, Hashable {
    public let raw: JSONValue

    public init(_ raw: JSONValue) { self.raw = raw }

    public var jobID: String? { raw["job_id"]?.stringValue }
    public var state: String? { raw["state"]?.stringValue }
    public var failureReason: String? { raw["failure_reason"]?.stringValue }
    public var percentageDone: Double? { raw["percentage_done"]?.doubleValue }
    public var runningDuration: Double? { raw["running_duration"]?.doubleValue }
    /// When the job stopped running (dreamlook's zone-less UTC timestamps).
    public var runningEnd: Date? { raw["state_running_end"]?.stringValue.flatMap(DreamdJSON.parseDate) }
    /// When dreamlook created the job (its queue entry).
    public var queuedStart: Date? { raw["state_queued_start"]?.stringValue.flatMap(DreamdJSON.parseDate) }

    /// The checkpoints a dreambooth job trained.
    public var checkpoints: [TrainedCheckpoint] {
        let trainedAt = runningEnd ?? Date()
        return (raw["dreambooth_result"]?["checkpoints"]?.arrayValue ?? []).compactMap { item in
            guard let id = item["checkpoint_id"]?.stringValue else { return nil }
            return TrainedCheckpoint(
                upstreamCheckpointID: id, trainedAt: trainedAt, checkpointType: item["checkpoint_type"]?.stringValue,
                modelType: item["model_type"]?.stringValue, fileFormat: item["file_format"]?.stringValue,
                isExtractedLora: item["is_extracted_lora"]?.boolValue ?? false, trainingStep: item["training_step"]?.intValue,
                sizeBytes: item["size_bytes"]?.doubleValue.map { Int64($0) }, url: item["url"]?.stringValue
            )
        }
    }
    public var isFinished: Bool { state == "success" || state == "failure" }

    /// The value of the tag `key`, if the job carries it.
    public func tag(_ key: String) -> String? {
        raw["tags"]?.arrayValue?.first { $0["key"]?.stringValue == key }?["value"]?.stringValue
    }
}
