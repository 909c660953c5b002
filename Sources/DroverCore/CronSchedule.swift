import Foundation

/// A deployment's schedule: a 5-field POSIX cron expression (minute hour day-of-month month
/// day-of-week; `*`, numbers, ranges, lists and steps; month and weekday names; day-of-week 0–7
/// with 0 and 7 Sunday) read in an IANA time zone. Pure: the scheduler asks it when the next
/// times are, and the tests walk it across daylight-saving transitions without a clock.
///
/// Daylight saving, as Vixie cron does it:
/// - a local time that does not exist (the hour skipped in spring) fires at the first instant
///   after the gap when the hour field names hours, and not at all when it is `*` (an hourly
///   job has no run in an hour that does not happen);
/// - a local time that happens twice (the hour repeated in autumn) fires at its first instance;
///   also at its second when the hour field is `*`, so an hourly job runs every real hour.
///
/// When both day fields are restricted, a day matches when either does (POSIX).
public struct CronSchedule: Sendable, Equatable {
    public let expression: String
    public let timeZone: TimeZone
    let minutes: [Int]
    let hours: [Int]
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool
    let everyHour: Bool

    /// Days looked through for a match before a schedule is said never to fire (it covers a
    /// 29 February that falls on a named weekday).
    static let horizonDays = 366 * 29

    public init(expression: String, timeZone identifier: String) throws(DroverError) {
        guard let zone = TimeZone(identifier: identifier) else {
            throw DroverError(.invalidArgument, "schedule.timezone: \(identifier) is not an IANA time zone")
        }
        let fields = expression.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard fields.count == 5 else {
            throw DroverError(.invalidArgument, "schedule.expression: 5 fields are required (minute hour day-of-month month day-of-week), got \(fields.count)")
        }
        self.expression = expression
        timeZone = zone
        minutes = try Self.field(fields[0], name: "minute", range: 0...59).sorted()
        hours = try Self.field(fields[1], name: "hour", range: 0...23).sorted()
        daysOfMonth = Set(try Self.field(fields[2], name: "day-of-month", range: 1...31))
        months = Set(try Self.field(fields[3], name: "month", range: 1...12, names: Self.monthNames))
        daysOfWeek = Set(try Self.field(fields[4], name: "day-of-week", range: 0...7, names: Self.dayNames).map { $0 % 7 })
        dayOfMonthRestricted = !fields[2].hasPrefix("*")
        dayOfWeekRestricted = !fields[4].hasPrefix("*")
        everyHour = fields[1].hasPrefix("*")
    }

    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// One field's values: a comma list of `*`, `N`, `A-B`, each optionally `/STEP`.
    static func field(_ text: String, name: String, range: ClosedRange<Int>, names: [String] = []) throws(DroverError) -> [Int] {
        func bad(_ why: String) -> DroverError { DroverError(.invalidArgument, "schedule.expression: the \(name) field \(text): \(why)") }
        func number(_ raw: Substring) throws(DroverError) -> Int {
            if let value = Int(raw) {
                guard range.contains(value) else { throw bad("\(value) is outside \(range.lowerBound)-\(range.upperBound)") }
                return value
            }
            if let index = names.firstIndex(of: raw.lowercased()) { return index + (range.lowerBound == 1 ? 1 : 0) }
            throw bad("\(raw) is not a number")
        }
        var values = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), !parts[0].isEmpty else { throw bad("\(item) is malformed") }
            var step = 1
            if parts.count == 2 {
                guard let value = Int(parts[1]), value >= 1 else { throw bad("the step \(parts[1]) must be a whole number of at least 1") }
                step = value
            }
            let low: Int
            let high: Int
            if parts[0] == "*" {
                (low, high) = (range.lowerBound, range.upperBound)
            } else if let dash = parts[0].firstIndex(of: "-") {
                low = try number(parts[0][..<dash])
                high = try number(parts[0][parts[0].index(after: dash)...])
                guard low <= high else { throw bad("the range \(parts[0]) runs backwards") }
            } else {
                low = try number(parts[0])
                high = parts.count == 2 ? range.upperBound : low
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return Array(values)
    }

    /// The first time after `instant` the schedule fires, or nil if it never does.
    public func next(after instant: Date) -> Date? {
        // From the local day before `instant`'s: a repeated hour can put a later firing on it.
        var day = Self.civil(fromDays: Self.days(of: instant, in: timeZone) - 1)
        for _ in 0..<Self.horizonDays {
            if matches(day), let found = firstFiring(on: day, after: instant) { return found }
            day = Self.civil(fromDays: Self.days(fromCivil: day) + 1)
        }
        return nil
    }

    /// The next `count` firing times after `instant`.
    public func upcoming(after instant: Date, count: Int) -> [Date] {
        var times: [Date] = []
        var last = instant
        while times.count < count, let next = next(after: last) {
            times.append(next)
            last = next
        }
        return times
    }

    /// What a scheduler that finds `due` (the first firing not yet made) at `now` does: the times
    /// to fire, oldest first (missed ones within `catchUp` seconds of `now`, at most `limit`), how
    /// many it skips (older ones, and any past the limit), and the next time after `now`. Skipped
    /// times are counted one by one up to 1,000, then jumped over (a scheduler down for months
    /// does not walk every minute it missed).
    public func plan(due: Date, now: Date, catchUp: TimeInterval, limit: Int = 60) -> (fire: [Date], skipped: Int, next: Date?) {
        var fire: [Date] = []
        var skipped = 0
        let windowStart = now.addingTimeInterval(-catchUp)
        var time: Date? = due
        while let current = time, current < windowStart {
            skipped += 1
            time = next(after: skipped < 1_000 ? current : max(current, windowStart.addingTimeInterval(-1)))
        }
        while let current = time, current <= now, fire.count < limit {
            fire.append(current)
            time = next(after: current)
        }
        while let current = time, current <= now, skipped < 1_000 {
            skipped += 1
            time = next(after: current)
        }
        return (fire, skipped, next(after: now))
    }

    /// Whether the schedule fires on local `day`.
    func matches(_ day: Civil) -> Bool {
        guard months.contains(day.month) else { return false }
        let monthDay = daysOfMonth.contains(day.day)
        let weekDay = daysOfWeek.contains(Self.weekday(ofDays: Self.days(fromCivil: day)))
        switch (dayOfMonthRestricted, dayOfWeekRestricted) {
        case (true, true): return monthDay || weekDay
        case (true, false): return monthDay
        case (false, true): return weekDay
        case (false, false): return true
        }
    }

    /// The first instant after `instant` the schedule fires on local `day`. Wall times are walked
    /// in order; an offset moves an instant by hours at most, so wall times more than a few hours
    /// before `instant`, or after a firing already found, cannot hold an earlier one.
    func firstFiring(on day: Civil, after instant: Date) -> Date? {
        let margin = 4.0 * 3600
        let midnight = Double(Self.days(fromCivil: day)) * 86_400
        let floor = instant.timeIntervalSince1970 + Double(timeZone.secondsFromGMT(for: instant)) - margin
        var best: (time: Date, wall: Double)?
        for hour in hours {
            for minute in minutes {
                let wall = midnight + Double(hour * 3600 + minute * 60)
                if wall < floor { continue }
                if let best, wall > best.wall + margin { return best.time }
                var times: [Date] = []
                switch resolve(wall: wall) {
                case .once(let time): times = [time]
                case .twice(let first, let second): times = everyHour ? [first, second] : [first]
                case .skipped(let gapEnd): times = everyHour ? [] : [gapEnd]
                }
                for time in times where time > instant && time < (best?.time ?? .distantFuture) { best = (time, wall) }
            }
        }
        return best?.time
    }

    enum Resolution: Equatable {
        case once(Date)
        case twice(Date, Date)
        /// The local time does not exist; the first instant after the gap.
        case skipped(Date)
    }

    /// The instants at which the zone's clocks read `wall` (seconds since 1970-01-01 00:00 local).
    func resolve(wall: Double) -> Resolution {
        let before = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: wall - 86_400))
        let after = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: wall + 86_400))
        let candidates = Set([before, after]).map { Date(timeIntervalSince1970: wall - Double($0)) }.filter { instant in
            Double(timeZone.secondsFromGMT(for: instant)) == wall - instant.timeIntervalSince1970
        }.sorted()
        switch candidates.count {
        case 2: return .twice(candidates[0], candidates[1])
        case 1: return .once(candidates[0])
        default:
            // In the gap: under the later offset the wall time lies before the transition, under
            // the earlier one after it; the transition is the first second of the later offset.
            var low = wall - Double(after)
            var high = wall - Double(before)
            while high - low > 1 {
                let middle = ((low + high) / 2).rounded(.down)
                if timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: middle)) == before { low = middle } else { high = middle }
            }
            return .skipped(Date(timeIntervalSince1970: high))
        }
    }

    // MARK: - Civil dates (proleptic Gregorian, days since 1970-01-01)

    struct Civil: Equatable {
        var year: Int
        var month: Int
        var day: Int
    }

    static func days(of instant: Date, in zone: TimeZone) -> Int {
        let local = instant.timeIntervalSince1970 + Double(zone.secondsFromGMT(for: instant))
        return Int((local / 86_400).rounded(.down))
    }

    static func days(fromCivil date: Civil) -> Int {
        let year = date.month <= 2 ? date.year - 1 : date.year
        let era = (year >= 0 ? year : year - 399) / 400
        let yearOfEra = year - era * 400
        let dayOfYear = (153 * (date.month + (date.month > 2 ? -3 : 9)) + 2) / 5 + date.day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civil(fromDays days: Int) -> Civil {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return Civil(year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month: month, day: day)
    }

    /// 0 for Sunday (1970-01-01 was a Thursday).
    static func weekday(ofDays days: Int) -> Int { ((days % 7) + 11) % 7 }
}
