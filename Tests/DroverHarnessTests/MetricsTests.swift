import DroverCore
import DroverSandbox
import DroverTestSupport
import Foundation
import Testing

@Suite(.serialized) struct MetricsTests {
    @Test func thePoolServesMetricsHealthAndReadiness() async throws {
        let pool = try await RunningPool.start(["--metrics-listen", "127.0.0.1:0"])
        let address = try #require(try await pool.daemon.waitForLog("metrics listening")["address"]?.stringValue)
        let client = try await pool.client()
        let sandbox = try await client.provision()
        _ = try await client.execute(sandbox: sandbox, callID: "a", name: "bash", input: ["command": "true"])
        _ = try await client.execute(sandbox: sandbox, callID: "a", name: "bash", input: ["command": "true"])
        _ = try? await client.request("frobnicate")
        let (status, text) = try await PrometheusText.get(address, "/metrics")
        #expect(status == 200)
        let metrics = try PrometheusText(text)
        #expect(metrics.value("drover_sandboxes_provisioned_total") == 1)
        #expect(metrics.value("drover_sandboxes_live") == 1)
        #expect(metrics.value("drover_tool_calls_total", ["tool": "bash", "outcome": "ok"]) == 1)
        #expect(metrics.value("drover_tool_calls_total", ["tool": "bash", "outcome": "repeated"]) == 1)
        #expect(metrics.value("drover_protocol_errors_total", ["code": "unknown_op"]) == 1)
        #expect(metrics.value("drover_pool_requests_total", ["op": "execute"]) == 2)
        #expect(metrics.value("drover_tool_call_seconds_count", ["tool": "bash"]) == 1)
        #expect(metrics.types["drover_tool_call_seconds"] == "histogram")
        #expect(try await PrometheusText.get(address, "/healthz").0 == 200)
        #expect(try await PrometheusText.get(address, "/readyz").0 == 200)
        client.close()
        #expect(await pool.stop() == 0)
    }

    @Test func theHarnessServesMetricsOfWhatItDid() async throws {
        let script: JSONValue = ["turns": [
            ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo hi"]]]], ["content": [["type": "text", "text": "done"]]],
        ]]
        let cluster = try await HarnessCluster.start(script: script, harnessArgs: ["--metrics-listen", "127.0.0.1:0"])
        do {
            let harness = try #require(cluster.harnessProcesses.first)
            let address = try #require(try await harness.waitForLog("metrics listening")["address"]?.stringValue)
            let session = try await cluster.session("measure me")
            _ = try await cluster.waitForIdle(session)
            // The idle event is visible once its transaction commits; the harness counts the
            // release, and drops the runner, a moment after that commit returns to it.
            var metrics = try PrometheusText(try await PrometheusText.get(address, "/metrics").1)
            let deadline = ContinuousClock.now + .seconds(5)
            while metrics.value("drover_sessions_active") != 0 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                metrics = try PrometheusText(try await PrometheusText.get(address, "/metrics").1)
            }
            #expect(metrics.value("drover_sessions_claimed_total") == 1)
            #expect(metrics.value("drover_sessions_released_total", ["stop_reason": "end_turn"]) == 1)
            #expect(metrics.value("drover_model_requests_total", ["outcome": "ok"]) == 2)
            #expect((metrics.value("drover_model_tokens_total", ["kind": "input"]) ?? 0) > 0)
            #expect(metrics.value("drover_time_to_first_token_seconds_count") == 2)
            #expect(metrics.value("drover_tool_calls_total", ["tool": "bash", "outcome": "ok"]) == 1)
            #expect(metrics.value("drover_sessions_active") == 0)
            #expect((metrics.value("drover_lease_heartbeats_total", ["outcome": "failed"]) ?? 0) == 0)
            #expect(try await PrometheusText.get(address, "/readyz").0 == 200)
            #expect(try await PrometheusText.get(address, "/healthz").1 == "ok\n")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}
