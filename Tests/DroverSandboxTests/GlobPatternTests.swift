@testable import DroverSandbox
import Testing

@Suite struct GlobPatternTests {
    @Test func segmentsAndDoubleStars() {
        #expect(GlobPattern("**/*.py").matches("a/b/c.py"))
        #expect(GlobPattern("**/*.py").matches("c.py"))
        #expect(GlobPattern("*.py").matches("deep/down/c.py"))
        #expect(!GlobPattern("src/*.py").matches("src/a/c.py"))
        #expect(GlobPattern("src/**/test_?.py").matches("src/x/y/test_1.py"))
        #expect(!GlobPattern("*.py").matches("c.pyc"))
        #expect(!GlobPattern("*").matches(".hidden"))
        #expect(GlobPattern("[ab]*.txt").matches("b1.txt"))
    }
}
