import DroverCore
import DroverIO
import DroverModel

/// One parser of untrusted bytes, driven by arbitrary input. A target never returns an error for
/// bad input (refusing it is the parser's job); it traps only when an invariant breaks, which is
/// what libFuzzer reports. The first input byte chooses how the rest is split into reads, so
/// the incremental parsers are also fed in every chunking.
struct FuzzTarget: Sendable {
    let name: String
    let summary: String
    let run: @Sendable ([UInt8]) -> Void

    static let all: [FuzzTarget] = [
        FuzzTarget(name: "http-request", summary: "HTTPRequestParser: request heads, Content-Length and chunked bodies, pipelining", run: httpRequest),
        FuzzTarget(name: "http-head", summary: "HTTPRequestParser.head: what the egress proxy and the repository relay parse", run: httpHead),
        FuzzTarget(name: "lines", summary: "LineFramer and the pool protocol's request lines (NDJSON)", run: lines),
        FuzzTarget(name: "sse", summary: "SSEParser and the JSON messages in it (model streams, MCP answers)", run: sse),
        FuzzTarget(name: "json", summary: "JSONValue round trip and what reads tenant JSON (networking, repositories, ceilings)", run: json),
        FuzzTarget(name: "address", summary: "IPAddress and CIDR literals and the address rule", run: address),
    ]

    static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }

    /// `input` after its first byte, cut into reads whose sizes the first byte sets (1 … 256).
    static func reads(_ input: [UInt8]) -> [ArraySlice<UInt8>] {
        guard let first = input.first else { return [] }
        let size = Int(first) + 1
        var pieces: [ArraySlice<UInt8>] = []
        var index = 1
        while index < input.count {
            pieces.append(input[index..<min(input.count, index + size)])
            index += size
        }
        return pieces
    }

    static func check(_ condition: Bool, _ what: @autoclosure () -> String) {
        if !condition { fatalError("invariant broken: \(what())") }
    }

    static func httpRequest(_ input: [UInt8]) {
        var limits = HTTPRequestParser.Limits()
        limits.body = 4096
        limits.headerBytes = 2048
        limits.requestLine = 1024
        var parser = HTTPRequestParser(limits: limits)
        var refused = false
        for piece in reads(input) {
            parser.feed(piece)
            loop: while true {
                switch parser.next() {
                case .request(let request):
                    check(!refused, "a request after a refusal")
                    check(request.body.count <= limits.body, "a body over the limit")
                    check(request.headers.count <= limits.headerCount, "more headers than the limit")
                case .refused(let refusal):
                    check((400...599).contains(refusal.status), "a refusal status \(refusal.status)")
                    refused = true
                    break loop
                case .needMore:
                    break loop
                }
            }
        }
    }

    static func httpHead(_ input: [UInt8]) {
        guard case .success(let head) = HTTPRequestParser.head(input[...]) else { return }
        check(!head.method.isEmpty && head.target.utf8.allSatisfy { $0 > 32 && $0 < 127 }, "a head with an unprintable target")
        for field in head.fields {
            check(!field.value.utf8.contains { ($0 < 32 && $0 != 9) || $0 == 127 }, "a control character in a header value")
        }
        _ = head.headers
    }

    static func lines(_ input: [UInt8]) {
        var framer = LineFramer(maxLineLength: 512)
        for piece in reads(input) {
            for frame in framer.feed(piece) {
                guard case .line(let line) = frame else { continue }
                check(line.count <= 512, "a line over the limit")
                if case .success(let request) = PoolProtocol.Request.parse(line) {
                    _ = try? request.string("sandbox")
                    _ = try? request.optionalString("session")
                }
            }
        }
    }

    static func sse(_ input: [UInt8]) {
        var parser = SSEParser()
        for piece in reads(input) {
            for event in parser.feed(piece) {
                _ = try? JSONValue.parse(event.data)
            }
        }
    }

    static func json(_ input: [UInt8]) {
        guard let value = try? JSONValue.parse(input.dropFirst()) else { return }
        let again = try? JSONValue.parse(value.text)
        check(again != nil, "its own text does not parse: \(value.text.prefix(200))")
        check(again?.text == value.text, "the text changes on a round trip")
        let policy = NetworkPolicy(environmentConfig: value)
        _ = policy.allows(host: "example.com", port: 443)
        _ = policy.namesPort(host: "example.com", port: 8443)
        _ = try? RepositoryResource(json: value)
        _ = ResourceCeilings().violation(in: value["resources"] ?? value)
    }

    static func address(_ input: [UInt8]) {
        let text = String(decoding: input.dropFirst(), as: UTF8.self)
        let rule = AddressRule(allowedInternal: [CIDR("127.0.0.0/8")!, CIDR("fd00::/8")!])
        if let parsed = IPAddress(text) {
            check(IPAddress(parsed.description) == parsed, "\(text) does not round-trip")
            _ = rule.refusal(for: parsed)
            _ = parsed.embeddedV4
        }
        if let range = CIDR(text) {
            check(range.prefix <= range.network.bytes.count * 8, "a prefix longer than the address")
            _ = range.contains(IPAddress("10.0.0.1")!)
        }
        _ = try? AddressRule.parseAllowed(text)
        _ = try? ResourceCeilings(parsing: text)
    }
}
