import DroverCore
import DroverIO
import Foundation

/// The web console's static files (HTML, CSS and JavaScript modules in `Console/`), served under
/// `/console/`. Read once; no build step, nothing fetched from elsewhere.
///
/// Found at `$DROVER_CONSOLE_DIR`, else beside the executable (the build's resource bundle,
/// `Drover_DroverAPI.resources/Console`), else in `../share/drover/console` (an installed or
/// container layout, as deploy/Dockerfile makes). Without them the API serves without a console.
public struct ConsoleFiles: Sendable {
    let files: [String: (type: String, body: [UInt8])]

    static func folder() -> URL? {
        var candidates: [String] = []
        if let configured = ProcessInfo.processInfo.environment["DROVER_CONSOLE_DIR"], !configured.isEmpty { candidates.append(configured) }
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        candidates.append(binary.appendingPathComponent("Drover_DroverAPI.resources/Console").path)
        candidates.append(binary.deletingLastPathComponent().appendingPathComponent("share/drover/console").path)
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/index.html") }.map { URL(fileURLWithPath: $0) }
    }

    public var isEmpty: Bool { files.isEmpty }

    public init() {
        var files: [String: (String, [UInt8])] = [:]
        let types = ["html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8",
                     "svg": "image/svg+xml"]
        if let folder = Self.folder(), let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) {
            for name in names {
                guard let type = types[(name as NSString).pathExtension],
                      let data = FileManager.default.contents(atPath: folder.appendingPathComponent(name).path) else { continue }
                files[name] = (type, Array(data))
            }
        }
        self.files = files
    }

    /// The file a GET under `/console/` names (`/console/` itself is index.html); nil for other paths.
    func response(for request: HTTPServerRequest) -> APIResponse? {
        let path = String(request.path.prefix { $0 != "?" })
        guard request.method == "GET", path == "/console" || path.hasPrefix("/console/") || path == "/" else { return nil }
        if path == "/" || path == "/console" {
            return .raw(status: 308, contentType: "text/plain", body: [], headers: [("location", "/console/")])
        }
        let name = path == "/console/" ? "index.html" : String(path.dropFirst("/console/".count))
        guard let file = files[name] else {
            return .raw(status: 404, contentType: "text/plain; charset=utf-8", body: Array("not found\n".utf8), headers: [])
        }
        return .raw(status: 200, contentType: file.type, body: file.body, headers: [
            ("cache-control", "no-cache"), ("x-content-type-options", "nosniff"),
            ("content-security-policy", "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"), ("x-frame-options", "DENY"),
        ])
    }
}
