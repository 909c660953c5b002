import DroverCore
import DroverSandbox
import DroverTestSupport
import Foundation
import Testing

@testable import DroverSandbox

/// Workspaces a SIGKILLed pool left mounted are taken back by the next pool that starts.
@Suite(.serialized) struct LeakedWorkspacesTests {
    @Test func findsWorkspaceMountsAndTheirPoolsSlots() {
        let text = """
            22 27 0:21 / /proc rw,relatime - proc proc rw
            59 27 0:65 / /tmp/drover-pool-ab/ws_4bd8 rw,nosuid,nodev,relatime - tmpfs tmpfs rw,size=1048576k,mode=700,uid=260002,gid=260002
            60 27 0:66 / /tmp/drover-pool-ab/ws_beef rw,nosuid,nodev - tmpfs tmpfs rw,size=1024k,mode=700,uid=200001,gid=200001
            61 27 0:67 / /tmp/other rw - tmpfs tmpfs rw,size=1024k,uid=200001
            62 27 0:68 / /tmp/my\\040dir/ws_1 rw - tmpfs tmpfs rw,uid=150000
            63 27 0:69 / /srv/x/ws_2 rw - ext4 /dev/sda1 rw
            64 27 0:70 / /tmp/drover-pool-cd/workspaces rw,nosuid,nodev - tmpfs drover-workspaces-260000 rw,size=16384k,mode=711
            65 64 0:71 / /tmp/drover-pool-cd/workspaces/ws_9 rw,nosuid,nodev - tmpfs tmpfs rw,size=1024k,mode=700,uid=260005,gid=260005
            66 27 0:72 / /tmp/drover-pool-ef/workspaces rw - tmpfs drover-workspaces-9 rw
            """
        let found = LeakedWorkspaces.find(mountinfo: text, base: 200_000, size: 60_000, slots: 64)
        // Workspaces first, then the mount they sit under.
        #expect(found == [
            LeakedWorkspaces.Mount(path: "/tmp/drover-pool-cd/workspaces/ws_9", slot: 1),
            LeakedWorkspaces.Mount(path: "/tmp/drover-pool-cd/workspaces", slot: 1),
            LeakedWorkspaces.Mount(path: "/tmp/drover-pool-ab/ws_4bd8", slot: 1),
            LeakedWorkspaces.Mount(path: "/tmp/drover-pool-ab/ws_beef", slot: 0),
        ])
    }

    @Test func aKilledPoolsWorkspacesAreUnmountedByTheNextPool() async throws {
        guard geteuid() == 0 else { return }
        let killed = try await RunningPool.start(["--warm", "2"])
        let client = try await killed.client()
        let sandbox = try await client.provision()
        _ = try await client.execute(sandbox: sandbox, callID: "1", name: "bash", input: ["command": "echo x > kept.txt"])
        client.close()
        func mounted() -> Int {
            return LeakedWorkspaces.mountinfo().split(separator: "\n").filter { $0.contains(killed.workspacePrefix) }.count
        }
        #expect(mounted() >= 1, "a quota'd workspace is a tmpfs mount")
        killed.daemon.signal(SIGKILL)
        _ = await killed.daemon.wait(timeout: 10)
        // SIGKILL leaves them mounted, but not for long enough to check: as tests run side by side,
        // any pool starting from this moment on may take them back (CI once saw that happen between
        // the kill and a look at mountinfo). The next pool to start takes them back, this one or another.
        let next = try await RunningPool.start()
        let deadline = ContinuousClock.now + .seconds(20)
        while mounted() > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(mounted() == 0)
        #expect(await next.stop() == 0)
    }
}
