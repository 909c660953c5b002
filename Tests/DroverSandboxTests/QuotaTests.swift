import DroverCore
import DroverIO
import DroverTestSupport
@testable import DroverSandbox
import Foundation
import Testing

/// Limits hold per sandbox, not per process, over TCP against a real daemon with every layer on
/// (bubblewrap, the sandbox's control group, its disk quota and the seccomp filter).
@Suite struct QuotaTests {
    func bash(_ client: PoolClient, _ sandbox: String, _ command: String, timeout: Int = 60_000) async throws -> JSONValue {
        try await client.execute(
            sandbox: sandbox, callID: UUID().uuidString, name: "bash", input: ["command": .string(command), "timeout": .number(Double(timeout))])
    }

    @Test func diskBoundsWorkspaceAndTmpTogether() async throws {
        let pool = try await RunningPool.start(["--warm", "1"])
        let client = try await pool.client()
        let sandbox = try await client.provision(resources: ["disk_mb": 256])
        let result = try await bash(client, sandbox, """
            dd if=/dev/zero of=/workspace/big bs=1M count=200 status=none; echo "workspace $?"
            dd if=/dev/zero of=/tmp/big bs=1M count=200 status=none; echo "tmp $?"
            echo "bytes $(( $(stat -c %s /workspace/big) + $(stat -c %s /tmp/big) ))"
            """)
        let output = result.output
        #expect(output.contains("workspace 0") && output.contains("No space left on device") && !output.contains("tmp 0"), "\(output)")
        let bytes = Int(output.split(separator: "\n").first { $0.hasPrefix("bytes ") }?.dropFirst(6) ?? "") ?? 0
        #expect(bytes > 240 << 20 && bytes <= 256 << 20, "\(bytes) bytes written in all")
        // /tmp persists between calls (it is part of the sandbox), and the quota is per sandbox.
        #expect(try await bash(client, sandbox, "ls /tmp").output == "big\n")
        let other = try await client.provision(resources: ["disk_mb": 256])
        #expect(try await bash(client, other, "dd if=/dev/zero of=/tmp/x bs=1M count=100 status=none && echo ok").output == "ok\n")
        client.close()
        #expect(await pool.stop() == 0)
    }

    /// Three 700 MiB processes at once: a 1024 MiB sandbox cannot hold them (RLIMIT_AS would
    /// have let each have its 1024); a 3072 MiB one can, so it is the limit that acts.
    @Test func memoryBoundsTheSandboxAsAWhole() async throws {
        let pool = try await RunningPool.start(["--warm", "0"])
        let client = try await pool.client()
        let threeAtOnce = """
            for i in 1 2 3; do python3 -c "import time; b = b'x' * (700 << 20); time.sleep(3)" & done
            for i in 1 2 3; do wait -n; echo "exit $?"; done
            """
        let small = try await client.provision(resources: ["memory_mb": 1024])
        let limited = try await bash(client, small, threeAtOnce)
        let survivors = limited.output.components(separatedBy: "exit 0").count - 1
        #expect(survivors <= 1 && limited.output.contains("exit 137"), "\(limited.output)")
        #expect(limited.output.contains("the sandbox ran out of memory (memory_mb 1024)"), "the result says why")
        let large = try await client.provision(resources: ["memory_mb": 3072])
        let roomy = try await bash(client, large, threeAtOnce)
        #expect(roomy.output.components(separatedBy: "exit 0").count - 1 == 3, "\(roomy.output)")
        client.close()
        #expect(await pool.stop() == 0)
    }

    @Test func processesBoundTheSandbox() async throws {
        let pool = try await RunningPool.start(["--warm", "0"])
        let client = try await pool.client()
        let sandbox = try await client.provision(resources: ["processes": 20])
        // Forks until the kernel refuses (no retries, unlike bash), children alive meanwhile.
        let forks = """
            python3 -c '
            import os, time
            made = 0
            for _ in range(60):
                try:
                    pid = os.fork()
                except OSError:
                    break
                if pid == 0:
                    time.sleep(3)
                    os._exit(0)
                made += 1
            print(made)'
            """
        let result = try await bash(client, sandbox, forks)
        let count = Int(result.output.split(separator: "\n").last ?? "") ?? 0
        #expect(count >= 10 && count < 20, "\(result.output)")
        client.close()
        #expect(await pool.stop() == 0)
    }

    /// Without control groups the pool says so and refuses limits it cannot keep, unless told to
    /// accept per-process ones.
    @Test func limitsThatCannotBeEnforcedAreRefusedUnlessAllowed() async throws {
        let pool = try await RunningPool.start(["--warm", "0", "--no-cgroups", "--metrics-listen", "127.0.0.1:0"])
        let client = try await pool.client()
        for resources: JSONValue in [["memory_mb": 512], ["processes": 10]] {
            do {
                _ = try await client.provision(resources: resources)
                Issue.record("\(resources) accepted without control groups")
            } catch let failure as PoolProtocol.Failure {
                #expect(failure.code == .limitUnenforceable, "\(failure)")
            }
        }
        let plain = try await client.provision(resources: ["timeout_s": 10])
        #expect(try await bash(client, plain, "echo ok").output == "ok\n")
        let enforcement = try await client.request("stats")["enforcement"]
        #expect(enforcement?["cgroups"] == "none" && enforcement?["memory"] == "refused")
        let metrics = try #require(try await pool.daemon.waitForLog("metrics listening")["address"]?.stringValue)
        let (status, body) = try await PrometheusText.get(metrics, "/readyz")
        let details = try JSONValue.parse(body)
        #expect(status == 200 && details["ready"] == true && details["enforcement"]?["memory"] == "refused", "\(body)")
        client.close()
        #expect(await pool.stop() == 0)

        let lenient = try await RunningPool.start(["--warm", "0", "--no-cgroups", "--allow-unenforced-limits"])
        let second = try await lenient.client()
        _ = try await second.provision(resources: ["memory_mb": 512])
        #expect(try await second.request("stats")["enforcement"]?["memory"] == "per_process")
        second.close()
        #expect(await lenient.stop() == 0)
    }

    /// The program calls each denied syscall with arguments that would otherwise fail some other
    /// way (or succeed) and prints the errno.
    static let probe = #"""
        #include <errno.h>
        #include <stdio.h>
        #include <sys/syscall.h>
        #include <unistd.h>
        int main(void) {
            struct { const char *name; long nr; long arg; } calls[] = {
                {"ptrace", SYS_ptrace, 0}, {"process_vm_readv", SYS_process_vm_readv, 1},
                {"process_vm_writev", SYS_process_vm_writev, 1}, {"bpf", SYS_bpf, 0},
                {"perf_event_open", SYS_perf_event_open, 0}, {"keyctl", SYS_keyctl, 0},
                {"add_key", SYS_add_key, 0}, {"request_key", SYS_request_key, 0}, {"mount", SYS_mount, 0},
                {"umount2", SYS_umount2, 0}, {"pivot_root", SYS_pivot_root, 0}, {"unshare", SYS_unshare, 0},
                {"setns", SYS_setns, -1}, {"kexec_load", SYS_kexec_load, 0}, {"init_module", SYS_init_module, 0},
                {"finit_module", SYS_finit_module, -1}, {"userfaultfd", SYS_userfaultfd, 0},
                {"io_uring_setup", SYS_io_uring_setup, 1}, {"personality", SYS_personality, 0x0008},
                {"open_by_handle_at", SYS_open_by_handle_at, -1},
            };
            for (unsigned i = 0; i < sizeof calls / sizeof calls[0]; i++) {
                errno = 0;
                long r = syscall(calls[i].nr, calls[i].arg, 0, 0, 0, 0, 0);
                printf("%s %d\n", calls[i].name, r < 0 ? errno : 0);
            }
            return 0;
        }
        """#

    static func errnos(_ output: String) -> [String: Int] {
        Dictionary(output.split(separator: "\n").compactMap { line -> (String, Int)? in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let code = Int(parts[1]) else { return nil }
            return (String(parts[0]), code)
        }, uniquingKeysWith: { a, _ in a })
    }

    @Test func deniedSyscallsFailWithEPERMAndOrdinaryToolsStillWork() async throws {
        let compileAndRun = "cat > probe.c <<'EOF'\n\(Self.probe)\nEOF\ncc -o probe probe.c && ./probe"
        let pool = try await RunningPool.start(["--warm", "0"])
        let client = try await pool.client()
        let sandbox = try await client.provision()
        let filtered = Self.errnos(try await bash(client, sandbox, compileAndRun).output)
        #expect(filtered.count == 20, "\(filtered)")
        for (name, code) in filtered { #expect(code == Int(EPERM), "\(name) gave errno \(code)") }
        // No user namespace of the sandbox's own: refused by the filter here, by bubblewrap's
        // --disable-userns without it (below).
        let userns = "unshare -U true 2>/dev/null && echo made || echo refused"
        #expect(try await bash(client, sandbox, userns).output == "refused\n")

        let tools = try await bash(client, sandbox, """
            set -e
            git init -q repo && cd repo && echo hi > a && git add a
            git -c user.email=a@example.com -c user.name=A commit -q -m first && git log --oneline | wc -l
            python3 -c 'import json, sqlite3, hashlib; print(json.dumps([sum(range(10))]))'
            python3 -m venv --without-pip /tmp/venv && /tmp/venv/bin/python -c 'import sys; print(sys.prefix)'
            """)
        #expect(tools.exitCode == 0 && tools.output == "1\n[45]\n/tmp/venv\n", "\(tools.output)")
        client.close()
        #expect(await pool.stop() == 0)

        // The same program without the filter: the calls that an unprivileged process may make
        // succeed or fail otherwise, so EPERM above was the filter's.
        let open = try await RunningPool.start(["--warm", "0", "--no-seccomp"])
        let second = try await open.client()
        let unfiltered = Self.errnos(try await bash(second, try await second.provision(), compileAndRun).output)
        for name in ["ptrace", "personality", "keyctl", "io_uring_setup", "process_vm_readv"] {
            #expect(unfiltered[name] != nil && unfiltered[name] != Int(EPERM), "\(name) without the filter: \(unfiltered[name] ?? -1)")
        }
        #expect(try await bash(second, try await second.provision(), userns).output == "refused\n")
        second.close()
        #expect(await open.stop() == 0)
    }
}

/// Smaller promises of the pool, each once broken.
@Suite struct PoolEdgeTests {
    /// A pool killed with SIGKILL leaves its control groups; the next pool on the host removes
    /// them (its pid no longer runs), and leaves a live pool's alone.
    @Test func groupsOfDeadPoolsAreSweptAtStart() async throws {
        let layout = CgroupLayout.plan(
            mountinfo: try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
            selfCgroup: try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) {
                try? String(contentsOfFile: $0 + "/cgroup.controllers", encoding: .utf8)
            }
        guard case .v1(let memory, _) = layout else { return }  // this build machine's kind; v2 sweeps the same way
        let live = try await RunningPool.start(["--warm", "0"])
        let stale = memory + "/drover-pool_gone_4194300_dead"
        try FileManager.default.createDirectory(atPath: stale + "/sb_left", withIntermediateDirectories: true)
        let livePool = try #require(try await live.daemon.waitForLog("listening")["pool"]?.stringValue)
        let next = try await RunningPool.start(["--warm", "0"])
        #expect(!FileManager.default.fileExists(atPath: stale), "the dead pool's groups were removed")
        #expect(FileManager.default.fileExists(atPath: memory + "/drover-" + livePool), "a live pool's groups stay")
        #expect(await next.stop() == 0)
        #expect(await live.stop() == 0)
    }

    /// Two pools on one host: disjoint uid ranges (they once came from the pid modulo 64).
    @Test func poolsOnOneHostTakeDisjointUidRanges() async throws {
        let first = try await RunningPool.start(["--warm", "0"])
        let second = try await RunningPool.start(["--warm", "0"])
        let slots = try await [first, second].asyncMap { try await $0.daemon.waitForLog("listening")["uid_slot"]?.intValue }
        #expect(slots[0] != nil && slots[1] != nil && slots[0] != slots[1], "\(slots)")
        #expect(await first.stop() == 0)
        #expect(await second.stop() == 0)
    }

    /// No reply can outgrow what a client reads (64 MiB; a longer one was once dropped and its
    /// request hung): output kept per call is capped so that even its worst rendering fits.
    @Test func outputBeyondWhatAReplyCanCarryIsRefused() async throws {
        try await RunningPool.withSandbox(["--warm", "0"]) { _, client, _ in
            do {
                _ = try await client.provision(resources: ["output_bytes": 70_000_000])
                Issue.record("output_bytes beyond the cap was accepted")
            } catch let failure as PoolProtocol.Failure {
                #expect(failure.code == .badRequest && failure.message.contains("output_bytes"), "\(failure)")
            }
            #expect(6 * SandboxResources.maxOutputBytes + (SandboxResources.maxOutputBytes * 4 / 3 + 4) + 4096 < PoolProtocol.maxReplyLength)
            #expect(try await client.request("ping")["pong"] == true)
        }
    }
}
