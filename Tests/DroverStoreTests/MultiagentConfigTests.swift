import DroverCore
import DroverStore
import Testing

/// `multiagent` as the SDK's params define it: references resolved, defaults filled, an update
/// merged into the stored configuration level by level; what the SDK refuses, refused. Pure.
struct MultiagentConfigTests {
    let me = (id: "agent_me", version: 3)
    let agents: MultiagentConfig.Agents = [
        "agent_a": [1: .init(archived: false, hasMultiagent: false), 2: .init(archived: false, hasMultiagent: false)],
        "agent_old": [1: .init(archived: true, hasMultiagent: false)],
        "agent_boss": [1: .init(archived: false, hasMultiagent: true)],
    ]

    func resolve(_ value: JSONValue, stored: JSONValue? = nil) throws -> JSONValue? {
        try MultiagentConfig.resolve(value, stored: stored, me: me, agents: agents)
    }

    @Test func aCoordinatorsRosterIsResolvedToVersions() throws {
        let resolved = try resolve(["type": "coordinator", "agents": ["agent_a", ["type": "self"], ["type": "advisor", "model": "claude-opus-4"]]])
        #expect(resolved == ["type": "coordinator", "agents": [
            ["type": "agent", "id": "agent_a", "version": 2], ["type": "agent", "id": "agent_me", "version": 3], ["type": "advisor", "model": "claude-opus-4"],
        ]])
        #expect(MultiagentConfig.referencedIDs(["type": "coordinator", "agents": ["agent_a", ["type": "agent", "id": "agent_b"], ["type": "self"]]]) == ["agent_a", "agent_b"])
    }

    @Test func theNewFormatGetsItsDefaultsAndAnUpdateMergesLevelByLevel() throws {
        let created = try #require(try resolve(["type": "multiagent_20261001"]))
        let enabled: JSONValue = ["type": "enabled", "inline_agents": ["type": "enabled"], "predefined_agents": []]
        #expect(created == ["type": "multiagent_20261001", "advisor": ["type": "disabled"], "subagents": enabled, "workflows": enabled])
        // An omitted key keeps its stored value; an object of the same type is merged into it.
        let first = try #require(try resolve(["type": "multiagent_20261001", "advisor": ["type": "enabled", "model": "claude-opus-4"],
                                              "subagents": ["type": "enabled", "predefined_agents": ["agent_a"]]], stored: created))
        let merged = try #require(try resolve(["type": "multiagent_20261001", "subagents": ["type": "enabled", "inline_agents": ["type": "disabled"]],
                                               "workflows": ["type": "disabled"]], stored: first))
        #expect(merged["advisor"] == ["type": "enabled", "model": "claude-opus-4"])
        #expect(merged["subagents"] == ["type": "enabled", "inline_agents": ["type": "disabled"], "predefined_agents": [["type": "agent", "id": "agent_a", "version": 2]]])
        #expect(merged["workflows"] == ["type": "disabled"])
        // null takes the default, also for a member that was disabled; another type replaces.
        let reset = try #require(try resolve(["type": "multiagent_20261001", "workflows": .null, "advisor": ["type": "disabled"]], stored: merged))
        #expect(reset["workflows"] == enabled && reset["advisor"] == ["type": "disabled"] && reset["subagents"] == merged["subagents"])
        // A coordinator replaces the stored configuration; null removes it.
        #expect(try resolve(["type": "coordinator", "agents": ["agent_a"]], stored: merged)?["type"] == "coordinator")
        #expect(try resolve(.null, stored: merged) == nil)
    }

    @Test func whatTheSDKRefusesIsRefused() {
        let refused: [JSONValue] = [
            ["type": "coordinator", "agents": []],
            ["type": "coordinator", "agents": .array(Array(repeating: "agent_a", count: 21))],
            ["type": "coordinator", "agents": ["agent_a", "agent_a"]],
            ["type": "coordinator", "agents": [["type": "self"], ["type": "self"]]],
            ["type": "coordinator", "agents": [["type": "advisor", "model": "m"], ["type": "advisor", "model": "n"]]],
            ["type": "coordinator", "agents": ["agent_nobody"]],
            ["type": "coordinator", "agents": ["agent_old"]],
            ["type": "coordinator", "agents": ["agent_boss"]],
            ["type": "coordinator", "agents": [["type": "agent", "id": "agent_a", "version": 9]]],
            ["type": "coordinator", "agents": ["agent_me"]],
            ["type": "multiagent_20261001", "advisor": ["type": "enabled"]],
            ["type": "multiagent_20261001", "subagents": ["type": "enabled", "inline_agents": ["type": "disabled"]]],
            ["type": "multiagent_20261001", "subagents": ["inline_agents": ["type": "enabled"]]],
            ["type": "multiagent_20261001", "workflows": ["type": "enabled", "predefined_agents": [["type": "advisor", "model": "m"]]]],
            ["type": "multiagent_20261001", "threads": 3],
            ["type": "swarm"], "multiagent_20261001",
        ]
        for value in refused {
            #expect(throws: DroverError.self, "\(value.text)") { try resolve(value) }
        }
    }
}
