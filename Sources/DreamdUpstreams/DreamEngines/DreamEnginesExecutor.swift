import DreamdCore
import Foundation
import Logging
import Synchronization

/// Runs Dream Engines rollouts: `predict` (one video) and `predict_batch` (K videos from one frame).
///
/// A submission is the whole rollout in one step: `POST /v1/rollouts` with `Idempotency-Key` = the job
/// id (falling back to `POST /v1/predict` where the route is missing), then the video is streamed into
/// the data directory with its SHA-256. The call may block through a cold start; the worker's lease
/// heartbeat keeps the claim alive meanwhile.
///
/// - 402 (out of credits) pauses all dispatch to Dream Engines for `pauseCooldown` (or until a resume)
///   and puts the job back in the queue without using up an attempt.
/// - 401/403 fail the job and mark the upstream unhealthy until a call succeeds.
/// - 429, 502/503/504 and transport errors are retried by the client (`RetryPolicy`), then by the queue.
public struct DreamEnginesExecutor: JobExecutor {
    public let client: DreamEnginesClient
    public let catalog: ModelCatalog
    public let storage: RolloutStorage
    public let tracker: UpstreamHealth
    public let pauseCooldown: Duration
    public let maxInFlight: Int?
    /// Limits of fetching a `start_frame.url`.
    public let inputMaxBytes: Int
    public let inputTimeout: Duration
    let inputCache = InputHeaderCache()

    public var kinds: [JobKind] { [.predict, .predictBatch] }
    public var provider: String { DreamEnginesClient.provider }
    public var health: UpstreamHealth? { tracker }

    public init(client: DreamEnginesClient, catalog: ModelCatalog, storage: RolloutStorage, health: UpstreamHealth,
                pauseCooldown: Duration = .seconds(600), maxInFlight: Int? = 8,
                inputMaxBytes: Int = 20 << 20, inputTimeout: Duration = .seconds(20)) {
        self.client = client
        self.catalog = catalog
        self.storage = storage
        self.tracker = health
        self.pauseCooldown = pauseCooldown
        self.maxInFlight = maxInFlight
        self.inputMaxBytes = inputMaxBytes
        self.inputTimeout = inputTimeout
    }

    // MARK: Validation and estimates

    /// Checks the params' shape, and against the cached catalog when one was fetched.
    public func validate(kind: JobKind, params: JSONValue) throws(ValidationError) {
        _ = try PredictParams(kind: kind, params: params, catalog: catalog.snapshot)
    }

    /// The params' schema; once the catalog was fetched, `model` names its active model.
    public func paramsSchema(for kind: JobKind) -> JSONValue {
        PredictParams.schema(for: kind, activeModel: catalog.snapshot?.active?.slug)
    }

    /// Loads the catalog if it is older than its TTL, validates against it, and reads the header of a
    /// `start_frame.url` (bounded in size and time; headers are remembered for a few minutes).
    public func validateSubmission(kind: JobKind, params: JSONValue) async throws(SubmissionCheckError) {
        _ = try await checkedParams(kind: kind, params: params)
    }

    public var estimatesCost: Bool { true }

    /// Frames × the model's price per frame.
    public func estimate(kind: JobKind, params: JSONValue) async throws(SubmissionCheckError) -> CostEstimate? {
        let (parsed, spec) = try await checkedParams(kind: kind, params: params)
        return CostEstimate(model: spec.slug, framesPerRow: parsed.frames, pricePerFrameUSD: spec.pricePerFrameUSD)
    }

    func checkedParams(kind: JobKind, params: JSONValue) async throws(SubmissionCheckError) -> (PredictParams, ModelSpec) {
        let snapshot = try await catalog.current()
        let parsed: PredictParams
        let spec: ModelSpec
        do throws(ValidationError) {
            parsed = try PredictParams(kind: kind, params: params, catalog: snapshot)
            spec = try PredictParams.model(parsed.model, in: snapshot)
        } catch {
            throw .invalid(error)
        }
        if case .url(let url) = parsed.frame {
            let info: ImageInfo
            if let cached = inputCache.get(url) {
                info = cached
            } else {
                let logger = Logger(label: "dreamd.dream.input")
                let data: Data
                do throws(DreamEnginesError) {
                    data = try await client.fetchInput(url: url, maxBytes: inputMaxBytes, timeout: inputTimeout, logger: logger)
                } catch {
                    throw .invalid(ValidationError(field: "params.start_frame.url", message: error.jobError.message))
                }
                do throws(ImageInfo.ParseError) { info = try ImageInfo(data) } catch {
                    throw .invalid(ValidationError(field: "params.start_frame.url", message: error.description))
                }
                inputCache.put(url, info)
            }
            do throws(ValidationError) { try PredictParams.check(info, against: spec, field: "params.start_frame.url") } catch { throw .invalid(error) }
        }
        return (parsed, spec)
    }

    // MARK: Running

    public func submit(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        let job = claimed.job
        guard tracker.isAccepting else {
            return .deferred(until: nil, reason: JobError(code: "upstream_paused", message: "Dream Engines dispatch is paused: \(tracker.status.reason ?? "paused")"))
        }
        let params: PredictParams
        do throws(ValidationError) {
            // The catalog was checked at submit time; the upstream checks again.
            params = try PredictParams(kind: job.kind, params: job.params, catalog: nil)
        } catch {
            return .failed(JobError(code: "invalid_params", message: error.description), upstreamState: nil)
        }
        let frame: Data
        let info: ImageInfo
        switch params.frame {
        case .inline(let data, let header):
            frame = data
            info = header
        case .url(let url):
            do {
                frame = try await client.fetchInput(url: url, maxBytes: inputMaxBytes, timeout: inputTimeout, logger: logger)
                info = try ImageInfo(frame)
            } catch let error as DreamEnginesError {
                return outcome(for: error, logger: logger)
            } catch {
                return .failed(JobError(code: "input_invalid", message: "start_frame.url \(error)"), upstreamState: nil)
            }
        }
        return await tracker.inFlight {
            do throws(DreamEnginesError) {
                let result: JSONValue
                let cost: Double?
                if job.kind == .predictBatch {
                    // An earlier submission may have been processed: /v1/predict/batch would charge again.
                    if let since = claimed.reconcileSince { throw Self.notResent("/v1/predict/batch", since: since) }
                    (result, cost) = try await runBatch(job, params, frame: frame, info: info, logger: logger)
                } else {
                    (result, cost) = try await runRollout(job, params, frame: frame, info: info,
                                                          unsettledSince: claimed.reconcileSince, logger: logger)
                }
                tracker.markHealthy()
                return .succeeded(result: result, costUSD: cost, upstreamState: "succeeded")
            } catch {
                return outcome(for: error, logger: logger)
            }
        }
    }

    /// A predict job never waits upstream: it has nothing to poll.
    public func poll(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        .retry(JobError(code: "unexpected_poll", message: "Dream Engines rollouts finish within their submission"), retryAfter: nil)
    }

    /// Maps a failure to the queue's outcome, updating the upstream's health.
    func outcome(for error: DreamEnginesError, logger: Logger) -> StepOutcome {
        if error.isInsufficientCredits {
            let until = Date().addingTimeInterval(pauseCooldown.seconds)
            tracker.pause(until: until, reason: error.jobError.message)
            logger.warning("Dream Engines is out of credits: dispatch paused; the job goes back to the queue",
                           metadata: ["until": "\(DreamdJSON.formatDate(until))"])
            return .deferred(until: nil, reason: error.jobError)
        }
        if error.isAuthFailure {
            tracker.markUnhealthy(reason: error.jobError.message)
            logger.error("Dream Engines refused the API key (DREAM_API_KEY)", metadata: ["error": "\(error.jobError.message)"])
            return .failed(error.jobError, upstreamState: nil)
        }
        if error.isRetryable { return .retry(error.jobError, retryAfter: error.retryAfter) }
        return .failed(error.jobError, upstreamState: nil)
    }

    func input(_ job: Job, _ params: PredictParams, frame: Data, info: ImageInfo, actions: Data) -> RolloutInput {
        RolloutInput(model: params.model, frame: frame, frameContentType: info.format == .png ? "image/png" : "image/jpeg",
                     frameFilename: info.format == .png ? "frame.png" : "frame.jpg", actions: actions, seed: params.seed,
                     numSteps: params.numSteps, guidance: params.guidance, score: params.score)
    }

    /// The failure of a job whose earlier submission (begun at `since`) may have been processed, on a route
    /// that does not replay: it is not sent again.
    static func notResent(_ route: String, since: Date) -> DreamEnginesError {
        .outcomeUnknown("an earlier submission (begun \(DreamdJSON.formatDate(since))) was cut off before its answer; \(route) does not replay by Idempotency-Key, so it was not sent again")
    }

    /// One rollout: `/v1/rollouts` then the video download, or the legacy `/v1/predict`. `/v1/rollouts`
    /// replays a known key, so a job whose earlier submission is unsettled may be sent there again; the legacy
    /// route may not.
    func runRollout(_ job: Job, _ params: PredictParams, frame: Data, info: ImageInfo, unsettledSince: Date? = nil,
                    logger: Logger) async throws(DreamEnginesError) -> (JSONValue, Double?) {
        guard let actions = params.actions.first else { throw .input("no actions", transient: false) }
        let key = job.id.uuidString.lowercased()
        let videoPath = storage.videoPath(jobID: job.id)
        let request = input(job, params, frame: frame, info: info, actions: actions.npyBytes)
        var answer: RolloutAnswer
        var endpoint = "/v1/rollouts"
        do throws(DreamEnginesError) {
            answer = try await client.rollout(request, idempotencyKey: key, videoPath: videoPath, storage: storage, logger: logger)
        } catch {
            guard case .endpointMissing = error else { throw error }
            if let since = unsettledSince { throw Self.notResent("/v1/predict", since: since) }
            logger.info("Dream Engines has no /v1/rollouts; using the legacy /v1/predict")
            endpoint = "/v1/predict"
            answer = .video(try await client.predictLegacy(request, idempotencyKey: key, videoPath: videoPath, storage: storage, logger: logger))
        }
        var result: [String: JSONValue] = ["endpoint": .string(endpoint), "model": .string(params.model)]
        let cost: Double?
        let file: StoredFile
        switch answer {
        case .envelope(let envelope):
            guard let url = envelope.videoURL, !url.isEmpty else { throw .badResponse("the rollout envelope has no video_url") }
            do throws(DreamEnginesError) {
                file = try await client.download(videoURL: url, to: videoPath, storage: storage, logger: logger)
            } catch {
                // The rollout is paid for: a later attempt replays it (same Idempotency-Key) with a fresh URL.
                if case .storage = error { throw error }
                throw .transport("downloading the rollout video failed: \(error.jobError.message)")
            }
            result["rollout_id"] = envelope.raw["id"] ?? .null
            for key in ["frames", "resolution", "engine_wall_ms", "seed", "created", "video_url_expires_at", "psnr_db", "ssim", "lpips"] {
                if let value = envelope.raw[key], !value.isNull { result[key] = value }
            }
            if let model = envelope.raw["model"]?.stringValue { result["model"] = .string(model) }
            cost = envelope.costUSD
        case .video(let legacy):
            file = legacy.file
            result["rollout_id"] = legacy.requestID.map(JSONValue.string) ?? .null
            result["frames"] = .number(Double(legacy.frames ?? actions.rows + 1))
            if let wall = legacy.engineWallMs { result["engine_wall_ms"] = .number(wall) }
            result["seed"] = .number(Double(params.seed))
            cost = legacy.chargeUSD
        }
        if result["resolution"] == nil, let spec = catalog.snapshot?.model(params.model) {
            result["resolution"] = [.number(Double(spec.resolution.height)), .number(Double(spec.resolution.width))]
        }
        result["path"] = .string(file.path)
        result["sha256"] = .string(file.sha256)
        result["bytes"] = .number(Double(file.bytes))
        return (.object(result), cost)
    }

    /// K rollouts from one frame: `/v1/predict/batch`, the tar unpacked into the job's folder.
    func runBatch(_ job: Job, _ params: PredictParams, frame: Data, info: ImageInfo, logger: Logger) async throws(DreamEnginesError) -> (JSONValue, Double?) {
        let output = try await client.predictBatch(
            frame: frame, frameContentType: info.format == .png ? "image/png" : "image/jpeg",
            frameFilename: info.format == .png ? "frame.png" : "frame.jpg", actions: params.actions.map(\.npyBytes),
            seed: params.seed, numSteps: params.numSteps, guidance: params.guidance, idempotencyKey: job.id.uuidString.lowercased(),
            directory: storage.batchDirectory(jobID: job.id), storage: storage, logger: logger)
        let names = output.files.keys.sorted()
        guard names.count == params.actions.count else {
            throw .badResponse("asked for \(params.actions.count) rollouts, the batch archive holds \(names.count)")
        }
        var videos: [JSONValue] = []
        for (index, name) in names.enumerated() {
            guard let file = output.files[name] else { continue }
            videos.append(["index": .number(Double(index)), "name": .string(name), "path": .string(file.path),
                           "sha256": .string(file.sha256), "bytes": .number(Double(file.bytes)),
                           "frames": .number(Double(params.actions[index].rows + 1))])
        }
        var result: [String: JSONValue] = [
            "endpoint": "/v1/predict/batch", "model": .string(params.model), "batch_size": .number(Double(output.batchSize ?? names.count)),
            "frames": .number(Double(params.frames)), "seed": .number(Double(params.seed)), "videos": .array(videos),
        ]
        result["request_id"] = output.requestID.map(JSONValue.string) ?? .null
        if let wall = output.engineWallMs { result["engine_wall_ms"] = .number(wall) }
        return (.object(result), output.chargeUSD)
    }
}

/// Image headers of fetched `start_frame.url`s, remembered for a few minutes so a bulk submission that
/// repeats one URL fetches it once.
final class InputHeaderCache: Sendable {
    private let entries = Mutex<[String: (ImageInfo, Date)]>([:])
    let ttl: TimeInterval = 300
    let capacity = 1024

    func get(_ url: String) -> ImageInfo? {
        entries.withLock { entries in
            guard let (info, at) = entries[url], Date().timeIntervalSince(at) < ttl else { return nil }
            return info
        }
    }

    func put(_ url: String, _ info: ImageInfo) {
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll() }
            entries[url] = (info, Date())
        }
    }
}
