import DroverCore
import Testing

@testable import DroverStore

/// A skill upload's rules and the archive a version downloads as, without I/O.
@Suite struct SkillBundleTests {
    static let skillMD = Array("---\nname: pdf-tools\ndescription: \"Reads PDFs.\"\n---\nbody\n".utf8)

    @Test func aFolderWithSKILLmdGivesNameDescriptionAndRelativePaths() throws {
        let bundle = try SkillBundle(files: [("pdf-tools/scripts/a.py", [1]), ("pdf-tools/SKILL.md", Self.skillMD)])
        #expect(bundle.name == "pdf-tools" && bundle.description == "Reads PDFs.")
        #expect(bundle.files.map(\.path) == ["/SKILL.md", "/scripts/a.py"])
        // Without a name in the frontmatter, the folder names the skill.
        let unnamed = try SkillBundle(files: [("my-skill/SKILL.md", Array("---\ndescription: d\n---\n".utf8))])
        #expect(unnamed.name == "my-skill")
    }

    @Test func everyRuleRefusesWithAReason() {
        let refused: [[(filename: String, bytes: [UInt8])]] = [
            [],
            [("pdf-tools/README.md", [1])],  // no SKILL.md
            [("SKILL.md", Self.skillMD)],  // not in a folder
            [("a/SKILL.md", Self.skillMD), ("b/x", [1])],  // two folders
            [("a/../SKILL.md", Self.skillMD)], [("a//SKILL.md", Self.skillMD)], [("a/./SKILL.md", Self.skillMD)],
            [("a\\b/SKILL.md", Self.skillMD)], [("a/SKILL.md\n", Self.skillMD)],
            [("a/SKILL.md", Self.skillMD), ("a/SKILL.md", Self.skillMD)],  // twice
            [("a/SKILL.md", Array("---\nname: Bad_Name\ndescription: d\n---\n".utf8))],
            [("a/SKILL.md", Array("---\nname: ok\n---\n".utf8))],  // no description
            [("a/SKILL.md", [0xFF, 0xFE])],  // not UTF-8
        ]
        for files in refused {
            #expect(throws: DroverError.self, "\(files.map(\.filename))") { try SkillBundle(files: files) }
        }
    }

    @Test func theArchiveIsAStoredZipWithRightChecksums() {
        #expect(ZipArchive.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        let zip = ZipArchive.stored([("s/SKILL.md", Array("hi".utf8))])
        #expect(zip.starts(with: [0x50, 0x4B, 0x03, 0x04]))
        // End of central directory: one entry.
        let end = Array(zip.suffix(22))
        #expect(end.starts(with: [0x50, 0x4B, 0x05, 0x06]) && end[10] == 1)
    }
}
