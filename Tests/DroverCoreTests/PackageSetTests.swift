import DroverCore
import Testing

struct PackageSetTests {
    /// FIPS 180-4's vectors: empty, one block, two blocks, and a million a's (many blocks).
    @Test func sha256MatchesTheStandardsVectors() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // 55 and 56 bytes: the padding fits one block, then needs a second.
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 55)) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318")
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 56)) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a")
    }

    @Test func packagesAreReadAsTheSDKSendsThem() throws {
        let set = try PackageSet(json: ["type": "packages", "pip": ["pandas==2.0", "requests[socks]>=2"], "apt": ["ripgrep"], "npm": [], "cargo": .null])
        #expect(set[.pip] == ["pandas==2.0", "requests[socks]>=2"] && set[.apt] == ["ripgrep"] && set[.npm].isEmpty && !set.isEmpty)
        #expect(set.json == ["pip": ["pandas==2.0", "requests[socks]>=2"], "apt": ["ripgrep"]])
        #expect(try PackageSet(json: nil).isEmpty && PackageSet(json: ["type": "packages"]).isEmpty)
        #expect(try PackageSet(json: ["npm": ["@scope/name@^1.2", "left-pad@~1"], "go": ["golang.org/x/tools/cmd/goimports@latest"]])[.npm].count == 2)
    }

    /// Every name is one plain argument: never an option, a second word, a quote or a shell character.
    @Test func namesThatAreNotPlainArgumentsAreRefused() {
        for bad: JSONValue in [
            ["pip": ["--index-url=http://evil"]], ["pip": ["a b"]], ["apt": ["x;rm -rf /"]], ["npm": ["$(id)"]], ["pip": ["it's"]],
            ["pip": [""]], ["pip": [.string(String(repeating: "a", count: 215))]], ["pip": [1]], ["pip": "requests"], ["brew": ["wget"]],
            ["type": "other"], "packages", ["apt": ["a\nb"]], ["pip": .array(Array(repeating: "a", count: 101))],
        ] {
            #expect(throws: PackageSet.Invalid.self, "\(bad.text)") { try PackageSet(json: bad) }
        }
    }
}
