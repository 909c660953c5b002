import DroverCLI
import DroverCore
import Foundation

/// Every subcommand; multi-word names ("session create") are matched on the leading words.
let commands: [any Command.Type] = [
    MigrateCommand.self, APICommand.self, APIKeyCreateCommand.self, AgentCreateCommand.self, EnvironmentCreateCommand.self, SessionCreateCommand.self,
    SessionSendCommand.self, SessionShowCommand.self, SessionsCommand.self, EventsCommand.self,
    LeasesCommand.self, HarnessesCommand.self, PoolsCommand.self, TopCommand.self, VerifyCommand.self, HarnessCommand.self, SandboxPoolCommand.self,
    EnvironmentKeyCreateCommand.self, EnvironmentKeyRevokeCommand.self, WorkCommand.self,
    VaultNewKeyCommand.self, VaultCreateCommand.self, VaultAddCredentialCommand.self, VaultRotateKeyCommand.self, WebhookCreateCommand.self, WebhookListCommand.self, PricesSetCommand.self,
]

/// The test rigs' commands live in `drover-dev` (not linked into this binary); `drover bench …`,
/// `drover chaos`, `drover demo` and `drover scripted-model` run it, installed beside `drover`.
let devCommands: Set<String> = ["bench", "chaos", "demo", "scripted-model"]

let tool = CommandLineTool(
    program: "drover", summary: "a self-hosted runtime for long-running agents (session log, harnesses, sandboxes).", commands: commands,
    footer: """
        development (drover-dev, beside drover): bench COMMAND, chaos, demo, scripted-model

        Configuration: DATABASE_URL (a libpq URL, e.g. postgresql://drover@127.0.0.1:5432/drover).
        Errors print "error: CODE: message" on standard error and exit 1; usage mistakes exit 2.
        """)

signal(SIGPIPE, SIG_IGN)
let words = Array(CommandLine.arguments.dropFirst())
if let first = words.first, devCommands.contains(first) {
    let dev = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("drover-dev").path
    var argv: [UnsafeMutablePointer<CChar>?] = ([dev] + words).map { strdup($0) } + [nil]
    execv(dev, &argv)
    Output.error("error: unavailable: \(first) is a drover-dev command, and \(dev) cannot be run: \(String(cString: strerror(errno)))")
    exit(1)
}
await tool.main(words)
