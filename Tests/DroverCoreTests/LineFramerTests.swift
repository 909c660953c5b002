import DroverCore
import Testing

@Suite struct LineFramerTests {
    @Test func splitsLinesAcrossChunks() {
        var framer = LineFramer(maxLineLength: 100)
        #expect(framer.feed(Array("ab".utf8)) == [])
        #expect(framer.feed(Array("c\nde\r\nf".utf8)) == [.line(Array("abc".utf8)), .line(Array("de".utf8))])
        #expect(framer.pendingBytes == 1)
        #expect(framer.feed(Array("\n".utf8)) == [.line(Array("f".utf8))])
    }

    @Test func anOverlongLineIsReportedOnceAndItsRestDiscarded() {
        var framer = LineFramer(maxLineLength: 4)
        #expect(framer.feed(Array("12345".utf8)) == [.tooLong])
        // The rest of the long line is dropped without buffering, up to its newline.
        #expect(framer.feed(Array(repeating: UInt8(ascii: "x"), count: 10_000)) == [])
        #expect(framer.pendingBytes == 0)
        #expect(framer.feed(Array("xx\nok\n".utf8)) == [.line(Array("ok".utf8))])
        #expect(framer.feed(Array("1234\n".utf8)) == [.line(Array("1234".utf8))])
    }
}

@Suite struct PoolProtocolTests {
    @Test func parsesRequestsAndRejectsWithCodes() throws {
        let ok = try PoolProtocol.Request.parse(Array(#"{"id":7,"op":"execute","sandbox":"sb_1"}"#.utf8)).get()
        #expect(ok.id == 7 && ok.op == "execute" && ok.body["sandbox"] == "sb_1")
        for (line, code, id) in [
            ("nope", PoolProtocol.ErrorCode.badJSON, JSONValue.null), ("[]", .badJSON, .null),
            (#"{"op":"x"}"#, .badRequest, .null), (#"{"id":true,"op":"x"}"#, .badRequest, .null),
            (#"{"id":"a"}"#, .badRequest, "a"),
        ] {
            guard case .failure(let rejected) = PoolProtocol.Request.parse(Array(line.utf8)) else {
                Issue.record("\(line) parsed")
                continue
            }
            #expect(rejected.failure.code == code && rejected.id == id, "\(line)")
        }
        #expect(PoolProtocol.success(id: 3, ["sandbox": "sb_x"]) == #"{"id":3,"result":{"sandbox":"sb_x"}}"#)
        #expect(PoolProtocol.failure(id: "q", .init(.timeout, "late")) == #"{"id":"q","error":{"code":"timeout","message":"late"}}"#)
    }

    @Test func jsonValueRoundTrips() throws {
        let text = #"{"a":[1,2.5,true,false,null,"x\"y"],"b":{"c":-3}}"#
        #expect(try JSONValue.parse(text).text == text)
        #expect(try JSONValue.parse("1").intValue == 1)
        #expect(try JSONValue.parse("true").boolValue == true)
    }
}
