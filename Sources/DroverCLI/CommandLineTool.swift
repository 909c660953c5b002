import DroverCore
import DroverPostgres
import Foundation

/// A command-line program of subcommands (`drover`, `drover-dev`): help for the whole and for a
/// command group, the command named by the leading words, and errors as `error: CODE: message`
/// (exit 1) or usage mistakes (exit 2).
public struct CommandLineTool {
    public var program: String
    public var summary: String
    public var commands: [any Command.Type]
    /// Lines after the command list in the top help.
    public var footer: String

    public init(program: String, summary: String, commands: [any Command.Type], footer: String) {
        self.program = program
        self.summary = summary
        self.commands = commands
        self.footer = footer
    }

    /// Commands and their summaries in two columns, as wide as the longest name needs.
    public static func list(_ commands: [any Command.Type]) -> String {
        let width = max(20, (commands.map { $0.name.count }.max() ?? 0) + 2)
        return commands.map { "  " + $0.name.padding(toLength: width, withPad: " ", startingAt: 0) + $0.summary }.joined(separator: "\n")
    }

    public var help: String {
        """
        \(program): \(summary)

        usage: \(program) COMMAND [ARGS] [--help]

        commands:
        \(Self.list(commands))

        \(footer)
        """
    }

    /// The command named by the leading words, longest name first, and the words after it.
    public func resolve(_ words: [String]) -> (any Command.Type, [String])? {
        let sorted = commands.sorted { $0.name.split(separator: " ").count > $1.name.split(separator: " ").count }
        for command in sorted {
            let nameWords = command.name.split(separator: " ").map(String.init)
            if words.count >= nameWords.count, Array(words.prefix(nameWords.count)) == nameWords {
                return (command, Array(words.dropFirst(nameWords.count)))
            }
        }
        return nil
    }

    /// Runs the command `words` name, and exits.
    public func main(_ words: [String]) async -> Never {
        if words.isEmpty || words == ["--help"] || words == ["-h"] || words == ["help"] {
            print(help)
            exit(words.isEmpty ? 2 : 0)
        }
        guard let (command, rest) = resolve(words) else {
            // A command group ("drover bench", "drover session --help"): list its commands.
            let group = commands.filter { $0.name.split(separator: " ").first.map(String.init) == words[0] && $0.name.contains(" ") }
            if !group.isEmpty {
                let asksHelp = words.count == 1 || words.dropFirst().allSatisfy { $0 == "--help" || $0 == "-h" || $0 == "help" }
                let text = """
                    usage: \(program) \(words[0]) COMMAND [ARGS] [--help]

                    commands:
                    \(Self.list(group))
                    """
                if asksHelp && words.count > 1 {
                    print(text)
                    exit(0)
                }
                Output.error(words.count == 1 ? text : "error: usage: unknown command '\(words.prefix(2).joined(separator: " "))'\n\n\(text)")
                exit(2)
            }
            Output.error("error: usage: unknown command '\(words.prefix(2).joined(separator: " "))'\n\n\(help)")
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
        exit(0)
    }
}
