import DreamdCore
import Foundation

/// Renders a simulated job as dreamlook's job object, its state derived from the clock.
enum DreamlookJobRenderer {
    static func render(_ job: DreamlookSimState.SimJob, now: Date = Date(), baseURL: String, files: DreamlookFileSettings = .init(),
                       forceState: String? = nil) -> JSONValue {
        let queuedEnd = job.createdAt.addingTimeInterval(job.queueTime.seconds)
        let runningEnd = queuedEnd.addingTimeInterval(job.runTime.seconds)
        var state: String
        if now < queuedEnd { state = "queued" }
        else if now < runningEnd { state = "running" }
        else { state = job.fails ? "failure" : "success" }
        if let forceState { state = forceState }
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
        guard state == "success" else { return .object(object) }
        let trainedCheckpoint = "ckp_" + String(job.jobID.suffix(8))
        switch job.jobType {
        case "image_gen":
            object["image_gen_results"] = [images(for: job.config, configIndex: 0, checkpoint: job.config["checkpoint_id"] ?? .null, job: job, baseURL: baseURL)]
        case "dreambooth":
            object["dreambooth_result"] = ["checkpoints": [checkpoint(trainedCheckpoint, config: job.config, baseURL: baseURL, files: files, now: now)]]
        case "dreambooth_image_gen":
            object["dreambooth_result"] = ["checkpoints": [checkpoint(trainedCheckpoint, config: job.config["dreambooth"] ?? [:], baseURL: baseURL, files: files, now: now)]]
            let requests = job.config["image_gen"]?.arrayValue ?? []
            object["image_gen_results"] = .array(requests.enumerated().map { index, request in
                images(for: request, configIndex: index, checkpoint: .string(trainedCheckpoint), job: job, baseURL: baseURL)
            })
        default:
            break
        }
        return .object(object)
    }

    static func images(for config: JSONValue, configIndex: Int, checkpoint: JSONValue, job: DreamlookSimState.SimJob, baseURL: String) -> JSONValue {
        let samples = config["num_samples"]?.intValue ?? 1
        let images: [JSONValue] = (0..<samples).map { index in
            let imageID = "img_\(job.jobID.suffix(8))_\(configIndex)_\(index)"
            return [
                "generated_image_id": .string(imageID),
                "url": .string("\(baseURL)/files/\(imageID).png?expires=3600&signature=sim"),
                "seed": .number(Double((config["seed"]?.intValue ?? 1000) + index)),
                "generation_idx": .number(Double(index)),
            ]
        }
        return ["checkpoint_id": checkpoint, "config_idx": .number(Double(configIndex)), "generated_images": .array(images)]
    }

    static func checkpoint(_ id: String, config: JSONValue, baseURL: String, files: DreamlookFileSettings, now: Date) -> JSONValue {
        [
            "checkpoint_id": .string(id),
            "url": .string(DreamlookFiles.url(checkpointID: id, baseURL: baseURL, settings: files, now: now)),
            "is_extracted_lora": false,
            "checkpoint_type": "checkpoint",
            "model_type": config["model_type"] ?? "sd-v1",
            "training_step": config["steps"] ?? 100,
            "size_bytes": .number(Double(files.checkpointSize)),
            "file_format": "safetensors",
            "availability_mode": "download",
            "is_available": true,
        ]
    }

    /// dreamlook's timestamp style: ISO-8601, no zone, microseconds, UTC.
    static func timestamp(_ date: Date) -> String {
        String(DreamdJSON.formatDate(date).dropLast())
    }
}
