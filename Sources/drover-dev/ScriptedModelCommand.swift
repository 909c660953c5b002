import DroverCLI
import DroverCore
import DroverIO
import DroverModel
import DroverScriptedModel
import Foundation

struct ScriptedModelCommand: Command {
    static let name = "scripted-model"
    static let summary = "serve scripted assistant turns over the Anthropic wire format (tests, demo)"
    static let help = """
        usage: drover scripted-model --script FILE [--listen HOST:PORT]

        A real HTTP server on loopback that speaks the Anthropic Messages API (JSON, and SSE when
        asked to stream) and replays the scripted turns in FILE; see ModelScript for the format.
        It is a script, not a model: the turn it plays is the number of assistant messages in the
        request. Point a harness at it with --model-url http://HOST:PORT. GET /_scripted/requests
        lists the requests it received. Logs one JSON object per line; exits 0 on SIGTERM.

          --script FILE       the turns to replay
          --listen HOST:PORT  default 127.0.0.1:0 (a free port, printed in the "listening" line)
          --log-format F      json (default) or text
        """
    static let options: Set<String> = ["script", "listen", "log-format"]

    static func run(_ arguments: Arguments) async throws {
        guard let file = arguments.value("script") else { throw UsageError("--script FILE is required") }
        if let format = arguments.value("log-format") {
            guard let parsed = Log.Format(rawValue: format) else { throw UsageError("--log-format is json or text") }
            Log.setFormat(parsed)
        }
        let script = try ModelScript.load(file: file)
        guard let (host, port) = parseHostPort(arguments.value("listen") ?? "127.0.0.1:0") else {
            throw UsageError("--listen takes HOST:PORT")
        }
        let log = Log(component: "scripted-model")
        let server = try ScriptedModelServer(script: script, host: host, port: port, log: log)
        server.start()
        log.info("listening", ("address", .string("\(server.listener.host):\(server.listener.port)")),
                 ("turns", .number(Double(script.turns.count))))
        _ = await TerminationSignal.wait()
        server.stop()
        log.info("stopped")
    }
}
