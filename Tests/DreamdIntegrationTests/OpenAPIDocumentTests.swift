import AsyncHTTPClient
import DreamdCore
import Foundation
import Testing

/// The OpenAPI document states what the code checks: per-kind params, limits, 405s, bounded parameters.
@Suite("OpenAPI document", .hangGuard)
struct OpenAPIDocumentTests {
    @Test("JobRequest is a oneOf by kind whose params schemas carry the validators' limits")
    func jobRequestIsExact() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let document = try await daemon.request(.GET, "/openapi.json", token: "").json
                    let schemas = try #require(document["components"]?["schemas"])
                    let mapping = try #require(schemas["JobRequest"]?["discriminator"]?["mapping"]?.objectValue)
                    #expect(Set(mapping.keys).isSuperset(of: ["image_gen", "dreambooth", "dreambooth_image_gen", "completion"]), "\(mapping.keys)")
                    let imageGen = try #require(schemas["JobRequest_image_gen"]?["properties"]?["params"])
                    #expect(imageGen["properties"]?["width"]?["multipleOf"]?.intValue == 8)
                    #expect(imageGen["properties"]?["num_samples"]?["maximum"]?.intValue == 50)
                    #expect(imageGen["additionalProperties"]?.boolValue == false)
                    let completion = try #require(schemas["JobRequest_completion"]?["properties"]?["params"])
                    #expect(completion["properties"]?["input"]?["maxLength"]?.intValue == 1_000_000)
                    // A body the schema calls valid is accepted, and one past a stated limit is refused.
                    let accepted = try await daemon.request(.POST, "/v1/jobs", body: imageGenBody())
                    #expect(accepted.status == 201, "\(accepted.json)")
                    let tooWide = try await daemon.request(.POST, "/v1/jobs", body: #"{"kind": "image_gen", "params": {"prompt": "p", "num_samples": 1, "width": 520, "height": 2056, "base_model": "m"}}"#)
                    #expect(tooWide.status == 422)
                    #expect(tooWide.json["error"]?["details"]?["field"]?.stringValue == "params.height")
                }
            }
        }
    }

    @Test("an unserved method is 405 with Allow; an output offset past 32 bits is 400, not a database error")
    func methodsAndBounds() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let trace = try await daemon.request(.init(rawValue: "TRACE"), "/v1/jobs")
                    #expect(trace.status == 405)
                    #expect(trace.json["error"]?["code"]?.stringValue == "method_not_allowed")
                    let put = try await daemon.request(.PUT, "/v1/jobs/\(UUID().uuidString.lowercased())")
                    #expect(put.status == 405)
                    // A literal route wins over a pattern, as in the router: /v1/jobs/bulk is POST only.
                    var options = HTTPClientRequest(url: daemon.baseURL + "/v1/jobs/bulk")
                    options.method = .OPTIONS
                    options.headers.add(name: "authorization", value: "Bearer \(daemon.token)")
                    let answer = try await HTTPClient.shared.execute(options, timeout: .seconds(10))
                    #expect(answer.status.code == 405)
                    #expect(answer.headers.first(name: "allow") == "POST")
                    let created = try await daemon.request(.POST, "/v1/jobs", body: imageGenBody())
                    let id = try #require(created.json["id"]?.stringValue, "\(created.json)")
                    let output = try await daemon.request(.GET, "/v1/jobs/\(id)/output?offset=99999999999")
                    #expect(output.status == 400, "\(output.json)")
                    #expect(try await daemon.request(.GET, "/v1/jobs/\(id)/output?offset=0").status == 200)
                }
            }
        }
    }
}
