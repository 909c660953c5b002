import DroverCore
import Foundation

/// A memory's path, as the SDK's memory stores define it: it starts with `/` and has 1 to 20
/// segments, none empty, `.` or `..`; no control or format characters and no U+2028 or U+2029;
/// in Unicode Normalization Form C; at most 1,024 bytes. Paths are case-sensitive and compared
/// byte for byte, so what is not NFC is refused rather than normalised (two spellings of one
/// name would otherwise be two memories).
public enum MemoryPath {
    public static func checked(_ path: String) throws -> String {
        func refuse(_ why: String) -> DroverError { DroverError(.invalidArgument, "path: \(why)") }
        guard path.utf8.count <= 1_024 else { throw refuse("at most 1,024 bytes") }
        guard path.hasPrefix("/") else { throw refuse("must start with /") }
        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard (1...20).contains(segments.count) else { throw refuse("1 to 20 segments") }
        for segment in segments {
            guard !segment.isEmpty else { throw refuse("a segment is empty") }
            guard segment != ".", segment != ".." else { throw refuse("a segment is . or ..") }
        }
        for scalar in path.unicodeScalars {
            let category = scalar.properties.generalCategory
            guard category != .control, category != .format, scalar.value != 0x2028, scalar.value != 0x2029 else {
                throw refuse("control characters, format characters, U+2028 and U+2029 are not allowed")
            }
        }
        guard path.precomposedStringWithCanonicalMapping.utf8.elementsEqual(path.utf8) else {
            throw refuse("must be in Unicode Normalization Form C")
        }
        return path
    }
}
