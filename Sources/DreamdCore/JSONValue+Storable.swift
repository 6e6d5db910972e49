extension JSONValue {
    /// The path of the first string (value or object key) PostgreSQL cannot store — one holding U+0000,
    /// which neither `text` nor `jsonb` accepts — as `params.prompt` or `params.image_gen[0].prompt`;
    /// `nil` when every string can be stored. Lone surrogates never get this far: the parser refuses them.
    public func firstUnstorableString(path: String = "") -> String? {
        switch self {
        case .string(let text):
            return text.utf8.contains(0) ? (path.isEmpty ? "(body)" : path) : nil
        case .array(let items):
            for (index, item) in items.enumerated() {
                if let found = item.firstUnstorableString(path: "\(path)[\(index)]") { return found }
            }
            return nil
        case .object(let object):
            for key in object.keys.sorted() {
                let child = path.isEmpty ? key : "\(path).\(key)"
                if key.utf8.contains(0) { return path.isEmpty ? "(a key)" : "\(path) (a key)" }
                if let found = object[key]?.firstUnstorableString(path: child) { return found }
            }
            return nil
        default:
            return nil
        }
    }

    /// Throws a `ValidationError` naming the first string PostgreSQL cannot store (see `firstUnstorableString`).
    public func requireStorable(path: String = "") throws(ValidationError) {
        if let field = firstUnstorableString(path: path) {
            throw ValidationError(field: field, message: "holds a NUL character (\\u0000), which cannot be stored")
        }
    }
}
