import DroverCore
import DroverStore

/// A session's budget in money: its list cost, priced from the operator's table
/// (`drover.model_prices`, US dollars per million tokens) over every model call in the log,
/// reaching `maxCents` stops the session issuing model requests (`budget_reached`). A model
/// without a price cannot be measured, so it counts as reached, as the SDK documents.
public struct SpendLimit: Sendable, Equatable {
    public var maxCents: Int64
    public var price: SessionStore.ModelPrice?

    public init(maxCents: Int64, price: SessionStore.ModelPrice?) {
        self.maxCents = maxCents
        self.price = price
    }

    /// The list cost of the log's model calls in cents, rounded up (the cap fires at or before
    /// the charge).
    func cents(_ log: SessionLog) -> Int64? {
        guard let price else { return nil }
        let dollars = (Double(log.inputTokens) * price.input + Double(log.outputTokens) * price.output
            + Double(log.cacheReadTokens) * price.cacheRead) / 1_000_000
        return Int64((dollars * 100).rounded(.up))
    }

    /// The `session.usage` snapshot (BetaManagedAgentsSessionUsageEvent) of the log: cumulative
    /// tokens, the list cost where the model has a price, and the budget.
    func usageEvent(_ log: SessionLog) -> HarnessEvent {
        .usage(inputTokens: log.inputTokens, outputTokens: log.outputTokens, cacheReadTokens: log.cacheReadTokens,
               listCostCents: cents(log), maxCents: maxCents)
    }

    func isReached(by log: SessionLog) -> Bool {
        guard let cents = cents(log) else { return true }
        return cents >= maxCents
    }
}
