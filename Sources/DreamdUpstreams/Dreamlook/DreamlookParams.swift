import DreamdCore

/// Submit-time validation of the three dreamlook kinds' params (dreamlook's request bodies, less what
/// dreamd sets itself: `callback` and the `dreamd_job_id` tag).
enum DreamlookParams {
    static func validate(kind: JobKind, params: JSONValue) throws(ValidationError) {
        switch kind {
        case .imageGen: try imageGen(params, path: "params", requireModelSource: true)
        case .dreambooth: try dreambooth(params, path: "params")
        case .dreamboothImageGen: try combined(params)
        default: throw ValidationError(field: "kind", message: "\(kind) is not a dreamlook kind")
        }
    }

    static let imageGenKeys: Set<String> = [
        "prompt", "negative_prompt", "num_samples", "width", "height", "num_inference_steps", "guidance_scale",
        "scheduler_type", "seed", "base_model", "checkpoint_id", "output_format", "dry_run", "tags",
    ]

    static func imageGen(_ params: JSONValue, path: String, requireModelSource: Bool) throws(ValidationError) {
        let reader = try ParamsReader(params, path: path)
        try reader.rejectUnknownKeys(allowed: requireModelSource ? imageGenKeys : imageGenKeys.subtracting(["dry_run", "tags"]))
        _ = try reader.requiredString("prompt")
        _ = try reader.optionalString("negative_prompt")
        _ = try reader.requiredInt("num_samples", in: 1...50)
        for dimension in ["width", "height"] {
            let value = try reader.requiredInt(dimension, in: 64...2048)
            if value % 8 != 0 { throw ValidationError(field: "\(path).\(dimension)", message: "must be a multiple of 8, got \(value)") }
        }
        _ = try reader.optionalInt("num_inference_steps", in: 1...500)
        _ = try reader.optionalNumber("guidance_scale", in: 0...50)
        _ = try reader.optionalString("scheduler_type")
        _ = try reader.optionalInt("seed", in: 0...Int(UInt32.max))
        _ = try reader.optionalString("output_format")
        _ = try reader.optionalBool("dry_run")
        let baseModel = try reader.optionalString("base_model")
        let checkpoint = try reader.optionalString("checkpoint_id")
        switch (baseModel, checkpoint) {
        case (nil, nil) where requireModelSource:
            throw ValidationError(field: "\(path).base_model", message: "one of base_model or checkpoint_id is required")
        case (.some, .some):
            throw ValidationError(field: "\(path).checkpoint_id", message: "give base_model or checkpoint_id, not both")
        case (_, .some(let id)) where !id.hasPrefix("ckp_"):
            throw ValidationError(field: "\(path).checkpoint_id", message: "must be a dreamlook checkpoint id (ckp_...)")
        default:
            break
        }
        try tags(params["tags"], path: "\(path).tags")
    }

    static let dreamboothKeys: Set<String> = [
        "image_urls", "instance_prompt", "steps", "learning_rate", "base_model", "model_type", "crop_method",
        "saved_model_format", "saved_model_weights_format", "extract_lora", "dry_run", "tags",
    ]

    static func dreambooth(_ params: JSONValue, path: String, nested: Bool = false) throws(ValidationError) {
        let reader = try ParamsReader(params, path: path)
        try reader.rejectUnknownKeys(allowed: nested ? dreamboothKeys.subtracting(["dry_run", "tags"]) : dreamboothKeys)
        guard let urls = params["image_urls"]?.arrayValue, !urls.isEmpty else {
            throw ValidationError(field: "\(path).image_urls", message: "must be a non-empty array of image URLs")
        }
        guard urls.count <= 200 else { throw ValidationError(field: "\(path).image_urls", message: "must hold at most 200 URLs") }
        for (index, url) in urls.enumerated() {
            guard let text = url.stringValue, text.hasPrefix("https://") || text.hasPrefix("http://") else {
                throw ValidationError(field: "\(path).image_urls[\(index)]", message: "must be an http(s) URL")
            }
        }
        _ = try reader.requiredString("instance_prompt")
        _ = try reader.requiredInt("steps", in: 1...10_000)
        guard let rate = try reader.optionalNumber("learning_rate", in: 0...1), rate > 0 else {
            throw ValidationError(field: "\(path).learning_rate", message: "is required: a number between 0 and 1, e.g. 2e-6")
        }
        _ = try reader.requiredString("base_model")
        for key in ["model_type", "crop_method", "saved_model_format", "saved_model_weights_format"] {
            _ = try reader.optionalString(key)
        }
        if let extract = params["extract_lora"], !extract.isNull, extract.boolValue == nil, extract.stringValue == nil {
            throw ValidationError(field: "\(path).extract_lora", message: "must be a boolean or a string")
        }
        _ = try reader.optionalBool("dry_run")
        try tags(params["tags"], path: "\(path).tags")
    }

    static func combined(_ params: JSONValue) throws(ValidationError) {
        let reader = try ParamsReader(params, path: "params")
        try reader.rejectUnknownKeys(allowed: ["dreambooth", "image_gen", "tags", "dry_run"])
        guard let training = params["dreambooth"] else {
            throw ValidationError(field: "params.dreambooth", message: "is required: the training request")
        }
        try dreambooth(training, path: "params.dreambooth", nested: true)
        guard let generations = params["image_gen"]?.arrayValue, !generations.isEmpty else {
            throw ValidationError(field: "params.image_gen", message: "must be a non-empty array of image generation requests")
        }
        guard generations.count <= 20 else { throw ValidationError(field: "params.image_gen", message: "must hold at most 20 requests") }
        for (index, generation) in generations.enumerated() {
            try imageGen(generation, path: "params.image_gen[\(index)]", requireModelSource: false)
        }
        _ = try reader.optionalBool("dry_run")
        try tags(params["tags"], path: "params.tags")
    }

    static func tags(_ tags: JSONValue?, path: String) throws(ValidationError) {
        guard let tags, !tags.isNull else { return }
        guard let list = tags.arrayValue else { throw ValidationError(field: path, message: "must be an array of {key, value}") }
        for (index, tag) in list.enumerated() {
            guard tag["key"]?.stringValue != nil, tag["value"]?.stringValue != nil else {
                throw ValidationError(field: "\(path)[\(index)]", message: "must be an object with string key and value")
            }
            if tag["key"]?.stringValue == DreamlookClient.jobTagKey {
                throw ValidationError(field: "\(path)[\(index)].key", message: "\(DreamlookClient.jobTagKey) is reserved for dreamd")
            }
        }
    }
}
