import DroverCore

/// How an environment's packages become a layer: where each manager fetches from (the
/// operator's mirrors, else the public registries and the host's apt sources), the script that
/// installs a `PackageSet` into the layer inside a build sandbox, and what a sandbox's calls need
/// to see it. Pure: `PackageLayers` runs the script and keeps the layers.
///
/// A layer is one folder, mounted at `mount` (read-write in its build sandbox, read-only in every
/// sandbox of the environment afterwards): pip installs with `--target` into `python/`, npm with
/// `--prefix` into `npm/`, apt downloads with the host's dpkg status (so only what the host lacks)
/// and unpacks each package into `apt/`, cargo, gem and go into folders of their own. Nothing
/// touches the host's `/usr`; a sandbox sees the layer through PATH, PYTHONPATH, NODE_PATH,
/// GEM_PATH and LD_LIBRARY_PATH.
public struct PackageInstaller: Sendable, Equatable {
    /// pip's index (`--index-url`).
    public var pipIndexURL = "https://pypi.org/simple"
    /// npm's registry (`--registry`).
    public var npmRegistry = "https://registry.npmjs.org"
    /// One sources.list line for apt (`deb [trusted=yes] http://mirror/debian ./`); nil: the
    /// host's own `/etc/apt` sources.
    public var aptSource: String?

    public init() {}

    /// Where a layer appears inside a sandbox.
    public static let mount = "/opt/drover/packages"

    /// The registries' host names, which the install may reach (and `allow_package_managers`
    /// opens to the agent too): the public ones and the operator's mirrors.
    public var hosts: [String] {
        var hosts = NetworkPolicy.packageManagerHosts
        for url in [pipIndexURL, npmRegistry] + (aptSource.map { Self.urls(inSourceLine: $0) } ?? []) {
            if let authority = Self.authority(of: url), !hosts.contains(authority) { hosts.append(authority) }
        }
        return hosts
    }

    /// What a layer is named by: the packages in order and where they come from, hashed. Two
    /// environments that list the same packages share one layer.
    public func key(_ packages: PackageSet) -> String {
        var text = "drover-packages-1\n\(pipIndexURL)\n\(npmRegistry)\n\(aptSource ?? "host")\n"
        for manager in PackageSet.Manager.allCases {
            text += manager.rawValue + ":" + packages[manager].joined(separator: "\u{0}") + "\n"
        }
        return SHA256.hex(Array(text.utf8))
    }

    /// The install, as a bash script run in the build sandbox with the layer writable at `mount`
    /// and the egress proxy in its environment. It prints a line before each manager, and exits
    /// non-zero with the manager's own words when one fails.
    public func script(_ packages: PackageSet) -> String {
        let layer = Self.mount
        var script = """
            set -eu
            need() { command -v "$1" >/dev/null 2>&1 || { echo "$1 is not installed on this pool's host: the environment's $2 packages cannot be installed" >&2; exit 1; }; }

            """
        for manager in PackageSet.Manager.allCases {
            let names = packages[manager]
            guard !names.isEmpty else { continue }
            let args = names.map(Self.quoted).joined(separator: " ")
            script += "echo \(Self.quoted("\(manager.rawValue): installing \(names.joined(separator: " "))"))\n"
            switch manager {
            case .apt:
                // apt's own state, lists and downloads in /tmp; the host's dpkg status, so that
                // only what the host lacks is fetched; no apt.conf.d of the host's (its hooks
                // would write to the read-only system).
                script += "need apt-get apt; need dpkg-deb apt\n"
                script += "mkdir -p /tmp/apt/lists/partial /tmp/apt/archives/partial /tmp/apt/parts /tmp/apt/sources.d\n"
                var options = [
                    "-o", "Dir::Etc::Main=/dev/null", "-o", "Dir::Etc::Parts=/tmp/apt/parts", "-o", "Dir::State::Lists=/tmp/apt/lists",
                    "-o", "Dir::State::status=/var/lib/dpkg/status", "-o", "Dir::Cache=/tmp/apt", "-o", "Dir::Cache::archives=/tmp/apt/archives",
                    "-o", "Debug::NoLocking=1", "-o", "Acquire::http::Pipeline-Depth=0", "-o", "Acquire::Retries=2",
                    "-o", "APT::Get::AllowUnauthenticated=false",
                ]
                if let aptSource {
                    script += "printf '%s\\n' \(Self.quoted(aptSource)) > /tmp/apt/sources.list\n"
                    options += ["-o", "Dir::Etc::SourceList=/tmp/apt/sources.list", "-o", "Dir::Etc::SourceParts=/tmp/apt/sources.d"]
                }
                let apt = "apt-get -q " + options.map(Self.quoted).joined(separator: " ")
                script += "\(apt) update\n"
                script += "\(apt) -y --no-install-recommends install --download-only \(args)\n"
                script += "mkdir -p \(layer)/apt\n"
                script += "for deb in /tmp/apt/archives/*.deb; do [ -e \"$deb\" ] || continue; dpkg-deb -x \"$deb\" \(layer)/apt; done\n"
            case .pip:
                script += "need python3 pip\n"
                var trusted = ""
                if pipIndexURL.lowercased().hasPrefix("http://"), let host = Self.authority(of: pipIndexURL) {
                    // The operator chose a plain-HTTP mirror; pip ignores one unless it is named.
                    trusted = " --trusted-host " + Self.quoted(host)
                }
                script += "python3 -m pip install --disable-pip-version-check --no-input --no-cache-dir --no-warn-script-location --progress-bar off "
                    + "--target \(layer)/python --index-url \(Self.quoted(pipIndexURL))\(trusted) \(args)\n"
            case .npm:
                script += "need npm npm\nmkdir -p \(layer)/npm\n"
                script += "npm install --prefix \(layer)/npm --registry \(Self.quoted(npmRegistry)) --no-audit --no-fund --no-update-notifier --omit=dev \(args)\n"
            case .cargo:
                script += "need cargo cargo\nCARGO_HOME=/tmp/cargo cargo install --root \(layer)/cargo \(args)\n"
            case .gem:
                script += "need gem gem\ngem install --no-document --install-dir \(layer)/gem --bindir \(layer)/gem/bin \(args)\n"
            case .go:
                script += "need go go\nfor p in \(args); do GOPATH=/tmp/go GOCACHE=/tmp/go/cache GOBIN=\(layer)/go/bin go install \"$p\"; done\n"
            }
        }
        return script + "echo installed\n"
    }

    /// What a sandbox's calls set to use a layer of `packages`: PATH first, then the managers'
    /// own search paths.
    public static func environment(_ packages: PackageSet) -> [(String, String)] {
        let layer = mount
        var path: [String] = []
        var variables: [(String, String)] = []
        var pythonPath: [String] = []
        for manager in PackageSet.Manager.allCases where !packages[manager].isEmpty {
            switch manager {
            case .apt:
                path += ["\(layer)/apt/usr/local/bin", "\(layer)/apt/usr/bin", "\(layer)/apt/bin", "\(layer)/apt/usr/sbin"]
                pythonPath.append("\(layer)/apt/usr/lib/python3/dist-packages")
                variables.append(("LD_LIBRARY_PATH", ["\(layer)/apt/usr/lib/\(multiarch)", "\(layer)/apt/lib/\(multiarch)", "\(layer)/apt/usr/lib"]
                    .joined(separator: ":")))
            case .pip:
                path.append("\(layer)/python/bin")
                pythonPath.insert("\(layer)/python", at: 0)
            case .npm:
                path.append("\(layer)/npm/node_modules/.bin")
                variables.append(("NODE_PATH", "\(layer)/npm/node_modules"))
            case .cargo:
                path.append("\(layer)/cargo/bin")
            case .gem:
                path.append("\(layer)/gem/bin")
                variables.append(("GEM_PATH", "\(layer)/gem"))
            case .go:
                path.append("\(layer)/go/bin")
            }
        }
        if !pythonPath.isEmpty { variables.append(("PYTHONPATH", pythonPath.joined(separator: ":"))) }
        return [("PATH", (path + ["/usr/local/bin", "/usr/bin", "/bin"]).joined(separator: ":"))] + variables
    }

    #if arch(arm64)
    static let multiarch = "aarch64-linux-gnu"
    #else
    static let multiarch = "x86_64-linux-gnu"
    #endif

    /// `host` or `host:port` of an http(s) URL.
    static func authority(of url: String) -> String? {
        let lowered = url.lowercased()
        guard let scheme = ["http://", "https://"].first(where: lowered.hasPrefix) else { return nil }
        let authority = lowered.dropFirst(scheme.count).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        if scheme == "https://", authority.hasSuffix(":443") { return String(authority.dropLast(4)) }
        if scheme == "http://", authority.hasSuffix(":80") { return String(authority.dropLast(3)) }
        return String(authority)
    }

    /// The URLs of a sources.list line (`deb [options] URL suite components`).
    static func urls(inSourceLine line: String) -> [String] {
        line.split(separator: " ").map(String.init).filter { $0.hasPrefix("http://") || $0.hasPrefix("https://") }
    }

    static func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
