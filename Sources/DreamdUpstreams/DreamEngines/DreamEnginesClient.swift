import AsyncHTTPClient
import DreamdCore
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// The Dream Engines API as `upstream-apis.md` §1 and the official Python SDK (`dream-engine`) speak it.
///
/// Every call goes through the SDK's `RetryPolicy` (transient failures retried with backoff and jitter,
/// `Retry-After` honoured). Rollouts carry an `Idempotency-Key`, which `/v1/rollouts` replays, so a retried
/// rollout is never paid twice. `/v1/predict` and `/v1/predict/batch` promise no replay: they are retried
/// only when the request surely was not processed (429, no connection); an answer lost after sending is
/// `DreamEnginesError.outcomeUnknown`, never sent again.
public struct DreamEnginesClient: Sendable {
    public static let provider = "dream"
    public static let defaultBaseURL = "https://api.dreamengines.run"

    public let baseURL: String
    let apiKey: String?
    let httpClient: HTTPClient
    /// Fetches `start_frame.url` inputs through the SSRF guard (`nil`: URL inputs are refused).
    let inputFetcher: GuardedFetcher?
    /// A rollout call's deadline: it covers a cold start (70–90 s) with headroom. The SDK's default is 300 s.
    public let rolloutTimeout: Duration
    /// Deadline of the small calls (catalog, status).
    public let requestTimeout: Duration
    public let retryPolicy: RetryPolicy
    /// Largest JSON answer read.
    let maxJSONBytes = 8 << 20

    /// - Parameter httpClient: should follow redirects: Dream Engines' hosting answers `303` to a
    ///   `?__modal_function_call_id=...` URL on long calls (the SDK sets `follow_redirects=True`).
    public init(baseURL: String = defaultBaseURL, apiKey: String?, httpClient: HTTPClient, rolloutTimeout: Duration = .seconds(300),
                requestTimeout: Duration = .seconds(30), retryPolicy: RetryPolicy = RetryPolicy(), inputFetcher: GuardedFetcher? = nil) {
        self.inputFetcher = inputFetcher
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.httpClient = httpClient
        self.rolloutTimeout = rolloutTimeout
        self.requestTimeout = requestTimeout
        self.retryPolicy = retryPolicy
    }

    // MARK: Catalog

    /// `GET /v1/models`: every model (`{"data": [ModelSpec, ...]}`).
    public func listModels(logger: Logger) async throws(DreamEnginesError) -> [JSONValue] {
        let answer = try await retryPolicy.run(logger: logger) { _ throws(DreamEnginesError) in
            try await json(.GET, "/v1/models", logger: logger)
        }
        guard let data = answer["data"]?.arrayValue else { throw .badResponse("GET /v1/models answered without a data array") }
        return data
    }

    /// `GET /v1/models/{slug}`: one model, or `nil` on 404.
    public func model(slug: String, logger: Logger) async throws(DreamEnginesError) -> JSONValue? {
        let encoded = slug.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? slug
        do throws(DreamEnginesError) {
            return try await retryPolicy.run(logger: logger) { _ throws(DreamEnginesError) in
                try await json(.GET, "/v1/models/\(encoded)", logger: logger)
            }
        } catch {
            if case .status(404, _, _) = error { return nil }
            throw error
        }
    }

    // MARK: Rollouts

    /// `POST /v1/rollouts` (multipart `start_frame`, `actions`, `params`). The answer is the JSON
    /// envelope, or (unusual) the video itself, which is then streamed to `videoPath`.
    /// Throws `.endpointMissing` when the deployment has no such route (use `predictLegacy`).
    public func rollout(_ input: RolloutInput, idempotencyKey: String, videoPath: String, storage: RolloutStorage,
                        logger: Logger) async throws(DreamEnginesError) -> RolloutAnswer {
        var form = MultipartFormData()
        form.addFile(name: "start_frame", filename: input.frameFilename, contentType: input.frameContentType, data: input.frame)
        form.addFile(name: "actions", filename: "actions.npy", contentType: "application/octet-stream", data: input.actions)
        var params: [String: JSONValue] = ["model": .string(input.model), "seed": .number(Double(input.seed)), "score": .bool(input.score)]
        if let steps = input.numSteps { params["num_steps"] = .number(Double(steps)) }
        if let guidance = input.guidance { params["guidance"] = .number(guidance) }
        form.addField(name: "params", value: (try? DreamdJSON.string(JSONValue.object(params))) ?? "{}")
        return try await postForm("/v1/rollouts", form, idempotencyKey: idempotencyKey, routeMayBeMissing: true, logger: logger) {
            response throws(DreamEnginesError) in
            if response.headers.first(name: "content-type")?.contains("json") ?? true {
                let buffer = try await collect(response, limit: maxJSONBytes)
                guard let envelope = try? DreamdJSON.decode(JSONValue.self, from: String(buffer: buffer)), envelope.objectValue != nil else {
                    throw DreamEnginesError.badResponse("POST /v1/rollouts answered with invalid JSON: \(String(buffer: buffer).prefix(200))")
                }
                return .envelope(RolloutEnvelope(envelope))
            }
            let file = try await storage.store(response.body, at: videoPath)
            return .video(LegacyRollout(headers: response.headers, file: file))
        }
    }

    /// `POST /v1/predict` (legacy; multipart `frame`, `actions`, fields `seed`, `num_steps`, `guidance`):
    /// the answer is the mp4, streamed to `videoPath`, with its metadata in `X-DreamEngine-*` headers.
    public func predictLegacy(_ input: RolloutInput, idempotencyKey: String, videoPath: String, storage: RolloutStorage,
                              logger: Logger) async throws(DreamEnginesError) -> LegacyRollout {
        var form = MultipartFormData()
        form.addField(name: "seed", value: "\(input.seed)")
        if let steps = input.numSteps { form.addField(name: "num_steps", value: "\(steps)") }
        if let guidance = input.guidance { form.addField(name: "guidance", value: "\(guidance)") }
        form.addFile(name: "frame", filename: input.frameFilename, contentType: input.frameContentType, data: input.frame)
        form.addFile(name: "actions", filename: "actions.npy", contentType: "application/octet-stream", data: input.actions)
        return try await postForm("/v1/predict", form, idempotencyKey: idempotencyKey, replays: false, logger: logger) { response throws(DreamEnginesError) in
            LegacyRollout(headers: response.headers, file: try await storage.store(response.body, at: videoPath))
        }
    }

    /// `POST /v1/predict/batch` (one `frame`, K `actions` parts): the answer is a tar of
    /// `rollout_000.mp4 ...`, unpacked as it streams into `directory`.
    public func predictBatch(frame: Data, frameContentType: String, frameFilename: String, actions: [Data], seed: Int, numSteps: Int?,
                             guidance: Double?, idempotencyKey: String, directory: String, storage: RolloutStorage,
                             logger: Logger) async throws(DreamEnginesError) -> BatchOutput {
        var form = MultipartFormData()
        form.addField(name: "seed", value: "\(seed)")
        if let numSteps { form.addField(name: "num_steps", value: "\(numSteps)") }
        if let guidance { form.addField(name: "guidance", value: "\(guidance)") }
        form.addFile(name: "frame", filename: frameFilename, contentType: frameContentType, data: frame)
        for (index, blob) in actions.enumerated() {
            form.addFile(name: "actions", filename: String(format: "actions_%03d.npy", index), contentType: "application/octet-stream", data: blob)
        }
        return try await postForm("/v1/predict/batch", form, idempotencyKey: idempotencyKey, replays: false, logger: logger) { response throws(DreamEnginesError) in
            let files = try await unpack(response.body, into: directory, storage: storage)
            return BatchOutput(headers: response.headers, files: files)
        }
    }

    /// `GET {video_url}`: the signed URL needs no key, and none is sent (it may point at another host).
    public func download(videoURL: String, to path: String, storage: RolloutStorage, logger: Logger) async throws(DreamEnginesError) -> StoredFile {
        try await retryPolicy.run(logger: logger) { _ throws(DreamEnginesError) in
            var request = HTTPClientRequest(url: videoURL)
            request.headers.add(name: "user-agent", value: Self.userAgent)
            let response = try await execute(request, timeout: rolloutTimeout, logger: logger)
            guard (200..<300).contains(response.status.code) else {
                throw DreamEnginesError.classify(status: response.status, headers: response.headers, body: try await collect(response, limit: 64 << 10))
            }
            return try await storage.store(response.body, at: path)
        }
    }

    /// Fetches a job's `start_frame.url` (bounded in size and time; no key sent).
    public func fetchInput(url: String, maxBytes: Int, timeout: Duration, logger: Logger) async throws(DreamEnginesError) -> Data {
        guard let inputFetcher else { throw .input("start_frame.url inputs are not enabled on this daemon", transient: false) }
        do {
            return Data(buffer: try await inputFetcher.get(url, maxBytes: maxBytes, timeout: timeout, logger: logger))
        } catch {
            throw .input("start_frame.url \(error.description)", transient: error.isTransient)
        }
    }

    // MARK: Plumbing

    static let userAgent = "dreamd/0.1 (dream-engine wire protocol)"

    func request(_ method: HTTPMethod, _ path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "user-agent", value: Self.userAgent)
        request.headers.add(name: "accept", value: "application/json")
        if let apiKey, !apiKey.isEmpty { request.headers.add(name: "authorization", value: "Bearer \(apiKey)") }
        return request
    }

    func execute(_ request: HTTPClientRequest, timeout: Duration, logger: Logger) async throws(DreamEnginesError) -> HTTPClientResponse {
        do {
            return try await httpClient.execute(request, timeout: .nanoseconds(Int64(timeout.seconds * 1e9)), logger: logger)
        } catch {
            throw .transport(String(describing: error))
        }
    }

    /// POSTs `form` with `Idempotency-Key` under the retry policy; a non-2xx answer is classified as the SDK
    /// does, a 2xx one handed to `read`. With `replays` (the route replays a known key: `/v1/rollouts`) every
    /// try sends the same key, so a retry is never paid twice. Without it, a failure after the request may
    /// have been processed becomes `.outcomeUnknown` and is not retried.
    func postForm<T: Sendable>(
        _ path: String, _ form: MultipartFormData, idempotencyKey: String, routeMayBeMissing: Bool = false, replays: Bool = true,
        logger: Logger, read: (HTTPClientResponse) async throws(DreamEnginesError) -> T
    ) async throws(DreamEnginesError) -> T {
        let body = form.body
        func lost(_ why: String) -> DreamEnginesError {
            .outcomeUnknown("POST \(path) may have been processed (and charged) but its answer was lost (\(why)); it does not replay by Idempotency-Key, so it was not sent again")
        }
        return try await retryPolicy.run(logger: logger) { _ throws(DreamEnginesError) in
            var request = request(.POST, path)
            request.headers.replaceOrAdd(name: "content-type", value: form.contentType)
            request.headers.replaceOrAdd(name: "idempotency-key", value: idempotencyKey)
            request.body = .bytes(body)
            let response: HTTPClientResponse
            do {
                response = try await httpClient.execute(request, timeout: .nanoseconds(Int64(rolloutTimeout.seconds * 1e9)), logger: logger)
            } catch {
                let failure = DreamEnginesError.transport(error)
                if replays || DreamEnginesError.failedToConnect(error) { throw failure }
                throw lost(failure.jobError.message)
            }
            guard (200..<300).contains(response.status.code) else {
                let failure = DreamEnginesError.classify(status: response.status, headers: response.headers,
                                                         body: try await collect(response, limit: 64 << 10), routeMayBeMissing: routeMayBeMissing)
                if !replays, [502, 503, 504].contains(response.status.code) { throw lost(failure.jobError.message) }
                throw failure
            }
            if replays { return try await read(response) }
            do throws(DreamEnginesError) {
                return try await read(response)
            } catch {
                switch error {
                case .transport, .badResponse, .storage: throw lost(error.jobError.message)
                default: throw error
                }
            }
        }
    }

    func collect(_ response: HTTPClientResponse, limit: Int) async throws(DreamEnginesError) -> ByteBuffer {
        do {
            return try await response.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw .badResponse("the answer is larger than \(limit) bytes")
        } catch {
            throw .transport(String(describing: error))
        }
    }

    func json(_ method: HTTPMethod, _ path: String, logger: Logger) async throws(DreamEnginesError) -> JSONValue {
        let response = try await execute(request(method, path), timeout: requestTimeout, logger: logger)
        let buffer = try await collect(response, limit: maxJSONBytes)
        guard (200..<300).contains(response.status.code) else {
            throw DreamEnginesError.classify(status: response.status, headers: response.headers, body: buffer)
        }
        do {
            return try DreamdJSON.decode(JSONValue.self, from: String(buffer: buffer))
        } catch {
            throw .badResponse("\(method) \(path) answered with invalid JSON: \(String(buffer: buffer).prefix(200))")
        }
    }

    /// Unpacks a streamed tar into `directory`, one file per member (names reduced to their last part).
    func unpack(_ body: HTTPClientResponse.Body, into directory: String, storage: RolloutStorage) async throws(DreamEnginesError) -> [String: StoredFile] {
        var reader = Ustar.Reader()
        var files: [String: StoredFile] = [:]
        var current: (name: String, sink: FileSink)?
        func handle(_ events: [Ustar.Event]) async throws(DreamEnginesError) {
            for event in events {
                switch event {
                case .begin(let name, _):
                    let base = name.split(separator: "/").last.map(String.init) ?? name
                    guard !base.isEmpty, base != ".", base != ".." else { throw .badResponse("the batch archive holds a bad name: \(name)") }
                    current = (base, try await storage.sink(at: "\(directory)/\(base)"))
                case .data(let chunk):
                    try await current?.sink.write(chunk)
                case .end:
                    if let open = current { files[open.name] = try await open.sink.finish() }
                    current = nil
                }
            }
        }
        do throws(DreamEnginesError) {
            var iterator = body.makeAsyncIterator()
            while true {
                let chunk: ByteBuffer?
                do { chunk = try await iterator.next() } catch { throw .transport(String(describing: error)) }
                guard let chunk else { break }
                let events: [Ustar.Event]
                do throws(Ustar.ParseError) { events = try reader.feed(chunk) } catch { throw .badResponse(error.description) }
                try await handle(events)
            }
            let events: [Ustar.Event]
            do throws(Ustar.ParseError) { events = try reader.finish() } catch { throw .badResponse(error.description) }
            try await handle(events)
        } catch {
            await current?.sink.abandon()
            throw error
        }
        return files
    }
}

/// What one rollout sends.
public struct RolloutInput: Sendable {
    public var model: String
    public var frame: Data
    public var frameContentType: String
    public var frameFilename: String
    /// `.npy` bytes, `<f4`, shape (T, action_dim).
    public var actions: Data
    public var seed: Int
    public var numSteps: Int?
    public var guidance: Double?
    public var score: Bool

    public init(model: String, frame: Data, frameContentType: String, frameFilename: String, actions: Data, seed: Int,
                numSteps: Int?, guidance: Double?, score: Bool) {
        self.model = model
        self.frame = frame
        self.frameContentType = frameContentType
        self.frameFilename = frameFilename
        self.actions = actions
        self.seed = seed
        self.numSteps = numSteps
        self.guidance = guidance
        self.score = score
    }
}

/// How `POST /v1/rollouts` answered.
public enum RolloutAnswer: Sendable {
    case envelope(RolloutEnvelope)
    case video(LegacyRollout)
}

/// The JSON envelope of `POST /v1/rollouts`.
public struct RolloutEnvelope: Sendable, Hashable {
    public let raw: JSONValue
    public init(_ raw: JSONValue) { self.raw = raw }

    public var id: String? { raw["id"]?.stringValue }
    public var videoURL: String? { raw["video_url"]?.stringValue }
    public var costUSD: Double? { raw["cost_usd"]?.doubleValue }
}

/// The legacy answer: the video (already on disk) and its `X-DreamEngine-*` headers.
public struct LegacyRollout: Sendable {
    public let headers: HTTPHeaders
    public let file: StoredFile

    public var requestID: String? { headers.first(name: "x-dreamengine-request-id") }
    public var engineWallMs: Double? { headers.first(name: "x-dreamengine-engine-wall-ms").flatMap(Double.init) }
    public var chargeUSD: Double? { headers.first(name: "x-dreamengine-estimated-charge-usd").flatMap(Double.init) }
    public var frames: Int? { headers.first(name: "x-dreamengine-frames").flatMap { Int($0) } }
}

/// The answer of `POST /v1/predict/batch`: the videos by member name, and the batch headers.
public struct BatchOutput: Sendable {
    public let headers: HTTPHeaders
    public let files: [String: StoredFile]

    public var requestID: String? { headers.first(name: "x-dreamengine-request-id") }
    public var batchSize: Int? { headers.first(name: "x-dreamengine-batch-size").flatMap { Int($0) } }
    public var engineWallMs: Double? { headers.first(name: "x-dreamengine-engine-wall-ms").flatMap(Double.init) }
    public var chargeUSD: Double? { headers.first(name: "x-dreamengine-estimated-charge-usd").flatMap(Double.init) }
}
