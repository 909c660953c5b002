import DroverIO
import Testing

/// `MultipartForm` reads exactly what a form upload is, and refuses the rest whole.
@Suite struct MultipartFormTests {
    static func body(_ text: String) -> [UInt8] { Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8) }

    @Test func readsThePartsAsTheSDKSendsThem() throws {
        let body = Self.body("""
            --b0undary
            Content-Disposition: form-data; name="expires_in_seconds"

            3600
            --b0undary
            Content-Disposition: form-data; name="file"; filename="dir/a;b \\"q\\".txt"
            Content-Type: text/plain

            line one
            --b0undar is not the boundary
            --b0undary--

            """)
        let form = try MultipartForm(body: body, contentType: "multipart/form-data; boundary=b0undary")
        #expect(form.parts.count == 2)
        #expect(form.part("expires_in_seconds")?.body == Array("3600".utf8))
        let file = try #require(form.part("file"))
        #expect(file.filename == "dir/a;b \"q\".txt")
        #expect(file.contentType == "text/plain")
        // A line that only starts like the boundary is content; the part ends before the CRLF.
        #expect(file.body == Array("line one\r\n--b0undar is not the boundary".utf8))
        // Quoted boundaries, and binary content with CR and LF in it.
        let binary: [UInt8] = [0, 13, 10, 255, 13, 10, 45, 45]
        let raw = Array("--x y\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".utf8) + binary + Array("\r\n--x y--".utf8)
        #expect(try MultipartForm(body: raw, contentType: "multipart/form-data; boundary=\"x y\"").part("file")?.body == binary)
    }

    @Test func refusesWhatIsNotAForm() {
        let part = "Content-Disposition: form-data; name=\"file\"\n\nx\n"
        let cases: [(String, String)] = [
            ("application/json", "--b\n" + part + "--b--"),
            ("multipart/form-data", "--b\n" + part + "--b--"),
            ("multipart/form-data; boundary=", "--\n" + part + "----"),
            ("multipart/form-data; boundary=\(String(repeating: "b", count: 71))", "x"),
            ("multipart/form-data; boundary=b", "preamble\n--b\n" + part + "--b--"),
            ("multipart/form-data; boundary=b", "--b\n" + part),
            ("multipart/form-data; boundary=b", "--b\n" + part + "--b--trailing"),
            ("multipart/form-data; boundary=b", "--b\nContent-Disposition: attachment; name=\"file\"\n\nx\n--b--"),
            ("multipart/form-data; boundary=b", "--b\nContent-Disposition: form-data\n\nx\n--b--"),
            ("multipart/form-data; boundary=b", "--b\nno colon here\n\nx\n--b--"),
            ("multipart/form-data; boundary=b", "--b--"),
            ("multipart/form-data; boundary=b", "--b\n" + String(repeating: "X-Pad: \(String(repeating: "p", count: 100))\n", count: 100) + "\nx\n--b--"),
            ("multipart/form-data; boundary=b", String(repeating: "--b\n" + part, count: 17) + "--b--"),
        ]
        for (contentType, text) in cases {
            #expect(throws: MultipartForm.Malformed.self, "\(contentType) \(text.prefix(60).debugDescription)") {
                try MultipartForm(body: Self.body(text), contentType: contentType)
            }
        }
    }
}
