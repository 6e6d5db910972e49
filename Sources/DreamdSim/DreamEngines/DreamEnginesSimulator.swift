import Crypto
import DreamdCore
import DreamdUpstreams
import Foundation
import Hummingbird
import Logging

/// A stand-in for Dream Engines (`upstream-apis.md` §1) that the official Python client accepts:
/// the catalog, `/v1/rollouts` with `Idempotency-Key` replays (the only route that replays), the legacy `/v1/predict`, `/v1/predict/batch`
/// (a tar of mp4s), signed-looking video URLs, a cold start, and faults (402, 429, 5xx) on request.
/// It validates what the real service does: model slug, PNG/JPEG 640×480 RGB, `.npy` `<f4` (T, 384),
/// T a multiple of 12. Errors are FastAPI's `{"detail": ...}`.
public struct DreamEnginesSimulator: Sendable {
    let state: DreamEnginesSimState
    /// The bearer key requests must carry; `nil` accepts any (or none), like a dev server.
    let apiKey: String?
    let baseURL: @Sendable () -> String

    public static let activeSlug = "dreamdojo-2b-gr1"
    public static let inactiveSlug = "dreamdojo-14b-gr1"
    static let resolution = (height: 480, width: 640)
    static let actionDim = 384
    static let chunkSize = 12

    public init(apiKey: String?, coldStart: Duration = .zero, rolloutTime: Duration = .milliseconds(100), legacyOnly: Bool = false,
                balanceMils: Int? = nil, faults: SimulatorFaults = .init(), baseURL: @escaping @Sendable () -> String) {
        self.state = DreamEnginesSimState(faults: faults, coldStart: coldStart, rolloutTime: rolloutTime, legacyOnly: legacyOnly, balanceMils: balanceMils)
        self.apiKey = apiKey
        self.baseURL = baseURL
    }

    // MARK: Test controls

    public func setFaults(_ faults: SimulatorFaults) async { await state.setFaults(faults) }
    /// Answers the next requests (any Dream Engines route) with these statuses, before any other work.
    public func forceNext(statuses: [Int]) async { await state.force(statuses: statuses) }
    /// The next `count` rollouts are run and charged, then answered 503 (the answer is lost).
    public func failAfterCharge(count: Int) async { await state.setFailAfterCharge(count) }
    /// Makes `/v1/rollouts` answer 404 "Not Found", as a deployment that predates it.
    public func setLegacyOnly(_ value: Bool) async { await state.setLegacyOnly(value) }
    /// Sets the prepaid balance in mils (1/10,000 USD); `nil` for unlimited.
    public func setBalance(mils: Int?) async { await state.setBalance(mils: mils) }
    public func setTiming(coldStart: Duration, rolloutTime: Duration) async { await state.setTiming(coldStart: coldStart, rolloutTime: rolloutTime) }
    /// Rollouts paid for (a replay is not paid again).
    public var charges: Int { get async { await state.charges } }
    public var chargedUSD: Double { get async { Double(await state.chargedMils) / 10_000 } }
    /// The most rollouts that ran at once.
    public var maxConcurrentRollouts: Int { get async { await state.maxInFlight } }
    public var replays: Int { get async { await state.replays } }
    /// Requests per route (`models`, `model`, `rollouts`, `predict`, `batch`, `files`, `status`).
    public func requests(_ route: String) async -> Int { await state.requests[route] ?? 0 }
    /// Every `Idempotency-Key` received, in order.
    public var idempotencyKeys: [String] { get async { await state.idempotencyKeys } }

    // MARK: Catalog

    static func spec(slug: String, name: String, active: Bool, flagship: Bool) -> JSONValue {
        [
            "slug": .string(slug), "name": .string(name), "provider": "NVIDIA", "category": "Robotics",
            "summary": "Action-conditioned world model for the Fourier GR-1 humanoid.",
            "description": "DreamDojo predicts future camera frames from a start frame and a sequence of robot actions.",
            "license": "NVIDIA Open Model License", "links": ["paper": "https://arxiv.org/abs/2502.00000"],
            "price_per_frame_usd": 0.0005, "is_flagship": .bool(flagship), "is_benchmarked": .bool(flagship), "active": .bool(active),
            "benchmark": flagship ? ["speedup_x": 3.1, "psnr_db": 24.8, "ssim": 0.81, "lpips": 0.12, "cost_per_rollout_usd": 0.0245] : .null,
            "spec": [
                "model_size": .string(slug.contains("14b") ? "14B" : "2B"), "embodiment": "gr1", "action_dim": .number(Double(actionDim)),
                "chunk_size": .number(Double(chunkSize)), "resolution": [.number(Double(resolution.height)), .number(Double(resolution.width))],
                "default_num_steps": 35, "default_guidance": 1.0, "runner": "dreamdojo",
            ],
        ]
    }

    static let catalog: [JSONValue] = [
        spec(slug: activeSlug, name: "DreamDojo 2B · GR-1", active: true, flagship: true),
        spec(slug: inactiveSlug, name: "DreamDojo 14B · GR-1", active: false, flagship: false),
    ]

    // MARK: Routes

    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("v1/status") { request, _ in
            try await guarded(request, route: "status") {
                let uptime = Date().timeIntervalSince(state.startedAt)
                return try Self.json(["model": .string(Self.activeSlug), "uptime_s": .number(uptime.rounded()),
                                      "latency_ms": ["p50": 3100, "p95": 3900, "p99": 88_000], "rollouts_24h": .number(Double(await state.charges))])
            }
        }
        router.get("v1/models") { request, _ in
            try await guarded(request, route: "models") { try Self.json(["data": .array(Self.catalog)]) }
        }
        router.get("v1/models/:slug") { request, context in
            try await guarded(request, route: "model") {
                let slug = context.parameters.get("slug")?.removingPercentEncoding ?? ""
                guard let model = Self.catalog.first(where: { $0["slug"]?.stringValue == slug }) else {
                    return try Self.json(["detail": .string("model '\(slug)' not found")], status: .notFound)
                }
                return try Self.json(model)
            }
        }
        router.post("v1/rollouts") { request, _ in
            try await rollouts(request)
        }
        router.post("v1/predict") { request, _ in
            try await legacyPredict(request)
        }
        router.post("v1/predict/batch") { request, _ in
            try await batch(request)
        }
        router.get("files/rollouts/:name") { request, context in
            try await video(request, name: context.parameters.get("name") ?? "")
        }
        // Not part of Dream Engines: a sample start frame (PNG, RGB) for demos and tests.
        router.get("fixtures/frame.png") { request, _ in
            let query = request.uri.queryParameters
            let width = query["width"].flatMap { Int(String($0)) }.map { min(max($0, 1), 4096) } ?? Self.resolution.width
            let height = query["height"].flatMap { Int(String($0)) }.map { min(max($0, 1), 4096) } ?? Self.resolution.height
            return Self.raw(SimulatedFrame.png(width: width, height: height), headers: [("Content-Type", "image/png")])
        }
        // Not part of Dream Engines either: a 302 to `?to=`, for tests of the fetch guard's redirect handling.
        router.get("fixtures/redirect") { request, _ in
            let target = request.uri.queryParameters["to"].map(String.init) ?? "/"
            return Response(status: .found, headers: [.location: target])
        }
    }

    /// Latency, auth, then injected faults, then `body`.
    func guarded(_ request: Request, route: String, _ body: () async throws -> Response) async throws -> Response {
        let faults = await state.faults
        if faults.latency > .zero { try await Task.sleep(for: faults.latency) }
        if let apiKey, request.headers[.authorization] != "Bearer \(apiKey)" {
            _ = await state.arrive(route: route, idempotencyKey: nil)
            return try Self.json(["detail": "Invalid or missing API key"], status: .unauthorized)
        }
        let key = request.headers[.init("Idempotency-Key")!]
        if let status = await state.arrive(route: route, idempotencyKey: key) {
            return try Self.fault(status, retryAfter: faults.retryAfterSeconds)
        }
        return try await body()
    }

    static func fault(_ status: Int, retryAfter: Int, balance: Int = 0, requested: Int = 245) throws -> Response {
        switch status {
        case 402:
            return try insufficientCredits(balance: balance, requested: requested)
        case 429:
            var response = try json(["detail": "Rate limit exceeded"], status: .tooManyRequests)
            response.headers[.retryAfter] = "\(retryAfter)"
            return response
        case 401: return try json(["detail": "Invalid or missing API key"], status: .unauthorized)
        case 403: return try json(["detail": "This key may not use this model"], status: .forbidden)
        case 404: return try json(["detail": "model not found"], status: .notFound)
        default:
            let reason = status == 500 ? "Internal Server Error" : "Upstream fault (simulated)"
            return try json(["detail": .string(reason)], status: .init(code: status))
        }
    }

    static func insufficientCredits(balance: Int, requested: Int) throws -> Response {
        try json(["detail": [
            "error": "insufficient_credits", "message": "Prepaid balance cannot cover this rollout; top up at https://dreamengines.run/dashboard",
            "balance_mils": .number(Double(balance)), "requested_mils": .number(Double(requested)),
            "balance_cents": .number(Double(balance / 100)), "requested_cents": .number(Double((requested + 99) / 100)),
        ]], status: .init(code: 402))
    }

    // MARK: Validation (what the real service checks)

    struct Invalid: Error {
        var status: HTTPResponse.Status
        var detail: JSONValue
    }

    static func missing(_ field: String) -> Invalid {
        Invalid(status: .unprocessableContent, detail: [["type": "missing", "loc": ["body", .string(field)], "msg": "Field required", "input": .null]])
    }

    static func checkFrame(_ part: MultipartParser.Part?, field: String) throws(Invalid) -> ImageInfo {
        guard let part, !part.data.isEmpty else { throw missing(field) }
        let info: ImageInfo
        do { info = try ImageInfo(part.data) } catch {
            throw Invalid(status: .unsupportedMediaType, detail: .string("\(field) must be a PNG or JPEG image"))
        }
        guard info.isRGB8 else {
            throw Invalid(status: .unprocessableContent, detail: .string("\(field) must be 8-bit RGB, got \(info)"))
        }
        guard info.width == resolution.width, info.height == resolution.height else {
            throw Invalid(status: .unprocessableContent,
                          detail: .string("\(field) must be \(resolution.height)x\(resolution.width) (HxW), got \(info.height)x\(info.width)"))
        }
        return info
    }

    static func checkActions(_ part: MultipartParser.Part?, field: String) throws(Invalid) -> NPYFloat32Matrix {
        guard let part, !part.data.isEmpty else { throw missing(field) }
        let matrix: NPYFloat32Matrix
        do throws(NPYFloat32Matrix.ParseError) { matrix = try NPYFloat32Matrix(npy: part.data) } catch {
            throw Invalid(status: .unprocessableContent, detail: .string("\(field) \(error.description)"))
        }
        guard matrix.columns == actionDim else {
            throw Invalid(status: .unprocessableContent, detail: .string("\(field) must have shape (T, \(actionDim)), got (\(matrix.rows), \(matrix.columns))"))
        }
        guard matrix.rows > 0, matrix.rows % chunkSize == 0 else {
            throw Invalid(status: .unprocessableContent, detail: .string("\(field) length T=\(matrix.rows) must be a positive multiple of chunk_size=\(chunkSize)"))
        }
        return matrix
    }

    static func intField(_ parts: [MultipartParser.Part], _ name: String) throws(Invalid) -> Int? {
        guard let part = parts.first(where: { $0.name == name }) else { return nil }
        guard let value = Int(part.text.trimmingCharacters(in: .whitespaces)) else {
            throw Invalid(status: .unprocessableContent, detail: .string("\(name) must be an integer"))
        }
        return value
    }

    static func parts(_ request: Request) async throws -> [MultipartParser.Part] {
        var request = request
        let buffer = try await request.collectBody(upTo: 64 << 20)
        do {
            return try MultipartParser.parse(Data(buffer.readableBytesView), contentType: request.headers[.contentType])
        } catch {
            throw Invalid(status: .unprocessableContent, detail: .string("\(error)"))
        }
    }

    static func payloadHash(_ parts: [MultipartParser.Part]) -> String {
        var hasher = SHA256()
        for part in parts.sorted(by: { ($0.name, $0.filename ?? "") < ($1.name, $1.filename ?? "") }) {
            hasher.update(data: Data(part.name.utf8))
            hasher.update(data: part.data)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    // MARK: Handlers

    func rollouts(_ request: Request) async throws -> Response {
        try await guarded(request, route: "rollouts") {
            if await state.legacyOnly { return try Self.json(["detail": "Not Found"], status: .notFound) }
            do {
                let parts = try await Self.parts(request)
                guard let paramsPart = parts.first(where: { $0.name == "params" }) else { throw Self.missing("params") }
                guard paramsPart.filename == nil else {
                    throw Invalid(status: .unprocessableContent, detail: [["type": "string_type", "loc": ["body", "params"], "msg": "Input should be a valid string"]])
                }
                guard let params = try? DreamdJSON.decode(JSONValue.self, from: paramsPart.text), params.objectValue != nil else {
                    throw Invalid(status: .unprocessableContent, detail: "params must be a JSON object")
                }
                guard let slug = params["model"]?.stringValue else { throw Invalid(status: .unprocessableContent, detail: "params.model is required") }
                guard let model = Self.catalog.first(where: { $0["slug"]?.stringValue == slug }) else {
                    return try Self.json(["detail": .string("model '\(slug)' not found")], status: .notFound)
                }
                guard model["active"]?.boolValue == true else {
                    throw Invalid(status: .unprocessableContent, detail: .string("model '\(slug)' is not active on this server (active: \(Self.activeSlug))"))
                }
                _ = try Self.checkFrame(parts.first { $0.name == "start_frame" }, field: "start_frame")
                let actions = try Self.checkActions(parts.first { $0.name == "actions" }, field: "actions")
                let seed = params["seed"]?.intValue ?? 0
                let score = params["score"]?.boolValue ?? false
                let hash = Self.payloadHash(parts)
                let key = request.headers[.init("Idempotency-Key")!]
                if let key, let stored = try await replay(key: "rollouts:" + key, hash: hash) { return stored }
                let frames = actions.rows + 1
                let mils = frames * DreamEnginesSimState.pricePerFrameMils
                let (ok, balance) = await state.canAfford(mils)
                guard ok else { return try Self.insufficientCredits(balance: balance, requested: mils) }
                let wall = try await runEngine()
                let id = "rollout_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
                let expires = Int(Date().timeIntervalSince1970) + 3600
                let envelope: JSONValue = [
                    "id": .string(id), "object": "rollout", "model": .string(slug), "created": .number(Double(Int(Date().timeIntervalSince1970))),
                    "frames": .number(Double(frames)), "resolution": [.number(Double(Self.resolution.height)), .number(Double(Self.resolution.width))],
                    "engine_wall_ms": .number(wall), "cost_usd": .number(Double(mils) / 10_000),
                    "video_url": .string("\(baseURL())/files/rollouts/\(id).mp4?expires=\(expires)&sig=\(id.suffix(8))"),
                    "video_url_expires_at": .number(Double(expires)), "seed": .number(Double(seed)),
                    "psnr_db": score ? 24.6 : .null, "ssim": score ? 0.8 : .null, "lpips": score ? 0.13 : .null,
                ]
                await state.store(rollout: .init(id: id, envelope: envelope, frames: frames))
                if let key { await state.remember(key: "rollouts:" + key, hash: hash, answer: .envelope(envelope)) }
                if await state.charge(mils: mils) { return try Self.json(["detail": "Service Unavailable"], status: .serviceUnavailable) }
                return try Self.json(envelope)
            } catch let invalid as Invalid {
                return try Self.json(["detail": invalid.detail], status: invalid.status)
            }
        }
    }

    func legacyPredict(_ request: Request) async throws -> Response {
        try await guarded(request, route: "predict") {
            do {
                let parts = try await Self.parts(request)
                _ = try Self.checkFrame(parts.first { $0.name == "frame" }, field: "frame")
                let actions = try Self.checkActions(parts.first { $0.name == "actions" }, field: "actions")
                _ = try Self.intField(parts, "seed")
                _ = try Self.intField(parts, "num_steps")
                // The contract promises replay on /v1/rollouts only: this route runs (and charges) every time.
                let frames = actions.rows + 1
                let mils = frames * DreamEnginesSimState.pricePerFrameMils
                let (ok, balance) = await state.canAfford(mils)
                guard ok else { return try Self.insufficientCredits(balance: balance, requested: mils) }
                let wall = try await runEngine()
                let video = SimulatedVideo.mp4(width: Self.resolution.width, height: Self.resolution.height, frames: frames)
                let headers = [
                    ("X-DreamEngine-Request-Id", UUID().uuidString.lowercased()), ("X-DreamEngine-Engine-Wall-Ms", "\(wall)"),
                    ("X-DreamEngine-Estimated-Charge-USD", "\(Double(mils) / 10_000)"), ("X-DreamEngine-Frames", "\(frames)"),
                    ("X-DreamEngine-Customer-Id", "cus_sim"), ("Content-Type", "video/mp4"),
                ]
                if await state.charge(mils: mils) { return try Self.json(["detail": "Service Unavailable"], status: .serviceUnavailable) }
                return Self.raw(video, headers: headers)
            } catch let invalid as Invalid {
                return try Self.json(["detail": invalid.detail], status: invalid.status)
            }
        }
    }

    func batch(_ request: Request) async throws -> Response {
        try await guarded(request, route: "batch") {
            do {
                let parts = try await Self.parts(request)
                _ = try Self.checkFrame(parts.first { $0.name == "frame" }, field: "frame")
                let actionParts = parts.filter { $0.name == "actions" }
                guard !actionParts.isEmpty else { throw Self.missing("actions") }
                var sequences: [NPYFloat32Matrix] = []
                for (index, part) in actionParts.enumerated() { sequences.append(try Self.checkActions(part, field: "actions[\(index)]")) }
                _ = try Self.intField(parts, "seed")
                // The contract promises replay on /v1/rollouts only: this route runs (and charges) every time.
                let frames = sequences.reduce(0) { $0 + $1.rows + 1 }
                let mils = frames * DreamEnginesSimState.pricePerFrameMils
                let (ok, balance) = await state.canAfford(mils)
                guard ok else { return try Self.insufficientCredits(balance: balance, requested: mils) }
                let wall = try await runEngine()
                let files = sequences.enumerated().map { index, sequence in
                    (name: String(format: "rollout_%03d.mp4", index),
                     data: SimulatedVideo.mp4(width: Self.resolution.width, height: Self.resolution.height, frames: sequence.rows + 1))
                }
                let tar = Ustar.archive(files)
                let headers = [
                    ("X-DreamEngine-Request-Id", UUID().uuidString.lowercased()), ("X-DreamEngine-Batch-Size", "\(sequences.count)"),
                    ("X-DreamEngine-Engine-Wall-Ms", "\(wall)"), ("X-DreamEngine-Estimated-Charge-USD", "\(Double(mils) / 10_000)"),
                    ("X-DreamEngine-Customer-Id", "cus_sim"), ("Content-Type", "application/x-tar"),
                ]
                if await state.charge(mils: mils) { return try Self.json(["detail": "Service Unavailable"], status: .serviceUnavailable) }
                return Self.raw(tar, headers: headers)
            } catch let invalid as Invalid {
                return try Self.json(["detail": invalid.detail], status: invalid.status)
            }
        }
    }

    /// The stored answer for an `Idempotency-Key` used with the same payload; 422 for another payload.
    func replay(key: String, hash: String) async throws -> Response? {
        guard let stored = await state.stored(key: key) else { return nil }
        guard stored.hash == hash else {
            return try Self.json(["detail": "Idempotency-Key was already used with a different payload"], status: .unprocessableContent)
        }
        await state.countReplay()
        switch stored.answer {
        case .envelope(let envelope): return try Self.json(envelope)
        case .body(let data, let headers): return Self.raw(data, headers: headers)
        }
    }

    /// Waits out the cold start and the rollout's run time; returns the engine wall time in ms.
    func runEngine() async throws -> Double {
        let started = ContinuousClock.now
        let done = await state.beginRollout()
        do {
            try await Task.sleep(until: done, clock: .continuous)
        } catch {
            await state.endRollout()
            throw error
        }
        await state.endRollout()
        return ((ContinuousClock.now - started).seconds * 1000).rounded()
    }

    func video(_ request: Request, name: String) async throws -> Response {
        await state.count(route: "files")
        let id = name.hasSuffix(".mp4") ? String(name.dropLast(4)) : name
        guard let rollout = await state.rollout(id) else { return try Self.json(["detail": "Not Found"], status: .notFound) }
        if let expires = request.uri.queryParameters["expires"].flatMap({ Double(String($0)) }), expires < Date().timeIntervalSince1970 {
            return try Self.json(["detail": "URL expired"], status: .forbidden)
        }
        let video = SimulatedVideo.mp4(width: Self.resolution.width, height: Self.resolution.height, frames: rollout.frames)
        return Self.raw(video, headers: [("Content-Type", "video/mp4")])
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(bytes: try DreamdJSON.encoder().encode(value))))
    }

    static func raw(_ data: Data, headers: [(String, String)]) -> Response {
        var fields = HTTPFields()
        // The names are this file's constants, all valid field names.
        for (name, value) in headers { fields[.init(name)!] = value }
        return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
