import CCurl

/// libcurl's process-wide set-up, done once before any handle: by `TLSConnection` here and by
/// DroverModel's `HTTPClient`.
public enum CurlGlobal {
    private static let done: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public static func initialize() { _ = done }
}
