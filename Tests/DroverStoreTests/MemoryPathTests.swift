import DroverCore
import DroverStore
import Testing

/// A memory's path follows the SDK's rules exactly; nothing is normalised behind the caller's back.
@Test func memoryPathsFollowTheSDKsRules() throws {
    for good in ["/a", "/projects/foo/notes.md", "/" + Array(repeating: "s", count: 20).joined(separator: "/"), "/é/中/🐂", "/.hidden/x..y"] {
        #expect(try MemoryPath.checked(good) == good)
    }
    let bad = [
        "", "a", "relative/x", "/", "/a/", "/a//b", "/./a", "/a/..", "/" + Array(repeating: "s", count: 21).joined(separator: "/"),
        "/" + String(repeating: "x", count: 1_024), "/tab\there", "/nul\u{0}", "/zero\u{200B}width", "/line\u{2028}sep", "/para\u{2029}sep",
        "/e\u{301}", // NFD: an e and a combining acute accent
    ]
    for path in bad {
        #expect(throws: DroverError.self, "\(path.debugDescription)") { try MemoryPath.checked(path) }
    }
}
