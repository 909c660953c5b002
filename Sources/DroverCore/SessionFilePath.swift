/// Where a session's file may appear in its sandbox, and what a file's id looks like: one rule
/// for the API, which refuses such a resource, and the sandbox pool, which refuses to put it.
public enum SessionFilePath {
    /// The folder whose files become the session's output files; nothing is mounted in it.
    public static let outputs = "/mnt/session/outputs"

    /// `file_` and lower-case letters, digits and underscores, at most 64 characters.
    public static func isFileID(_ id: String) -> Bool {
        id.hasPrefix("file_") && id.utf8.count <= 64 && id.utf8.allSatisfy { $0 == 95 || (48...57).contains($0) || (97...122).contains($0) }
    }

    /// An absolute path under `/mnt/` of at most 1,024 bytes, without empty, `.` or `..` segments
    /// or control characters, and not in the outputs folder.
    public static func isMountPath(_ path: String) -> Bool {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        return path.hasPrefix("/mnt/") && path.utf8.count <= 1_024 && segments.count >= 2
            && segments.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
            && !path.unicodeScalars.contains { $0.properties.generalCategory == .control }
            && path != outputs && !path.hasPrefix(outputs + "/")
    }
}
