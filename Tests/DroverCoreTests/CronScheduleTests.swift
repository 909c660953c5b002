import DroverCore
import Foundation
import Testing

@Suite struct CronScheduleTests {
    static func time(_ text: String) -> Date { RFC3339.date(text)! }
    static func texts(_ dates: [Date]) -> [String] { dates.map { RFC3339.string($0) } }

    @Test func weekdayOfficeHoursRollOverTheWeekend() throws {
        let cron = try CronSchedule(expression: "*/15 9-17 * * 1-5", timeZone: "UTC")
        // Friday 2026-12-04 17:50: the next is Monday 09:00.
        #expect(cron.next(after: Self.time("2026-12-04T17:50:00Z")) == Self.time("2026-12-07T09:00:00Z"))
        #expect(cron.next(after: Self.time("2026-12-04T09:00:00Z")) == Self.time("2026-12-04T09:15:00Z"))
    }

    @Test func aTimeInTheSpringGapFiresWhenTheGapEnds() throws {
        let cron = try CronSchedule(expression: "30 2 * * *", timeZone: "America/New_York")
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z); 02:30 does not exist that day.
        #expect(Self.texts(cron.upcoming(after: Self.time("2026-03-06T12:00:00Z"), count: 3)) == [
            "2026-03-07T07:30:00.000Z", "2026-03-08T07:00:00.000Z", "2026-03-09T06:30:00.000Z",
        ])
    }

    @Test func anHourlyJobHasNoRunInTheSkippedHourAndRunsTwiceInTheRepeatedOne() throws {
        let cron = try CronSchedule(expression: "30 * * * *", timeZone: "America/New_York")
        // Spring: 01:30 EST (06:30Z), then 03:30 EDT (07:30Z).
        #expect(Self.texts(cron.upcoming(after: Self.time("2026-03-08T06:00:00Z"), count: 2)) == [
            "2026-03-08T06:30:00.000Z", "2026-03-08T07:30:00.000Z",
        ])
        // Autumn, 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00Z); 01:30 happens twice.
        #expect(Self.texts(cron.upcoming(after: Self.time("2026-11-01T04:45:00Z"), count: 3)) == [
            "2026-11-01T05:30:00.000Z", "2026-11-01T06:30:00.000Z", "2026-11-01T07:30:00.000Z",
        ])
    }

    @Test func zonesFarFromUTC() throws {
        // Honolulu is UTC-10, Kiritimati UTC+14: 03:00 local is 13:00Z the same day, and 13:00Z the day before.
        let honolulu = try CronSchedule(expression: "0 3 * * *", timeZone: "Pacific/Honolulu")
        #expect(honolulu.next(after: Self.time("2026-12-04T12:00:00Z")) == Self.time("2026-12-04T13:00:00Z"))
        let kiritimati = try CronSchedule(expression: "0 3 * * *", timeZone: "Pacific/Kiritimati")
        #expect(kiritimati.next(after: Self.time("2026-12-04T12:00:00Z")) == Self.time("2026-12-04T13:00:00Z"))
        #expect(kiritimati.next(after: Self.time("2026-12-04T13:00:00Z")) == Self.time("2026-12-05T13:00:00Z"))
    }

    @Test func aDailyJobInTheRepeatedHourRunsOnce() throws {
        let cron = try CronSchedule(expression: "30 1 * * *", timeZone: "America/New_York")
        #expect(Self.texts(cron.upcoming(after: Self.time("2026-10-31T12:00:00Z"), count: 2)) == [
            "2026-11-01T05:30:00.000Z", "2026-11-02T06:30:00.000Z",
        ])
    }

    @Test func everyMinuteIsEveryRealMinuteThroughBothTransitions() throws {
        let cron = try CronSchedule(expression: "* * * * *", timeZone: "Europe/London")
        for start in ["2026-03-29T00:00:00Z", "2026-10-25T00:00:00Z"] {
            let times = cron.upcoming(after: Self.time(start), count: 180)
            let gaps = zip(times, times.dropFirst()).map { $1.timeIntervalSince($0) }
            #expect(gaps.allSatisfy { $0 == 60 }, "around \(start)")
        }
    }

    @Test func restrictedDayFieldsMatchEitherDay() throws {
        let cron = try CronSchedule(expression: "0 0 13 * fri", timeZone: "UTC")
        // 2026-11-13 is a Friday; 2026-11-20 a Friday; 2026-12-13 a Sunday.
        #expect(Self.texts(cron.upcoming(after: Self.time("2026-11-12T00:00:00Z"), count: 4)) == [
            "2026-11-13T00:00:00.000Z", "2026-11-20T00:00:00.000Z", "2026-11-27T00:00:00.000Z", "2026-12-04T00:00:00.000Z",
        ])
        let sunday = try CronSchedule(expression: "0 12 * * 7", timeZone: "UTC")
        #expect(sunday.next(after: Self.time("2026-12-04T00:00:00Z")) == Self.time("2026-12-06T12:00:00Z"))
    }

    @Test func leapDaysAndImpossibleDates() throws {
        let leap = try CronSchedule(expression: "0 12 29 2 *", timeZone: "UTC")
        #expect(leap.next(after: Self.time("2026-03-01T00:00:00Z")) == Self.time("2028-02-29T12:00:00Z"))
        let never = try CronSchedule(expression: "0 0 30 2 *", timeZone: "UTC")
        #expect(never.next(after: Self.time("2026-03-01T00:00:00Z")) == nil)
    }

    @Test func malformedExpressionsAndZonesAreRefused() {
        for bad in ["61 * * * *", "* * * *", "* * * * * *", "a * * * *", "5-1 * * * *", "*/0 * * * *", "@daily", "0 0 L * *", "0 0 ? * *"] {
            #expect(throws: DroverError.self, "\(bad)") { try CronSchedule(expression: bad, timeZone: "UTC") }
        }
        #expect(throws: DroverError.self) { try CronSchedule(expression: "* * * * *", timeZone: "Mars/Olympus_Mons") }
    }

    @Test func aLateSchedulerCatchesUpWithinItsWindowAndSkipsTheRest() throws {
        let cron = try CronSchedule(expression: "* * * * *", timeZone: "UTC")
        let due = Self.time("2026-12-04T10:00:00Z")
        let now = Self.time("2026-12-04T10:10:30Z")
        let all = cron.plan(due: due, now: now, catchUp: 3600)
        #expect(all.fire.count == 11 && all.skipped == 0 && all.next == Self.time("2026-12-04T10:11:00Z"))
        let recent = cron.plan(due: due, now: now, catchUp: 300)
        #expect(Self.texts(recent.fire).first == "2026-12-04T10:06:00.000Z")
        #expect(recent.fire.count == 5 && recent.skipped == 6)
        let early = cron.plan(due: due, now: Self.time("2026-12-04T09:59:59Z"), catchUp: 300)
        #expect(early.fire.isEmpty && early.next == due)
    }
}

@Suite struct WebhookRetryTests {
    @Test func backsOffDoublingToItsCapAndGivesUpAfterADay() {
        let retry = WebhookRetry()
        let queued = Date(timeIntervalSince1970: 1_000_000)
        let delays = (1...12).map { retry.nextAttempt(afterFailure: $0, queuedAt: queued, now: queued)!.timeIntervalSince(queued) }
        #expect(delays == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600])
        // Still retried 24 h on; given up at 25 h.
        #expect(retry.nextAttempt(afterFailure: 40, queuedAt: queued, now: queued.addingTimeInterval(24 * 3600)) != nil)
        #expect(retry.nextAttempt(afterFailure: 41, queuedAt: queued, now: queued.addingTimeInterval(25 * 3600)) == nil)
    }
}
