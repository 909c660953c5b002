import DroverCore
import Foundation

/// A git server over HTTP for tests (`Tests/git/git_http_server.py`: `git http-backend` behind a
/// token check), serving one bare repository, `project.git`, with one commit on `main`.
public final class GitServer: @unchecked Sendable {
    public let root: String
    public let token: String
    public let url: String
    private let process: AnnouncingProcess

    /// The certificate it serves with `https` (self-signed for `host`; a client trusts it as its CA).
    public let certificate: String?

    /// Starts it on `host` (a loopback address) with a fresh repository; with `https`, over TLS
    /// with a certificate made for the occasion.
    public init(host: String = "127.0.0.2", https: Bool = false) throws {
        root = NSTemporaryDirectory() + "drover-git-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        token = "ghp_" + (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined()
        let seed = root + "/seed"
        try FileManager.default.createDirectory(atPath: seed, withIntermediateDirectories: true)
        try Self.git(["init", "--quiet", "--bare", "--initial-branch=main", root + "/project.git"])
        try Self.git(["init", "--quiet", "--initial-branch=main", seed])
        try "# project\n".write(toFile: seed + "/README.md", atomically: true, encoding: .utf8)
        try Self.git(["-C", seed, "add", "README.md"])
        try Self.git(["-C", seed, "-c", "user.name=seed", "-c", "user.email=seed@example.invalid", "commit", "--quiet", "-m", "first"])
        try Self.git(["-C", seed, "push", "--quiet", root + "/project.git", "main"])
        try Self.git(["--git-dir", root + "/project.git", "config", "http.receivepack", "true"])

        var tls: [String] = []
        if https {
            let (certificate, key) = (root + "/cert.pem", root + "/key.pem")
            let made = try DroverProcess.runBlocking(
                binary: "/usr/bin/openssl",
                ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate, "-days", "1",
                 "-subj", "/CN=\(host)", "-addext", "subjectAltName=IP:\(host)"], environment: [:])
            guard made.status == 0 else { throw DroverError(.invalidArgument, "openssl could not make a certificate: \(made.stderr)") }
            tls = [certificate, key]
            self.certificate = certificate
        } else {
            certificate = nil
        }
        process = try AnnouncingProcess(
            "/usr/bin/python3", [TestDatabase.packageRoot.appendingPathComponent("Tests/git/git_http_server.py").path, root, token, host] + tls)
        guard let port = Int(process.firstLine) else {
            process.stop()
            throw DroverError(.invalidArgument, "the git server did not start")
        }
        url = "\(https ? "https" : "http")://\(host):\(port)/project.git"
    }

    /// The commit messages on `branch` of the served repository, newest first.
    /// An environment's networking that lets a sandbox reach this server (by its host:port).
    public var networking: JSONValue {
        let authority = url.split(separator: "/")[1]
        return ["type": "limited", "allowed_hosts": [.string(String(authority))]]
    }

    public func log(_ branch: String = "main") throws -> [String] {
        try Self.output(["--git-dir", root + "/project.git", "log", "--format=%s", branch]).split(separator: "\n").map(String.init)
    }

    public func stop() {
        process.stop()
        try? FileManager.default.removeItem(atPath: root)
    }

    public static func git(_ arguments: [String]) throws {
        _ = try output(arguments)
    }

    static func output(_ arguments: [String]) throws -> String {
        let ran = try DroverProcess.runBlocking(binary: "/usr/bin/git", arguments, environment: [:])
        guard ran.status == 0 else { throw DroverError(.invalidArgument, "git \(arguments.joined(separator: " ")) failed: \(ran.stderr)") }
        return ran.stdout
    }
}
