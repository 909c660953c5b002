import DroverCore
import DroverPostgres
import Foundation

/// Every subcommand; multi-word names ("session create") are matched on the leading words.
let commands: [any Command.Type] = [
    MigrateCommand.self, APICommand.self, APIKeyCreateCommand.self, AgentCreateCommand.self, EnvironmentCreateCommand.self, SessionCreateCommand.self,
    SessionSendCommand.self, SessionShowCommand.self, SessionsCommand.self, EventsCommand.self,
    LeasesCommand.self, HarnessesCommand.self, BenchAPICommand.self, PoolsCommand.self, TopCommand.self, VerifyCommand.self, ChaosCommand.self, HarnessCommand.self, SandboxPoolCommand.self, ScriptedModelCommand.self,
    EnvironmentKeyCreateCommand.self, EnvironmentKeyRevokeCommand.self, WorkCommand.self,
    VaultNewKeyCommand.self, VaultCreateCommand.self, VaultAddCredentialCommand.self, VaultRotateKeyCommand.self, WebhookCreateCommand.self, WebhookListCommand.self, PricesSetCommand.self, DemoCommand.self, BenchQueueCommand.self, BenchDrainCommand.self, BenchSandboxCommand.self, BenchHarnessCommand.self, BenchBurstCommand.self, BenchWorkCommand.self, BenchPlannerCommand.self,
]

/// Commands and their summaries in two columns, as wide as the longest name needs.
func commandList(_ list: [any Command.Type]) -> String {
    let width = max(20, (list.map { $0.name.count }.max() ?? 0) + 2)
    return list.map { "  " + $0.name.padding(toLength: width, withPad: " ", startingAt: 0) + $0.summary }.joined(separator: "\n")
}

let topHelp = """
    drover: a self-hosted runtime for long-running agents (session log, harnesses, sandboxes).

    usage: drover COMMAND [ARGS] [--help]

    commands:
    \(commandList(commands))

    Configuration: DATABASE_URL (a libpq URL, e.g. postgresql://drover@127.0.0.1:5432/drover).
    Errors print "error: CODE: message" on standard error and exit 1; usage mistakes exit 2.
    """

/// Finds the command named by the leading words, longest name first.
@MainActor func resolve(_ words: [String]) -> (any Command.Type, [String])? {
    let sorted = commands.sorted { $0.name.split(separator: " ").count > $1.name.split(separator: " ").count }
    for command in sorted {
        let nameWords = command.name.split(separator: " ").map(String.init)
        if words.count >= nameWords.count, Array(words.prefix(nameWords.count)) == nameWords {
            return (command, Array(words.dropFirst(nameWords.count)))
        }
    }
    return nil
}

signal(SIGPIPE, SIG_IGN)
let words = Array(CommandLine.arguments.dropFirst())
if words.isEmpty || words == ["--help"] || words == ["-h"] || words == ["help"] {
    print(topHelp)
    exit(words.isEmpty ? 2 : 0)
}
guard let (command, rest) = resolve(words) else {
    // A command group ("drover bench", "drover session --help"): list its commands.
    let group = commands.filter { $0.name.split(separator: " ").first.map(String.init) == words[0] && $0.name.contains(" ") }
    if !group.isEmpty {
        let asksHelp = words.count == 1 || words.dropFirst().allSatisfy { $0 == "--help" || $0 == "-h" || $0 == "help" }
        let text = """
            usage: drover \(words[0]) COMMAND [ARGS] [--help]

            commands:
            \(commandList(group))
            """
        if asksHelp && words.count > 1 {
            print(text)
            exit(0)
        }
        Output.error(words.count == 1 ? text : "error: usage: unknown command '\(words.prefix(2).joined(separator: " "))'\n\n\(text)")
        exit(2)
    }
    Output.error("error: usage: unknown command '\(words.prefix(2).joined(separator: " "))'\n\n\(topHelp)")
    exit(2)
}
if rest.contains("--help") || rest.contains("-h") {
    print(command.help)
    exit(0)
}
do {
    let arguments = try Arguments(rest, options: command.options, flags: command.flags)
    try await command.run(arguments)
} catch let error as UsageError {
    Output.error("error: usage: \(error.message)\n\n\(command.help)")
    exit(2)
} catch let error as DroverError {
    Output.error("error: \(error.code): \(error.message)")
    exit(1)
} catch let error as PostgresError {
    Output.error("error: \(error.code): \(String(reflecting: error))")
    exit(1)
} catch {
    Output.error("error: \(error)")
    exit(1)
}
