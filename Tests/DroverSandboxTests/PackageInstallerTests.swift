import DroverCore
@testable import DroverSandbox
import Testing

struct PackageInstallerTests {
    @Test func theMirrorsAreWhatTheInstallAndAllowPackageManagersReach() {
        var installer = PackageInstaller()
        #expect(installer.hosts == NetworkPolicy.packageManagerHosts)
        installer.pipIndexURL = "http://127.0.0.2:8080/simple"
        installer.npmRegistry = "https://npm.mirror.test:443/"
        installer.aptSource = "deb [trusted=yes] http://apt.mirror.test/debian ./"
        #expect(Array(installer.hosts.suffix(3)) == ["127.0.0.2:8080", "npm.mirror.test", "apt.mirror.test"])
        let policy = NetworkPolicy(environmentConfig: ["networking": ["type": "limited", "allow_package_managers": true]], packageHosts: installer.hosts)
        #expect(policy.allows(host: "127.0.0.2", port: 8080) && !policy.allows(host: "127.0.0.2", port: 8081) && policy.allows(host: "pypi.org", port: 443))
    }

    /// The same packages from the same mirrors share a layer; any difference is another layer.
    /// Sandboxes see `/etc` as one read-only mount, where bubblewrap cannot make a mountpoint:
    /// every part of the host's `/etc` a build binds must have its folder in the pool's copy.
    @Test func whatABuildBindsOfEtcHasAMountpointInTheSandboxesEtc() throws {
        let build = PackageLayer(path: "/layers/x", packages: try PackageSet(json: ["apt": ["jq"]]), writable: true)
        let etc = build.binds.filter { $0.hasPrefix("/etc/") }
        #expect(!etc.isEmpty)
        for path in etc { #expect(Isolation.etcMountpoints.contains(String(path.dropFirst(5).split(separator: "/")[0])), "\(path)") }
    }

    @Test func aLayerIsNamedByItsPackagesAndTheirSources() throws {
        let installer = PackageInstaller()
        let one = try PackageSet(json: ["pip": ["a", "b"]])
        #expect(installer.key(one) == installer.key(try PackageSet(json: ["type": "packages", "pip": ["a", "b"], "npm": []])))
        #expect(installer.key(one) != installer.key(try PackageSet(json: ["pip": ["b", "a"]])))
        #expect(installer.key(one) != installer.key(try PackageSet(json: ["npm": ["a", "b"]])))
        #expect(installer.key(one) != installer.key(try PackageSet(json: ["pip": ["ab"]])))
        var mirrored = installer
        mirrored.pipIndexURL = "http://127.0.0.2/simple"
        #expect(installer.key(one) != mirrored.key(one) && installer.key(one).count == 64)
    }

    @Test func theScriptQuotesEveryNameAndTrustsOnlyAPlainHTTPMirror() throws {
        var installer = PackageInstaller()
        let packages = try PackageSet(json: ["pip": ["requests>=2"], "apt": ["ripgrep"]])
        let script = installer.script(packages)
        #expect(script.contains("--target /opt/drover/packages/python --index-url 'https://pypi.org/simple' 'requests>=2'"))
        #expect(!script.contains("--trusted-host") && !script.contains("Dir::Etc::SourceList"))
        // apt before pip, as the SDK lists the managers.
        let apt = try #require(script.range(of: "install --download-only 'ripgrep'")), pip = try #require(script.range(of: "pip install"))
        #expect(apt.lowerBound < pip.lowerBound)
        installer.pipIndexURL = "http://127.0.0.2:8080/simple"
        installer.aptSource = "deb [trusted=yes] http://127.0.0.2:8080/apt ./"
        let mirrored = installer.script(packages)
        #expect(mirrored.contains("--trusted-host '127.0.0.2:8080'") && mirrored.contains("'Dir::Etc::SourceList=/tmp/apt/sources.list'"))
    }

    @Test func aSandboxSeesOnlyTheManagersItsLayerHas() throws {
        let environment = Dictionary(uniqueKeysWithValues: PackageInstaller.environment(try PackageSet(json: ["pip": ["a"], "npm": ["b"]])))
        #expect(environment["PATH"] == "/opt/drover/packages/npm/node_modules/.bin:/opt/drover/packages/python/bin:/usr/local/bin:/usr/bin:/bin")
        #expect(environment["PYTHONPATH"] == "/opt/drover/packages/python" && environment["NODE_PATH"] == "/opt/drover/packages/npm/node_modules")
        #expect(environment["LD_LIBRARY_PATH"] == nil && environment["GEM_PATH"] == nil)
    }
}
