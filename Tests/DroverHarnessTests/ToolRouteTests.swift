import DroverCore
import Foundation
import Testing
@testable import DroverHarness

/// Who runs each call is the planner's decision, from the wake's catalog of tools: the runner
/// performs the route.
@Suite struct ToolRouteTests {
    @Test func eachCallIsRoutedByWhatTheWakeOffered() {
        var b = TurnPlannerTests.LogBuilder()
        b.user("go"); b.request(); b.answered()
        for (id, name) in [("t1", "bash"), ("t2", "web_fetch"), ("t3", "search_docs"), ("t4", SessionThreads.toolName),
                           ("t5", SessionThreads.messageToolName), ("t6", WorkflowPlan.startToolName), ("t7", WorkflowPlan.stopToolName),
                           ("t8", Advisor.toolName)] {
            b.add(.agentToolUse, ["id": .string(id), "name": .string(name), "input": [:]])
        }
        var planner = TurnPlannerTests.planner
        planner.tools = ToolCatalog(harness: ["web_fetch"], mcp: ["search_docs"], threads: true, workflows: true, advisor: true)
        guard case .runTools(let calls) = planner.next(b.log) else { Issue.record("no tools to run"); return }
        #expect(calls.map(\.route) == [.sandbox, .harness, .mcp, .startThread, .messageThread, .startWorkflow, .stopWorkflow, .advisor])
        // What the wake did not offer (a thread's own wake offers no create_thread) is the sandbox's,
        // which refuses a tool it does not know.
        guard case .runTools(let plain) = TurnPlannerTests.planner.next(b.log) else { Issue.record("no tools to run"); return }
        #expect(plain.allSatisfy { $0.route == .sandbox })
    }
}
