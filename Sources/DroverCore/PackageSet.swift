/// An environment's `config.packages` (`{type: "packages", apt, cargo, gem, go, npm, pip}`): what
/// its sandboxes have installed. Checked where it enters (the API at environment create and
/// update, the pool at provision), so that each name reaching a package manager's command line is
/// one plain argument: never an option, never two words.
public struct PackageSet: Sendable, Equatable {
    /// The managers in the order the SDK lists them, which is also the order they install in.
    public enum Manager: String, Sendable, CaseIterable {
        case apt, cargo, gem, go, npm, pip
    }

    /// Each manager's packages, as the user wrote them (`pandas==2.0`, `express@4`, `ripgrep`).
    public private(set) var lists: [Manager: [String]] = [:]

    /// Most packages of one manager, and the longest name with its version.
    public static let maxPerManager = 100
    public static let maxLength = 214

    public struct Invalid: Error, Sendable {
        public var message: String
    }

    public init() {}

    /// Reads `config.packages`; absent or null is the empty set.
    public init(json: JSONValue?) throws(Invalid) {
        guard let json, json != .null else { return }
        guard case .object(let fields) = json else { throw Invalid(message: "packages must be an object") }
        if let type = fields["type"], type != .null, type.stringValue != "packages" {
            throw Invalid(message: "packages.type must be \"packages\"")
        }
        for key in fields.keys.sorted() where key != "type" {
            guard let manager = Manager(rawValue: key) else {
                throw Invalid(message: "packages.\(key) is not a package manager (apt, cargo, gem, go, npm or pip)")
            }
            guard let value = fields[key], value != .null else { continue }
            guard case .array(let items) = value else { throw Invalid(message: "packages.\(key) must be an array of strings") }
            guard items.count <= Self.maxPerManager else { throw Invalid(message: "packages.\(key) lists more than \(Self.maxPerManager) packages") }
            var names: [String] = []
            for item in items {
                guard let name = item.stringValue, Self.isPlain(name) else {
                    throw Invalid(message: "packages.\(key): \(item.text) is not a package name (1 to \(Self.maxLength) printable characters, "
                                  + "no spaces, not starting with -)")
                }
                names.append(name)
            }
            if !names.isEmpty { lists[manager] = names }
        }
    }

    public var isEmpty: Bool { lists.isEmpty }

    public subscript(manager: Manager) -> [String] { lists[manager] ?? [] }

    /// As sent to the pool: only the managers that list something.
    public var json: JSONValue {
        .object(Dictionary(uniqueKeysWithValues: lists.map { ($0.key.rawValue, .array($0.value.map(JSONValue.string))) }))
    }

    /// One argument to a package manager: printable ASCII without spaces, quotes, backslashes or
    /// shell metacharacters beyond what version specifiers use (`==`, `>=`, `@`, `^`, `~`, `:`, `/`,
    /// `+`, `*`, `[extra]`, `,`), and never an option.
    static func isPlain(_ name: String) -> Bool {
        guard (1...maxLength).contains(name.utf8.count), !name.hasPrefix("-") else { return false }
        return name.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9": true
            case ".", "_", "-", "=", "<", ">", "!", "~", "^", "@", ":", "/", "+", "*", "[", "]", ",": true
            default: false
            }
        }
    }
}
