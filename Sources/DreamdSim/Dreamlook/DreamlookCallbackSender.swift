import AsyncHTTPClient
import DreamdCore
import Foundation
import Logging
import NIOCore
import ServiceLifecycle

/// Sends dreamlook's callbacks: when a job with a `callback` URL finishes, POSTs the job object to
/// it — or, with faults, drops it, sends it twice, sends it late, or follows it with a stale one.
struct DreamlookCallbackSender: Service {
    let state: DreamlookSimState
    let baseURL: @Sendable () -> String
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                while !Task.isCancelled {
                    let faults = await state.faults
                    let files = await state.files
                    for job in await state.dueCallbacks(now: Date()) {
                        guard let url = job.callbackURL else { continue }
                        if !job.isDryRun, Double.random(in: 0..<1) < faults.callbackDropRate { continue }
                        let final = DreamlookJobRenderer.render(job, baseURL: baseURL(), files: files)
                        let copies = Double.random(in: 0..<1) < faults.callbackDuplicateRate ? 2 : 1
                        let stale = Double.random(in: 0..<1) < faults.callbackReorderRate
                        group.addTask {
                            for _ in 0..<copies { await send(final, to: url) }
                            if stale { await send(DreamlookJobRenderer.render(job, baseURL: baseURL(), files: files, forceState: "running"), to: url) }
                        }
                    }
                    // Sleep until the next callback is due, at most 20 ms: callbacks leave within a
                    // millisecond or two of their job finishing (the end-to-end benchmark measures from there).
                    let untilDue = await state.nextCallbackDue.map { $0.timeIntervalSinceNow } ?? 0.02
                    try? await Task.sleep(for: .milliseconds(Int(min(max(untilDue, 0.001), 0.02) * 1000)))
                }
            }
        }
    }

    private func send(_ payload: JSONValue, to url: String) async {
        do {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try DreamdJSON.encoder().encode(payload)))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            _ = try await response.body.collect(upTo: 1 << 20)
            await state.countCallback()
        } catch {
            logger.debug("callback failed", metadata: ["error": "\(error)"])
        }
    }
}
