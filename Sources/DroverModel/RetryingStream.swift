import DroverCore
import DroverIO
import Foundation

/// Folds one streamed response (of either wire format) into a `ModelResponse`.
protocol ResponseStream: Sendable {
    init(observer: ModelStreamObserver)
    /// Body bytes as they arrive, on the transfer thread.
    func feed(_ bytes: [UInt8])
    /// The first bytes of the body, for error messages.
    var raw: [UInt8] { get }
    func finish() throws -> ModelResponse
}

/// The retry policy both providers share: 429, 529 and 5xx responses, overload or rate-limit
/// errors sent mid-stream under a 200, and unreachable servers are tried again, waiting what `retry-after` says or backing off exponentially with jitter; other
/// statuses fail at once with `http_error`.
struct RetryingStream {
    var http = HTTPClient()
    /// The API base, without a trailing slash.
    var baseURL: String
    var maxRetries: Int
    var maxBackoff: Double

    init(baseURL: String, maxRetries: Int, maxBackoff: Double) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.maxRetries = maxRetries
        self.maxBackoff = maxBackoff
    }

    func send<Stream: ResponseStream>(_ request: HTTPRequest, as: Stream.Type, observer: ModelStreamObserver) async throws -> ModelResponse {
        var attempt = 0
        while true {
            try Task.checkCancellation()
            let stream = Stream(observer: observer)
            let head: HTTPResponseHead
            do {
                head = try await http.perform(request) { stream.feed($0) }
            } catch let error as HTTPError {
                if error.cancelled { throw ModelError(.cancelled, "the model call was cancelled") }
                guard attempt < maxRetries else { throw ModelError(.network, error.message) }
                attempt += 1
                try await Task.sleep(for: .seconds(backoff(attempt, retryAfter: nil)))
                continue
            }
            if head.status == 200 {
                do {
                    return try stream.finish()
                } catch let error as ModelError where (error.code == .overloaded || error.code == .rateLimited) && attempt < maxRetries {
                    // An error event mid-stream: the call had no side effects, so make it again.
                    attempt += 1
                    try await Task.sleep(for: .seconds(backoff(attempt, retryAfter: nil)))
                    continue
                }
            }
            let retryable = head.status == 429 || head.status >= 500
            guard retryable, attempt < maxRetries else {
                let detail = String(decoding: stream.raw.prefix(2000), as: UTF8.self)
                switch head.status {
                case 429: throw ModelError(.rateLimited, "429 after \(attempt) retries: \(detail)")
                case 500...: throw ModelError(.overloaded, "\(head.status) after \(attempt) retries: \(detail)")
                default: throw ModelError(.http, "HTTP \(head.status): \(detail)")
                }
            }
            attempt += 1
            try await Task.sleep(for: .seconds(backoff(attempt, retryAfter: head.headers["retry-after"].flatMap(Double.init))))
        }
    }

    private func backoff(_ attempt: Int, retryAfter: Double?) -> Double {
        if let retryAfter { return min(maxBackoff, max(0, retryAfter)) }
        return min(maxBackoff, 0.5 * pow(2, Double(attempt - 1))) * Double.random(in: 0.8...1.2)
    }
}
