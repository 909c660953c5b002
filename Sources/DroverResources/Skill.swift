import DroverCore

extension API {
    /// A custom skill (`/v1/skills`).
    public struct Skill: APIResource {
        /// `skill`.
        public var type: String
        public var id: String
        public var displayName: String?
        public var latestVersionID: String?
        /// `{type: custom}`.
        public var source: JSONValue
        public var createdAt: String
        public var updatedAt: String

        enum CodingKeys: String, CodingKey {
            case type, id, source
            case displayName = "display_name"
            case latestVersionID = "latest_version_id"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }
    }

    /// One uploaded version of a skill.
    public struct SkillVersion: APIResource {
        /// `skill_version`.
        public var type: String
        public var id: String
        public var skillID: String
        public var name: String
        public var description: String
        public var createdAt: String

        enum CodingKeys: String, CodingKey {
            case type, id, name, description
            case skillID = "skill_id"
            case createdAt = "created_at"
        }
    }
}
