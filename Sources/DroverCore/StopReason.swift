/// Reading `session.status_idle`'s `stop_reason`.
public enum StopReason {
    /// The outcome a logged `stop_reason` stands for: `drover_reason` when Drover's own outcome was
    /// expressed in Managed Agents' vocabulary (`{"type": "end_turn", "drover_reason":
    /// "interrupted"}`), else the type. Rows written before #11 (`{"type": "interrupted"}`) read
    /// the same.
    public static func name(of stopReason: JSONValue?) -> String? {
        stopReason?["drover_reason"]?.stringValue ?? stopReason?["type"]?.stringValue
    }
}
