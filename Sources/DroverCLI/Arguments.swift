import DroverCore

/// A command line split into positionals, `--name value` options and `--flag` switches. Only
/// names a command declares are accepted, so a typo is an error rather than silently ignored.
public struct Arguments {
    public var positionals: [String] = []
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    public init(_ words: [String], options: Set<String>, flags allowedFlags: Set<String>) throws {
        var index = 0
        while index < words.count {
            let word = words[index]
            index += 1
            guard word.hasPrefix("--"), word.count > 2 else {
                positionals.append(word)
                continue
            }
            var name = String(word.dropFirst(2))
            var inline: String?
            if let equals = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if allowedFlags.contains(name), inline == nil {
                flags.insert(name)
            } else if options.contains(name) {
                if let inline {
                    values[name] = inline
                } else {
                    guard index < words.count else { throw UsageError("--\(name) needs a value") }
                    values[name] = words[index]
                    index += 1
                }
            } else {
                throw UsageError("unknown option --\(name)")
            }
        }
    }

    public func has(_ flag: String) -> Bool { flags.contains(flag) }
    public func value(_ name: String) -> String? { values[name] }

    public func int(_ name: String) throws -> Int? {
        guard let text = values[name] else { return nil }
        guard let value = Int(text) else { throw UsageError("--\(name) takes a whole number, not \(text)") }
        return value
    }

    public func double(_ name: String) throws -> Double? {
        guard let text = values[name] else { return nil }
        guard let value = Double(text), value > 0 else { throw UsageError("--\(name) takes a positive number, not \(text)") }
        return value
    }

    public func positional(_ index: Int, _ what: String) throws -> String {
        guard index < positionals.count else { throw UsageError("missing \(what)") }
        return positionals[index]
    }
}

/// A mistake in the command line; exits with status 2 and the command's usage.
public struct UsageError: Error {
    public var message: String
    public init(_ message: String) { self.message = message }
}
