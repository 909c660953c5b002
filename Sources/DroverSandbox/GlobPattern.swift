import Foundation

/// A glob over `/`-separated paths: `*` and `?` and `[…]` within one segment (fnmatch), `**` for
/// any number of segments. A pattern without `/` matches file names at any depth, as most
/// agent tools do (`*.py` finds every Python file).
struct GlobPattern: Sendable {
    let segments: [String]

    init(_ pattern: String) {
        let trimmed = pattern.hasPrefix("./") ? String(pattern.dropFirst(2)) : pattern
        var parts = trimmed.split(separator: "/").map(String.init)
        if !trimmed.contains("/") { parts.insert("**", at: 0) }
        segments = parts
    }

    func matches(_ path: String) -> Bool {
        Self.match(segments[...], path.split(separator: "/").map(String.init)[...])
    }

    private static func match(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let head = pattern.first else { return path.isEmpty }
        if head == "**" {
            var rest = path
            while true {
                if match(pattern.dropFirst(), rest) { return true }
                guard !rest.isEmpty else { return false }
                rest = rest.dropFirst()
            }
        }
        guard let segment = path.first, fnmatch(head, segment, FNM_PERIOD) == 0 else { return false }
        return match(pattern.dropFirst(), path.dropFirst())
    }
}
