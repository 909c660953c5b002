import DroverCLI
import Foundation

/// The test rigs: benchmarks, the chaos run, the offline demo and the scripted model server. Kept
/// out of the production `drover` binary, which runs this one for these commands.
let tool = CommandLineTool(
    program: "drover-dev", summary: "Drover's test rigs (benchmarks, chaos, the demo, the scripted model); `drover` runs it for these.",
    commands: [
        ChaosCommand.self, DemoCommand.self, ScriptedModelCommand.self, BenchAPICommand.self, BenchQueueCommand.self, BenchDrainCommand.self,
        BenchSandboxCommand.self, BenchHarnessCommand.self, BenchBurstCommand.self, BenchWorkCommand.self, BenchPlannerCommand.self,
    ],
    footer: """
        The daemons they start are the `drover` beside this binary. Configuration: DATABASE_URL.
        Errors print "error: CODE: message" on standard error and exit 1; usage mistakes exit 2.
        """)

signal(SIGPIPE, SIG_IGN)
await tool.main(Array(CommandLine.arguments.dropFirst()))
