import DroverIO
import Testing

/// The parser against well-formed, malformed and hostile input, byte by byte where it matters.
@Suite struct HTTPRequestParserTests {
    func parse(_ text: String, limits: HTTPRequestParser.Limits = .init()) -> HTTPRequestParser.Step {
        var parser = HTTPRequestParser(limits: limits)
        parser.feed(Array(text.utf8))
        return parser.next()
    }

    func status(_ text: String, limits: HTTPRequestParser.Limits = .init()) -> Int? {
        if case .refused(let refusal) = parse(text, limits: limits) { return refusal.status }
        return nil
    }

    @Test func aRequestWithABodyAndPipelining() {
        var parser = HTTPRequestParser()
        let one = "POST /v1/agents?beta=true HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-Api-Key: k\r\n\r\n{}"
        let two = "GET /v1/agents HTTP/1.1\r\nHost: x\r\n\r\n"
        // Byte by byte: nothing is returned before the whole request is there.
        for byte in Array((one + two).utf8).prefix(one.utf8.count - 1) {
            parser.feed([byte])
            #expect(parser.next() == .needMore)
        }
        parser.feed(Array((one + two).utf8).dropFirst(one.utf8.count - 1))
        guard case .request(let first) = parser.next(), case .request(let second) = parser.next() else {
            Issue.record("two requests expected")
            return
        }
        #expect(first.method == "POST" && first.path == "/v1/agents?beta=true" && first.body == Array("{}".utf8))
        #expect(first.headers["x-api-key"] == "k")
        #expect(second.method == "GET" && second.body.isEmpty)
        #expect(parser.next() == .needMore)
    }

    @Test func chunkedBodies() {
        let chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: t\r\n\r\n"
        guard case .request(let request) = parse(chunked) else {
            Issue.record("chunked body not parsed")
            return
        }
        #expect(request.body == Array("Wikipedia".utf8))
        #expect(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") == 400)
        #expect(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWikiXX") == 400)
        #expect(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n") == 501)
    }

    @Test func hostileAndMalformedInputIsRefusedWithItsStatus() {
        var small = HTTPRequestParser.Limits()
        small.body = 10
        small.headerBytes = 200
        small.requestLine = 100
        let cases: [(String, Int)] = [
            ("GARBAGE\r\n\r\n", 400),
            ("GET /\r\nHost: x\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            ("GET / HTTP/1.1\r\n\r\n", 400),  // no Host
            ("GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nName : y\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n  folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nA: b\u{01}c\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", 413),
            ("GET /" + String(repeating: "a", count: 200) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414),
            ("GET / HTTP/1.1\r\nHost: x\r\nA: " + String(repeating: "b", count: 300) + "\r\n\r\n", 431),
        ]
        for (text, expected) in cases {
            #expect(status(text, limits: small) == expected, "\(text.prefix(60).debugDescription)")
        }
        // A request line that never ends is refused once it passes the limit, not buffered forever.
        #expect(status("GET /" + String(repeating: "a", count: 200), limits: small) == 414)
        // Repeated identical Content-Length values are one length.
        guard case .request = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok") else {
            Issue.record("identical Content-Length values refused")
            return
        }
    }

    /// Issue #20: `-2` as a chunk size trapped the API (Swift's `Int(_, radix:)` takes a sign, and a
    /// negative size made a range backwards). Every size form but plain hex digits is refused.
    @Test func chunkSizesAreHexDigitsAndNothingElse() {
        let prefix = "POST /v1/agents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        for size in ["-2", "+2", "-0", " 2", "0x2", "", "123456789", "2 2", "2\u{01}", "ffffffff0"] {
            #expect(status(prefix + size + "\r\nab\r\n0\r\n\r\n") == 400, "\(size.debugDescription)")
        }
        for (size, body) in [("2", "ab"), ("02", "ab"), ("A;x=y", "0123456789"), ("2 ;name", "ab")] {
            guard case .request(let request) = parse(prefix + size + "\r\n" + body + "\r\n0\r\n\r\n") else {
                Issue.record("\(size.debugDescription) refused")
                continue
            }
            #expect(request.body == Array(body.utf8))
        }
        // A size above the body limit is refused before any of it is buffered.
        #expect(status(prefix + "7fffffff\r\n") == 413)
    }

    @Test func chunkExtensionsAndTrailersAreBounded() {
        let prefix = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        // An extension longer than a size line may be, whether it arrives whole or never ends.
        #expect(status(prefix + "2;" + String(repeating: "e", count: 2000) + "\r\nab\r\n0\r\n\r\n") == 400)
        #expect(status(prefix + "2;" + String(repeating: "e", count: 2000)) == 400)
        // Endless trailers: too many, too large, or one that never ends.
        #expect(status(prefix + "0\r\n" + String(repeating: "T: v\r\n", count: 40) + "\r\n") == 431)
        #expect(status(prefix + "0\r\nT: " + String(repeating: "v", count: 9000) + "\r\n\r\n") == 431)
        #expect(status(prefix + "0\r\nT: " + String(repeating: "v", count: 9000)) == 431)
        #expect(status(prefix + "0\r\nnot a field\r\n\r\n") == 400)
        // Chunked in HTTP/1.0 and a second Host are smuggling shapes.
        #expect(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400)
    }

    /// A body arriving in many small reads is parsed once: each byte is looked at a bounded number
    /// of times (the old parser re-decoded a chunked body from its start on every read).
    @Test func aBodyInSmallPiecesIsNotReparsed() {
        var limits = HTTPRequestParser.Limits()
        limits.body = 64 << 20
        var parser = HTTPRequestParser(limits: limits)
        parser.feed(Array("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".utf8))
        let chunk = Array("1\r\nx\r\n".utf8)
        // 200,000 reads of one chunk each: the old parser's re-decoding made this ~10^11 steps.
        for _ in 0..<200_000 {
            parser.feed(chunk)
            #expect(parser.next() == .needMore)
        }
        parser.feed(Array("0\r\n\r\n".utf8))
        guard case .request(let request) = parser.next() else {
            Issue.record("no request")
            return
        }
        #expect(request.body.count == 200_000)
    }

    /// A refusal is final: bytes fed after it cannot turn into a request.
    @Test func aRefusalIsFinal() {
        var parser = HTTPRequestParser()
        parser.feed(Array("BAD\r\n\r\n".utf8))
        guard case .refused = parser.next() else {
            Issue.record("not refused")
            return
        }
        parser.feed(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        guard case .refused = parser.next() else {
            Issue.record("a request came after a refusal")
            return
        }
    }
}
