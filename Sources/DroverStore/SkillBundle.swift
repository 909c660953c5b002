import DroverCore
import Foundation

/// A skill's upload, checked: the files of one folder with a SKILL.md at its root, whose YAML
/// frontmatter gives the skill's name (else the folder's) and description. Pure, so every rule is
/// tested without a database.
///
/// The rules, as the SDK documents them: every file in the same top-level folder, a `SKILL.md`
/// there; the name a kebab-case slug of at most 64 characters; a description (at most 1,024
/// characters). Paths are kept relative to the folder (`/SKILL.md`, `/scripts/run.sh`); a path
/// with an empty, `.` or `..` segment, a backslash or a control character is refused, as is the
/// same path twice.
public struct SkillBundle: Sendable, Equatable {
    public var name: String
    public var description: String
    /// Path under the skill's folder (starting with `/`) and bytes.
    public var files: [(path: String, bytes: [UInt8])]

    public static let maxFiles = 256

    public static func == (a: SkillBundle, b: SkillBundle) -> Bool {
        a.name == b.name && a.description == b.description && a.files.map(\.path) == b.files.map(\.path) && a.files.map(\.bytes) == b.files.map(\.bytes)
    }

    public init(files uploaded: [(filename: String, bytes: [UInt8])]) throws(DroverError) {
        guard !uploaded.isEmpty, uploaded.count <= Self.maxFiles else {
            throw DroverError(.invalidArgument, "files: 1 to \(Self.maxFiles) files of one folder, with a SKILL.md at its root, are required")
        }
        var folder: String?
        var files: [(path: String, bytes: [UInt8])] = []
        var seen = Set<String>()
        for file in uploaded {
            let segments = file.filename.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard segments.count >= 2, segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }),
                  !file.filename.contains("\\"), !file.filename.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }),
                  file.filename.utf8.count <= 1_024 else {
                throw DroverError(.invalidArgument, "files: \(file.filename) is not a path inside the skill's folder (folder/…, no empty, . or .. segments)")
            }
            if folder == nil { folder = segments[0] }
            guard segments[0] == folder else {
                throw DroverError(.invalidArgument, "files: every file must be in the same top-level folder (\(folder!)/…), not \(file.filename)")
            }
            let path = "/" + segments.dropFirst().joined(separator: "/")
            guard seen.insert(path).inserted else { throw DroverError(.invalidArgument, "files: \(file.filename) is given twice") }
            files.append((path, file.bytes))
        }
        guard let skillMD = files.first(where: { $0.path == "/SKILL.md" }), let text = String(validating: skillMD.bytes, as: UTF8.self) else {
            throw DroverError(.invalidArgument, "files: a SKILL.md (UTF-8 text) is required at the root of \(folder ?? "the folder")")
        }
        let front = Self.frontmatter(text)
        let name = front["name"] ?? folder ?? ""
        guard (1...64).contains(name.count), name.utf8.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 45 }),
              !name.hasPrefix("-"), !name.hasSuffix("-") else {
            throw DroverError(.invalidArgument, "SKILL.md: name \(name) must be kebab-case (lower-case letters, digits and hyphens, at most 64)")
        }
        guard let description = front["description"], (1...1_024).contains(description.count) else {
            throw DroverError(.invalidArgument, "SKILL.md: its frontmatter needs a description (1 to 1,024 characters)")
        }
        self.name = name
        self.description = description
        self.files = files.sorted { $0.path < $1.path }
    }

    /// The `key: value` lines between a leading `---` line and the next one; quotes around a
    /// value are taken off. Enough of YAML for SKILL.md's two keys.
    static func frontmatter(_ text: String) -> [String: String] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
        guard lines.first?.trimmingCharacters(in: .whitespaces) == "---" else { return [:] }
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            if line.trimmingCharacters(in: .whitespaces) == "---" { return fields }
            guard let colon = line.firstIndex(of: ":"), !line.hasPrefix(" ") else { continue }
            var value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == value.last, first == "\"" || first == "'" { value = String(value.dropFirst().dropLast()) }
            fields[String(line[..<colon]).trimmingCharacters(in: .whitespaces)] = value
        }
        return [:]
    }
}
