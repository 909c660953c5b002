import DroverCore
import DroverIO
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// The official `anthropic` SDK (PyPI, pinned in scripts/deps.sh) against a real `drover api`,
/// harness, sandbox pool and the strict scripted model: the flows a team moving from the hosted
/// Managed Agents runs, with base_url changed (Tests/sdk/managed_agents_sdk.py).
@Suite(.serialized) struct SDKTests {
    static let script: JSONValue = [
        "turns": [
            ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo hi"]]]],
            ["content": [["type": "text", "text": "Done."]]],
        ],
        "variants": [
            [
                "match": "slow please",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": ["command": "sleep 30"]]]],
                    ["content": [["type": "text", "text": "Stopped."]]],
                ],
            ],
            [
                "match": "use the lookup",
                "turns": [
                    ["content": [["type": "tool_use", "name": "lookup", "input": ["q": "drover"]]]],
                    ["content": [["type": "text", "text": "Found it."]]],
                ],
            ],
            [
                "match": "copy the input",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": [
                        "command": "cp /mnt/data/input.bin /mnt/session/outputs/copy.bin && echo copied > /mnt/session/outputs/note.txt && ls -l /mnt/data",
                    ]]]],
                    ["content": [["type": "text", "text": "Copied."]]],
                    // The conversation's second wake ("read the second").
                    ["content": [["type": "tool_use", "name": "bash", "input": [
                        "command": "cat /mnt/data/second.txt; test -e /mnt/data/input.bin && echo still-there || echo input-gone",
                    ]]]],
                    ["content": [["type": "text", "text": "Read."]]],
                ],
            ],
            [
                "match": "use the memory",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": [
                        "command": """
                            cat /mnt/memory/team-notes/todo.md && echo learned >> /mnt/memory/team-notes/todo.md \\
                              && mkdir -p /mnt/memory/team-notes/people && echo likes-tea > /mnt/memory/team-notes/people/ana.md \\
                              && rm /mnt/memory/team-notes/old.md && cat /mnt/memory/house-rules/rules.md; echo no > /mnt/memory/house-rules/rules.md
                            """,
                    ]]]],
                    ["content": [["type": "text", "text": "Remembered."]]],
                ],
            ],
            [
                "match": "use the skill",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": [
                        "command": "cat /mnt/skills/greeter/SKILL.md && sh /mnt/skills/greeter/scripts/hello.sh Ada; echo x > /mnt/skills/greeter/SKILL.md",
                    ]]]],
                    ["content": [["type": "text", "text": "Greeted."]]],
                ],
            ],
            [
                "match": "remember then wait",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo half-done > /mnt/memory/team-notes/wip.md; sleep 30"]]]],
                    ["content": [["type": "text", "text": "Waited."]]],
                ],
            ],
            [
                "match": "recall the memory",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": [
                        "command": "cat /mnt/memory/team-notes/todo.md /mnt/memory/team-notes/people/ana.md",
                    ]]]],
                    ["content": [["type": "text", "text": "Recalled."]]],
                ],
            ],
            // Dreams (Tests/sdk/dreams.py): the create_new dream writes the colours its
            // transcripts tell into the copy; the update_existing one writes, then is canceled.
            [
                "match": "/mnt/memory/notes-dream.",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": [
                        "command": """
                            grep -ho 'colour is [a-z]*' /mnt/session/transcripts/*.md | sort -u > /mnt/memory/notes-dream/lessons.md \
                              && cat /mnt/memory/notes-dream/lessons.md
                            """,
                    ]]]],
                    ["content": [["type": "text", "text": "Reorganised."]]],
                ],
            ],
            [
                "match": "/mnt/memory/notes.",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo half > /mnt/memory/notes/half.md; sleep 30"]]]],
                    ["content": [["type": "text", "text": "Stopped."]]],
                ],
            ],
            [
                "match": "use the packages",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": [
                        "command": """
                            python3 -c 'import drover_demo; print(drover_demo.GREETING)' && drover-hello \
                              && node -e 'console.log(require("drover-left-pad")("x", 3))'
                            """,
                    ]]]],
                    ["content": [["type": "text", "text": "Used them."]]],
                ],
            ],
            [
                "match": "write slowly",
                "turns": [
                    ["thinking": "Slowly, then.", "chunk_delay_ms": 150,
                     "content": [["type": "text", "text": "Every word of this arrives in three parts, a little apart."]]],
                ],
            ],
            [
                "match": "ask first",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo confirmed"]]]],
                    ["content": [["type": "text", "text": "Ran it."]]],
                ],
            ],
        ],
    ]

    @Test func theOfficialSDKWorksAgainstDrover() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script) { cluster, api in
            let keyA = try await api.key(org: "team-a")
            let keyB = try await api.key(org: "team-b")
            try await APIRig.python(
                "Tests/sdk/managed_agents_sdk.py",
                environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY_A": keyA, "DROVER_KEY_B": keyB])
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
        }
    }

    /// Issue #23, item 2: an environment's pip, apt and npm packages, from a registry stand-in on
    /// loopback that the pool names as its mirrors, are installed once into a layer every session
    /// of the environment mounts; a missing one is a readable session.error (Tests/sdk/packages.py).
    @Test func environmentPackagesAreInstalledOnceAndAMissingOneIsReported() async throws {
        guard geteuid() == 0 else { return }
        let index = try AnnouncingProcess(APIRig.pythonPath, [TestDatabase.packageRoot.appendingPathComponent("Tests/sdk/package_index.py").path, "127.0.0.2"])
        defer { index.stop() }
        let address = try #require(index.firstLine.split(separator: " ").last.map(String.init), "the registry stand-in did not start")
        let mirrors = [
            "--allow-internal", "127.0.0.2", "--pip-index-url", "http://\(address)/simple", "--npm-registry", "http://\(address)/npm",
            "--apt-source", "deb [trusted=yes] http://\(address)/apt ./",
        ]
        try await APIRig.withClusterAndAPI(script: Self.script, poolArgs: mirrors) { cluster, api in
            let key = try await api.key(org: "packages")
            let output = try await APIRig.python("Tests/sdk/packages.py", environment: [
                "DROVER_API_URL": "http://\(api.address)", "DROVER_KEY": key, "INDEX_URL": "http://\(address)",
            ])
            for line in output.split(separator: "\n") where line.hasPrefix("measured") { print("packages:", line) }
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
            // One install per package set, logged by the pool with its layer; later provisions reused it.
            #expect(cluster.pool.daemon.log.components(separatedBy: "\"packages installed\"").count == 3, "\(cluster.pool.daemon.log)")
        }
    }

    /// Issue #23: a stream with `event_deltas` gets previews of the agent's message while the
    /// model writes it, and a stream without gets none (Tests/sdk/event_deltas.py).
    @Test func aStreamWithEventDeltasSeesTheMessageBeingWritten() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script) { cluster, api in
            let key = try await api.key(org: "previews")
            let output = try await APIRig.python("Tests/sdk/event_deltas.py", environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY_A": key])
            for line in output.split(separator: "\n") where line.contains("deltas preview") { print("event_deltas:", line) }
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
        }
    }

    /// Issue #23, item 3: an uploaded file is mounted read-only in the session's sandbox, what the
    /// agent leaves in /mnt/session/outputs comes back as the session's files, byte for byte, and
    /// resources added and removed mid-session take effect at the next wake (Tests/sdk/session_files.py).
    @Test func uploadedFilesAreMountedAndOutputsDownloaded() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script) { cluster, api in
            let key = try await api.key(org: "files")
            try await APIRig.python("Tests/sdk/session_files.py", environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY_A": key])
            try await RenderAgreement.check(cluster.sql)
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
        }
    }

    /// Issue #24, item 2: memory stores attached to a session are mounted in its sandbox (a
    /// read-only one cannot be written), described in the system prompt, and what the agent
    /// changes becomes versions whose actor is the session (Tests/sdk/session_memory.py).
    @Test func attachedMemoryStoresAreMountedAndWrittenBack() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script) { cluster, api in
            let key = try await api.key(org: "memory")
            let environment = ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY_A": key]
            let first = try await APIRig.python("Tests/sdk/session_memory.py", ["first"], environment: environment)
            let state = try #require(first.split(separator: "\n").first { $0.hasPrefix("STATE ") }?.dropFirst("STATE ".count))
            // Session B runs later, on another harness: the first one is stopped, a new one started,
            // and another session's turns pass in between.
            let before = try #require(cluster.harnessProcesses.first)
            before.signal(SIGTERM)
            #expect(await before.wait(timeout: 20) == 0)
            _ = try await cluster.startHarness()
            let between = try await cluster.session("busy work in between")
            _ = try await cluster.waitForIdle(between)
            try await APIRig.python("Tests/sdk/session_memory.py", ["later", String(state)], environment: environment)
            let checked = try await RenderAgreement.check(cluster.sql)
            #expect(checked["memory", default: 0] > 0 && checked["memory_version", default: 0] > 0, "\(checked)")
            let owners: Int = try await cluster.sql.query(
                """
                SELECT count(DISTINCT h.owner)::int FROM drover.lease_history h JOIN drover.session_resources r ON r.session_id = h.session_id
                 WHERE r.type = 'memory_store' AND r.access = 'read_write'
                """)[0].decode(0)
            #expect(owners == 2, "sessions A and B ran on different harnesses")
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
            // The memory section of the system prompt, from the attached stores.
            let system = Self.systemPrompt(cluster, containing: "# Memory")
            #expect(system.contains("/mnt/memory/team-notes (read-write): Team Notes! — what the team learned"), "\(system)")
            #expect(system.contains("Keep the todo list current.") && system.contains("/mnt/memory/house-rules (read-only): house rules"))
        }
    }

    /// The first system prompt the scripted model was sent that contains `text` (a string or text blocks).
    static func systemPrompt(_ cluster: HarnessCluster, containing text: String) -> String {
        cluster.model.requests.compactMap { request -> String? in
            if let text = request["system"]?.stringValue { return text }
            guard case .array(let blocks)? = request["system"] else { return nil }
            return blocks.compactMap { $0["text"]?.stringValue }.joined()
        }.first { $0.contains(text) } ?? ""
    }

    /// Issue #24, item 3: dreams through the SDK: a create_new dream's session reads the
    /// sessions' transcripts and writes the copy of the store; update_existing is one at a time
    /// per store; cancel, archive, list and the documented refusals (Tests/sdk/dreams.py).
    @Test func dreamsReorganiseAMemoryStoreFromSessions() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script) { cluster, api in
            let key = try await api.key(org: "dreams")
            try await APIRig.python("Tests/sdk/dreams.py", environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY_A": key])
            try await RenderAgreement.check(cluster.sql)
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
            // The dream's agent was told what to do, with the dream's instructions.
            let system = Self.systemPrompt(cluster, containing: "You are dreaming")
            #expect(system.contains("Keep one file of colours.") && system.contains("/mnt/memory/notes-dream (read-write)"), "\(system)")
        }
    }

    /// Issue #23, item 4: a skill uploaded through the SDK, versioned, downloaded as a zip, named
    /// by an agent (resolved to a version) and used by a scripted turn at /mnt/skills/<name>/,
    /// read-only, with its description in the system prompt (Tests/sdk/skills.py).
    @Test func aSkillUploadedThroughTheSDKIsUsedByATurn() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script) { cluster, api in
            let key = try await api.key(org: "skills")
            try await APIRig.python("Tests/sdk/skills.py", environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY_A": key])
            try await RenderAgreement.check(cluster.sql)
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
            let system = Self.systemPrompt(cluster, containing: "# Skills")
            #expect(system.contains("/mnt/skills/greeter/SKILL.md: Greets people by name, politely."), "\(system)")
        }
    }

    /// Issue #23: docs/api.md lists every SDK method of the resources Drover serves with its
    /// status, and one not served is refused saying so (Tests/sdk/methods.py).
    @Test func everySDKMethodIsListedAndOneNotServedSaysSo() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script) { _, api in
            let key = try await api.key(org: "methods")
            try await APIRig.python("Tests/sdk/methods.py", environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY_A": key])
        }
    }

    /// Issue #23's contract test, so far: every answer for agents, environments, sessions, events,
    /// vaults, credentials and files validates with the SDK's own models in strict mode
    /// (Tests/sdk/contract.py).
    @Test func everyAnswerValidatesStrictlyWithTheSDKsModels() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script) { cluster, api in
            let key = try await api.key(org: "contract")
            try await APIRig.python("Tests/sdk/contract.py", environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY_A": key])
            let checked = try await RenderAgreement.check(cluster.sql)
            for kind in ["agent", "environment", "session", "session_resource", "event", "file", "memory_store"] {
                #expect(checked[kind, default: 0] > 0, "the contract made no \(kind) to check")
            }
            // The streamed turn ran through the harness: a tool call and its result were validated too.
            let events = try await cluster.sql.query(
                "SELECT count(*)::int FROM drover.events WHERE type IN ('agent.tool_use', 'agent.tool_result')")[0].decode(0) as Int
            #expect(events >= 2, "the contract's turn made no tool call")
            // The tool that sessions.update(agent=) added was offered in the session's next turn.
            #expect(cluster.model.requests.contains { request in
                guard case .array(let names)? = request["tool_names"] else { return false }
                return names.contains("lookup_two")
            }, "the updated tools never reached the model")
            // The system.message sent with the turn's message reached the model's system prompt.
            #expect(Self.systemPrompt(cluster, containing: "Answer briefly.").hasSuffix("\n\nAnswer briefly."))
        }
    }
}
