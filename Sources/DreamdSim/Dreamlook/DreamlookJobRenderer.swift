import DreamdCore
import Foundation

/// Renders a simulated job as dreamlook's job object, its state derived from the clock.
enum DreamlookJobRenderer {
    static func render(_ job: DreamlookSimState.SimJob, now: Date = Date(), baseURL: String) -> JSONValue {
        let queuedEnd = job.createdAt.addingTimeInterval(job.queueTime.seconds)
        let runningEnd = queuedEnd.addingTimeInterval(job.runTime.seconds)
        let state: String
        if now < queuedEnd { state = "queued" }
        else if now < runningEnd { state = "running" }
        else { state = job.fails ? "failure" : "success" }
        let finished = state == "success" || state == "failure"
        var object: [String: JSONValue] = [
            "job_type": .string(job.jobType),
            "job_id": .string(job.jobID),
            "state": .string(state),
            "state_updated": .string(timestamp(state == "queued" ? job.createdAt : finished ? runningEnd : queuedEnd)),
            "state_queued_start": .string(timestamp(job.createdAt)),
            "state_queued_end": now >= queuedEnd ? .string(timestamp(queuedEnd)) : .null,
            "state_running_start": now >= queuedEnd ? .string(timestamp(queuedEnd)) : .null,
            "state_running_end": finished ? .string(timestamp(runningEnd)) : .null,
            "queued_duration": .number(min(now, queuedEnd).timeIntervalSince(job.createdAt).rounded()),
            "running_duration": now >= queuedEnd ? .number(min(now, runningEnd).timeIntervalSince(queuedEnd).rounded()) : .null,
            "percentage_done": .number(state == "running" ? (now.timeIntervalSince(queuedEnd) / max(job.runTime.seconds, 0.001) * 100).rounded() : finished ? 100 : 0),
            "config": job.config,
            "failure_reason": state == "failure" ? "simulated failure: the model diverged" : .null,
            "failure_reason_data": state == "failure" ? ["step": 42] : .null,
            "tags": .array(job.tags),
            "dreambooth_result": .null,
            "image_gen_results": .null,
            "thumbnails": .array([]),
        ]
        if state == "success", job.jobType == "image_gen" {
            let samples = job.config["num_samples"]?.intValue ?? 1
            let images: [JSONValue] = (0..<samples).map { index in
                let imageID = "img_\(job.jobID.suffix(8))_\(index)"
                return [
                    "generated_image_id": .string(imageID),
                    "url": .string("\(baseURL)/files/\(imageID).png?expires=3600&signature=sim"),
                    "seed": .number(Double((job.config["seed"]?.intValue ?? 1000) + index)),
                    "generation_idx": .number(Double(index)),
                ]
            }
            object["image_gen_results"] = [[
                "checkpoint_id": job.config["checkpoint_id"] ?? .null,
                "config_idx": 0,
                "generated_images": .array(images),
            ]]
        }
        return .object(object)
    }

    /// dreamlook's timestamp style: ISO-8601, no zone, microseconds, UTC.
    static func timestamp(_ date: Date) -> String {
        String(DreamdJSON.formatDate(date).dropLast())
    }
}
