/// Splits a migration file into single statements, so each can run through the extended query
/// protocol (which takes one statement at a time). Understands quotes, quoted identifiers,
/// `--` and `/* */` comments, and dollar-quoted bodies such as `$$ ... $$` and `$fn$ ... $fn$`.
import Foundation

/// Splits SQL text; see `split(_:)`.
public enum SQLStatementSplitter {
    public static func split(_ sql: String) -> [String] {
        let characters = Array(sql)
        var statements: [String] = []
        var current: [Character] = []
        var index = 0

        func flush() {
            let statement = String(current).trimmingCharacters(in: .whitespacesAndNewlines)
            if !statement.isEmpty, !isOnlyComments(statement) { statements.append(statement) }
            current.removeAll(keepingCapacity: true)
        }

        while index < characters.count {
            let character = characters[index]
            let next: Character? = index + 1 < characters.count ? characters[index + 1] : nil
            switch character {
            case "'", "\"":
                // A quoted literal or identifier; a doubled quote escapes itself.
                current.append(character)
                index += 1
                while index < characters.count {
                    current.append(characters[index])
                    if characters[index] == character {
                        if index + 1 < characters.count, characters[index + 1] == character {
                            current.append(characters[index + 1])
                            index += 2
                            continue
                        }
                        break
                    }
                    index += 1
                }
                index += 1
            case "-" where next == "-":
                while index < characters.count, characters[index] != "\n" {
                    current.append(characters[index])
                    index += 1
                }
            case "/" where next == "*":
                while index < characters.count {
                    current.append(characters[index])
                    if characters[index] == "*", index + 1 < characters.count, characters[index + 1] == "/" {
                        current.append("/")
                        index += 2
                        break
                    }
                    index += 1
                }
            case "$":
                // A dollar quote: $tag$ ... $tag$ (tag may be empty).
                var end = index + 1
                while end < characters.count, characters[end].isLetter || characters[end].isNumber || characters[end] == "_" { end += 1 }
                if end < characters.count, characters[end] == "$", !(index > 0 && (characters[index - 1].isLetter || characters[index - 1].isNumber)) {
                    let tag = Array(characters[index...end])
                    current.append(contentsOf: tag)
                    index = end + 1
                    while index < characters.count {
                        if characters[index] == "$", index + tag.count <= characters.count, Array(characters[index..<index + tag.count]) == tag {
                            current.append(contentsOf: tag)
                            index += tag.count
                            break
                        }
                        current.append(characters[index])
                        index += 1
                    }
                } else {
                    current.append(character)
                    index += 1
                }
            case ";":
                flush()
                index += 1
            default:
                current.append(character)
                index += 1
            }
        }
        flush()
        return statements
    }

    private static func isOnlyComments(_ statement: String) -> Bool {
        statement.split(separator: "\n").allSatisfy { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return trimmed.isEmpty || trimmed.hasPrefix("--")
        }
    }
}
