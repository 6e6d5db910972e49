import DreamdCore
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// A faithful stand-in for dreamlook.ai (`upstream-apis.md` §2): submissions, the job object and its
/// life-cycle by the clock, the recent-jobs list, and faults on request.
public struct DreamlookSimulator: Sendable {
    let state: DreamlookSimState
    /// The bearer key requests must carry; `nil` accepts any.
    let apiKey: String?
    let baseURL: @Sendable () -> String

    public init(apiKey: String?, queueTime: Duration, runTime: Duration, faults: SimulatorFaults = .init(),
                files: DreamlookFileSettings = .init(), baseURL: @escaping @Sendable () -> String) {
        self.state = DreamlookSimState(faults: faults, queueTime: queueTime, runTime: runTime, files: files)
        self.apiKey = apiKey
        self.baseURL = baseURL
    }

    // MARK: Test controls

    public func setFaults(_ faults: SimulatorFaults) async { await state.setFaults(faults) }
    /// Answers the next requests with these statuses, in order, before any other fault.
    public func forceNext(statuses: [Int]) async { await state.force(statuses: statuses) }
    /// How checkpoint files are served (size, URL lifetime, throttle).
    public func setFiles(_ files: DreamlookFileSettings) async { await state.setFiles(files) }
    /// Every request for a checkpoint file so far, oldest first.
    public var fileRequests: [DreamlookFileRequest] { get async { await state.fileRequests } }
    /// The bytes the simulator serves for checkpoint `id` with the current size.
    public func checkpointBytes(_ id: String) async -> [UInt8] {
        DreamlookFiles.bytes(checkpointID: id, range: 0..<(await state.files.checkpointSize))
    }
    /// How many jobs of `jobType` were created.
    public func jobCount(ofType jobType: String) async -> Int { await state.recent(jobType: jobType, limit: .max).count }
    public func setTiming(queue: Duration, run: Duration) async { await state.setTiming(queue: queue, run: run) }
    /// How many jobs carry tag `key` = `value`.
    public func jobCount(taggedWith key: String, value: String) async -> Int { await state.jobs(taggedWith: key, value: value).count }
    public var jobCount: Int { get async { await state.jobCount } }
    /// How many jobs carry each value of tag `key` (`dreamd_job_id`: submissions per dreamd job).
    public func tagCounts(key: String) async -> [String: Int] { await state.tagCounts(key: key) }
    public var requestCount: Int { get async { await state.requestCount } }
    public var callbacksSent: Int { get async { await state.callbacksSent } }
    /// The callback URL the job tagged `key` = `value` was submitted with (tests play a leaked URL).
    public func callbackURL(taggedWith key: String, value: String) async -> String? {
        await state.jobs(taggedWith: key, value: value).last?.callbackURL
    }

    /// The service that sends callbacks for finished jobs.
    func callbackSender(logger: Logger) -> some Service {
        DreamlookCallbackSender(state: state, baseURL: baseURL, logger: logger)
    }

    // MARK: Routes

    public func register<Context: RequestContext>(on router: Router<Context>) {
        for jobType in ["image_gen", "dreambooth", "dreambooth_image_gen"] {
            router.post(RouterPath(jobType)) { request, context in
                try await submit(jobType: jobType, request: request, context: context)
            }
        }
        // Not part of dreamlook: what the chaos benchmark reads to count submissions per dreamd job.
        router.get("sim/dreamlook/stats") { _, _ in
            let counts = await state.tagCounts(key: "dreamd_job_id")
            return try Self.json([
                "jobs": .number(Double(await state.jobCount)),
                "tagged_jobs": .number(Double(counts.count)),
                "max_submissions_per_tag": .number(Double(counts.values.max() ?? 0)),
                "tags_submitted_more_than_once": .number(Double(counts.values.filter { $0 > 1 }.count)),
                "callbacks_sent": .number(Double(await state.callbacksSent)),
            ])
        }
        // Not part of dreamlook either: when each finished job ended upstream, by its dreamd_job_id tag
        // (bench/e2e.sh measures from there to the webhook).
        router.get("sim/dreamlook/finished") { _, _ in
            let times = await state.finishTimes(tagKey: "dreamd_job_id", now: Date())
            return try Self.json(["finished": .object(times.mapValues { .number($0) })])
        }
        router.get("jobs/:type") { request, context in
            try await guarded(request) {
                let jobType = try Self.jobType(context)
                let files = await state.files
                let jobs = await state.recent(jobType: jobType).map { DreamlookJobRenderer.render($0, baseURL: baseURL(), files: files) }
                return try Self.json(["jobs": .array(jobs)])
            }
        }
        router.get("jobs/:type/:id") { request, context in
            try await guarded(request) {
                let jobType = try Self.jobType(context)
                guard let id = context.parameters.get("id"), let job = await state.job(id), job.jobType == jobType else {
                    return try Self.json(["detail": "Job not found"], status: .notFound)
                }
                return try Self.json(DreamlookJobRenderer.render(job, baseURL: baseURL(), files: await state.files))
            }
        }
        // Checkpoint downloads: signed URLs, no bearer key.
        router.get("files/:name") { request, context in
            try await DreamlookFiles.serve(request, name: context.parameters.get("name") ?? "", state: state)
        }
    }

    func submit(jobType: String, request: Request, context: some RequestContext) async throws -> Response {
        var request = request
        let buffer = try await request.collectBody(upTo: 10 << 20)
        return try await guarded(request) {
            guard let body = try? DreamdJSON.decoder().decode(JSONValue.self, from: Data(buffer.readableBytesView)),
                  body.objectValue != nil else {
                return try Self.json(["detail": [["loc": ["body"], "msg": "invalid JSON", "type": "value_error.json"]]], status: .unprocessableContent)
            }
            if let problem = Self.validate(jobType: jobType, body: body) {
                return try Self.json(["detail": [["loc": ["body", .string(problem.field)], "msg": .string(problem.message), "type": "value_error"]]],
                                     status: .unprocessableContent)
            }
            let (job, thenFail) = await state.create(jobType: jobType, body: body, dryRun: body["dry_run"]?.boolValue == true)
            if thenFail { return try Self.json(["detail": "Service Unavailable"], status: .serviceUnavailable) }
            return try Self.json(["job_id": .string(job.jobID)])
        }
    }

    /// Checks auth and injected faults, then runs `body`.
    func guarded(_ request: Request, _ body: () async throws -> Response) async throws -> Response {
        let faults = await state.faults
        if faults.latency > .zero { try await Task.sleep(for: faults.latency) }
        if let apiKey, request.headers[.authorization] != "Bearer \(apiKey)" {
            return try Self.json(["detail": "Invalid API key"], status: .unauthorized)
        }
        if let status = await state.injectedStatus() {
            var response = try Self.json(["detail": .string(status == 429 ? "Too Many Requests" : "Upstream fault (simulated)")],
                                         status: .init(code: status))
            if status == 429 { response.headers[.retryAfter] = "\(faults.retryAfterSeconds)" }
            return response
        }
        return try await body()
    }

    static func validate(jobType: String, body: JSONValue) -> ValidationError? {
        func need(_ key: String, _ check: (JSONValue) -> Bool) -> ValidationError? {
            guard let value = body[key], check(value) else { return ValidationError(field: key, message: "field required or invalid") }
            return nil
        }
        switch jobType {
        case "image_gen":
            if let error = need("prompt", { $0.stringValue != nil }) { return error }
            if let error = need("num_samples", { ($0.intValue ?? 0) >= 1 && ($0.intValue ?? 0) <= 50 }) { return error }
            if let error = need("width", { $0.intValue != nil }) { return error }
            if let error = need("height", { $0.intValue != nil }) { return error }
            if (body["base_model"] == nil) == (body["checkpoint_id"] == nil) {
                return ValidationError(field: "base_model", message: "exactly one of base_model or checkpoint_id")
            }
        case "dreambooth":
            if let error = need("image_urls", { $0.arrayValue?.isEmpty == false }) { return error }
            if let error = need("instance_prompt", { $0.stringValue != nil }) { return error }
        default:
            break
        }
        return nil
    }

    static func jobType(_ context: some RequestContext) throws -> String {
        let raw = context.parameters.get("type") ?? ""
        return raw == "image-gen" ? "image_gen" : raw
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(bytes: try DreamdJSON.encoder().encode(value))))
    }
}
