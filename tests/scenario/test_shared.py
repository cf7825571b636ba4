"""The same meeting in two calendars (issue 13): a person invited through two
accounts has the real event in both (one iCalUID, two event ids). No block of one
copy is made in a calendar that holds the other; a block goes when the target's
own copy arrives and comes back when that copy goes; a shared series is skipped as
a whole; `[group default] skip_shared_events = false` restores the old behaviour; any order
of syncs converges within one `sync` run; serve follows by push. Every test prints
the writes it cost (emulator counters) and asserts them."""
import time
import unittest

from harness import Scenario, hour, timed
from test_serve import ServeCase

A, B = "alice@example.com", "bob@example.com"
UID = "meeting-7f3a@example.org"


def writes(n):
    return {k: n[k] for k in ("insert", "update", "delete", "writes")}


class SharedBase(Scenario):
    accounts = ("alice", "bob")  # sync order: by account name

    def setUp(self):
        super().setUp()
        self.setup_accounts()

    def setup_accounts(self):
        first, second = self.accounts
        self.add_account(first, A)
        self.add_account(second, B)
        for name, cal in ((first, A), (second, B)):
            self.bm("calendar", "discover", "--account-id", name)
            self.bm("calendar", "enable", "--calendar-id", cal)

    def meeting(self, cal, uid=UID, start=None, **extra):
        """The meeting as it lands in cal: an invitation carrying the organizer's iCalUID."""
        body = timed("Design review", start or hour(10), iCalUID=uid,
                     attendees=[{"email": A, "responseStatus": "accepted", "self": cal == A},
                                {"email": B, "responseStatus": "accepted", "self": cal == B}])
        body.update(extra)
        return self.emu.event(cal, body)

    def series(self, cal, uid="weekly-91c2@example.org"):
        body = timed("Weekly sync", hour(9), tz="UTC", iCalUID=uid,
                     recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"])
        return self.emu.event(cal, body)

    def user_events(self, cal):
        """cal's own events (not blocks) as Google holds them, etag included."""
        return sorted((ev["id"], ev["etag"], ev.get("status")) for ev in self.emu.dump(cal)
                      if "busymirror" not in ev.get("extendedProperties", {}).get("private", {}))

    def sync_counted(self, *args, what=""):
        self.emu.reset_counters()
        self.bm("sync", *args)
        n = writes(self.emu.counters())
        print("\n  %s: %s" % (what or self.id().rsplit(".", 1)[-1], n), end="")
        return n

    def assert_blocks(self, want):
        got = {c: len(self.emu.blocks(c)) for c in want}
        self.assertEqual(got, want)


class SharedMeetingTest(SharedBase):
    def test_same_meeting_in_both_from_the_start_makes_no_block(self):
        self.meeting(A)
        self.meeting(B)
        self.emu.event(A, timed("Focus", hour(14)))  # an ordinary event still mirrors
        before = {c: self.user_events(c) for c in (A, B)}
        n = self.sync_counted()
        self.assert_blocks({A: 0, B: 1})
        self.assertEqual(n, {"insert": 1, "update": 0, "delete": 0, "writes": 1})
        n = self.sync_counted(what="again")
        self.assertEqual(n["writes"], 0)
        self.assert_blocks({A: 0, B: 1})
        # the user's events were never written to
        self.assertEqual({c: self.user_events(c) for c in (A, B)}, before)

    def test_copy_arriving_later_in_the_target_deletes_the_block_once(self):
        self.meeting(A)
        self.sync_counted(what="source alone")
        self.assert_blocks({A: 0, B: 1})
        self.meeting(B)
        n = self.sync_counted(what="copy arrives")
        self.assert_blocks({A: 0, B: 0})
        self.assertEqual(n, {"insert": 0, "update": 0, "delete": 1, "writes": 1})
        self.assertEqual(self.sync_counted(what="again")["writes"], 0)
        self.assert_blocks({A: 0, B: 0})

    def test_target_copy_removed_brings_the_block_back(self):
        self.meeting(A)
        copy = self.meeting(B)
        self.sync_counted(what="both")
        self.assert_blocks({A: 0, B: 0})
        self.emu.delete_event(B, copy["id"])
        n = self.sync_counted(what="copy deleted")
        blocks = self.emu.blocks(B)
        self.assertEqual(len(blocks), 1)
        self.assertEqual(blocks[0]["start"]["dateTime"][:16], time.strftime(
            "%Y-%m-%dT%H:%M", time.gmtime(hour(10))))
        self.assertEqual(n["writes"], 1)
        self.assert_blocks({A: 0, B: 1})  # B's copy is gone: nothing to mirror into A
        self.assertEqual(self.sync_counted(what="again")["writes"], 0)

    def test_target_copy_declined_brings_the_block_back_and_accepting_removes_it(self):
        self.meeting(A)
        copy = self.meeting(B)
        self.sync_counted(what="both")
        self.assert_blocks({A: 0, B: 0})
        declined = [{"email": A, "responseStatus": "accepted"},
                    {"email": B, "responseStatus": "declined", "self": True}]
        self.emu.patch_event(B, copy["id"], {"attendees": declined})
        n = self.sync_counted(what="declined in B")
        self.assert_blocks({A: 0, B: 1})  # busy through A, free in B: the block says so
        self.assertEqual(n["writes"], 1)
        declined[1]["responseStatus"] = "accepted"
        self.emu.patch_event(B, copy["id"], {"attendees": declined})
        n = self.sync_counted(what="accepted again")
        self.assert_blocks({A: 0, B: 0})
        self.assertEqual(n, {"insert": 0, "update": 0, "delete": 1, "writes": 1})

    def test_source_moves_while_held_back_then_copy_goes_block_has_the_new_time(self):
        m = self.meeting(A)
        copy = self.meeting(B)
        self.sync_counted(what="both")
        moved = timed("x", hour(15))
        self.emu.patch_event(A, m["id"], {"start": moved["start"], "end": moved["end"]})
        self.emu.patch_event(B, copy["id"], {"start": moved["start"], "end": moved["end"]})
        self.assertEqual(self.sync_counted(what="both moved")["writes"], 0)
        self.emu.delete_event(B, copy["id"])
        n = self.sync_counted(what="copy deleted")
        self.assertEqual(n["writes"], 1)
        (blk,) = self.emu.blocks(B)
        self.assertEqual(blk["start"]["dateTime"][:13],
                         time.strftime("%Y-%m-%dT%H", time.gmtime(hour(15))))

    def test_each_copy_deleted_in_turn(self):
        m = self.meeting(A)
        copy = self.meeting(B)
        self.sync_counted(what="both")
        self.emu.delete_event(A, m["id"])
        n = self.sync_counted(what="A's copy deleted")
        self.assert_blocks({A: 1, B: 0})  # B's copy, still B's meeting, now blocks A
        self.assertEqual(n["writes"], 1)
        self.emu.delete_event(B, copy["id"])
        n = self.sync_counted(what="B's copy deleted")
        self.assert_blocks({A: 0, B: 0})  # nothing held back comes back from a deleted source
        self.assertEqual(n, {"insert": 0, "update": 0, "delete": 1, "writes": 1})

    def test_shared_recurring_series_is_skipped_as_a_whole(self):
        s = self.series(A)
        occ = "%s_%s" % (s["id"], time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(hour(9) + 7 * 86400)))
        moved = timed("x", hour(11) + 7 * 86400)
        self.emu.patch_event(A, occ, {"start": moved["start"], "end": moved["end"]})
        n = self.sync_counted(what="series in A only")
        blocks = self.emu.blocks(B)
        self.assertEqual(len(blocks), 2)  # the series block and its moved occurrence
        self.assertEqual(n["writes"], 2)  # O(1): not one per occurrence
        copy = self.series(B)
        n = self.sync_counted(what="B gets the series")
        self.assert_blocks({A: 0, B: 0})
        self.assertEqual(n, {"insert": 0, "update": 0, "delete": 1, "writes": 1})
        # an occurrence moved again while held back: nothing written
        moved = timed("x", hour(12) + 7 * 86400)
        self.emu.patch_event(A, occ, {"start": moved["start"], "end": moved["end"]})
        self.assertEqual(self.sync_counted(what="occurrence moved")["writes"], 0)
        self.assert_blocks({A: 0, B: 0})
        # B's series goes: the block series comes back with its (new) override
        self.emu.delete_event(B, copy["id"])
        n = self.sync_counted(what="B's series deleted")
        blocks = self.emu.blocks(B)
        self.assertEqual(len(blocks), 2)
        self.assertLessEqual(n["writes"], 2)
        self.assertTrue(any(b["start"]["dateTime"][:13] == time.strftime(
            "%Y-%m-%dT%H", time.gmtime(hour(12) + 7 * 86400)) for b in blocks if
            b.get("recurringEventId")), blocks)
        self.assertEqual(self.sync_counted(what="again")["writes"], 0)

    def test_shared_series_from_the_start_costs_nothing(self):
        self.series(A)
        self.series(B)
        n = self.sync_counted()
        self.assert_blocks({A: 0, B: 0})
        self.assertEqual(n["writes"], 0)

    def test_other_meetings_still_mirror(self):
        self.meeting(A)
        self.meeting(B)
        self.meeting(A, uid="other-1@example.org", start=hour(13))  # only in A
        self.sync_counted()
        self.assert_blocks({A: 0, B: 1})


class SkipSharedOffTest(SharedBase):
    def test_skip_shared_events_false_blocks_both_copies_and_toggling_converges(self):
        self.write_config(**{"group default": {"skip_shared_events": "false"}})
        self.meeting(A)
        self.meeting(B)
        n = self.sync_counted(what="off")
        self.assert_blocks({A: 1, B: 1})  # as before: a block of each copy in the other
        self.assertEqual(n["insert"], 2)
        self.write_config(**{"group default": {"skip_shared_events": "true"}})
        n = self.sync_counted(what="turned on")
        self.assert_blocks({A: 0, B: 0})
        self.assertEqual(n, {"insert": 0, "update": 0, "delete": 2, "writes": 2})
        self.write_config(**{"group default": {"skip_shared_events": "false"}})
        n = self.sync_counted(what="turned off")
        self.assert_blocks({A: 1, B: 1})
        self.assertEqual(n["writes"], 2)


class OrderBase(SharedBase):
    """The same histories with the source synced first and the target first, in one
    `sync` run of all calendars (calendars sync in account-name order) and in one run
    per calendar."""

    def history(self, runs):
        """From the start; the copy arriving later; the copy going. runs: how each
        step is synced (a list of argument lists, one `sync` each)."""
        counts = []

        def step(what):
            total = {"insert": 0, "update": 0, "delete": 0, "writes": 0}
            for args in runs:
                n = self.sync_counted(*args, what="%s %s" % (what, " ".join(args) or "all"))
                total = {k: total[k] + n[k] for k in total}
            counts.append(total)

        self.meeting(A)
        self.meeting(B)
        step("from the start")
        self.assert_blocks({A: 0, B: 0})
        m2 = self.meeting(A, uid="later-1@example.org", start=hour(15))
        step("source alone")
        self.assert_blocks({A: 0, B: 1})
        copy = self.meeting(B, uid="later-1@example.org", start=hour(15))
        step("copy arrives")
        self.assert_blocks({A: 0, B: 0})
        self.emu.delete_event(B, copy["id"])
        step("copy goes")
        self.assert_blocks({A: 0, B: 1})
        self.emu.delete_event(A, m2["id"])
        step("source goes")
        self.assert_blocks({A: 0, B: 0})
        return counts

    def one_run_of_all_calendars(self):
        c = self.history([[]])
        self.assertEqual([n["writes"] for n in c], [0, 1, 1, 1, 1])


class OrderSourceFirstTest(OrderBase):
    accounts = ("alice", "bob")  # alice (A) syncs before bob (B) in one run

    def test_one_run_of_all_calendars(self):
        self.one_run_of_all_calendars()

    def test_one_run_per_calendar_target_first(self):
        c = self.history([["--calendar-id", B], ["--calendar-id", A]])
        # from the start, two runs: B's run puts a block of B's copy into A (A not
        # listed yet), A's run finds A holds the meeting and deletes it
        self.assertEqual([n["writes"] for n in c], [2, 1, 1, 1, 1])
        self.assertEqual(c[0], {"insert": 1, "update": 0, "delete": 1, "writes": 2})

    def test_one_run_per_calendar_source_first(self):
        c = self.history([["--calendar-id", A], ["--calendar-id", B]])
        self.assertEqual([n["writes"] for n in c], [2, 1, 1, 1, 1])


class OrderTargetFirstTest(OrderBase):
    accounts = ("zed", "bob")  # bob (B) syncs before zed (A) in one run

    def test_one_run_of_all_calendars(self):
        self.one_run_of_all_calendars()


class SharedPushTest(ServeCase):
    def test_serve_follows_a_shared_meeting_by_push(self):
        self.add_account("alice", A)
        self.add_account("bob", B)
        for name, cal in (("alice", A), ("bob", B)):
            self.bm("calendar", "discover", "--account-id", name)
            self.bm("calendar", "enable", "--calendar-id", cal)
        self.configure()
        self.serve()
        self.channels_live(2)
        base = SharedBase.meeting
        base(self, A)
        self.expect_blocks([A, B], {A: 0, B: 1})
        self.emu.reset_counters()
        copy = base(self, B)
        self.expect_blocks([A, B], {A: 0, B: 0})
        self.settle()
        self.assert_stays({A: 0, B: 0})
        n = writes(self.emu.counters())
        print("\n  push, copy arrives: %s" % n, end="")
        self.assertEqual(n, {"insert": 0, "update": 0, "delete": 1, "writes": 1})
        self.emu.reset_counters()
        self.emu.delete_event(B, copy["id"])
        self.expect_blocks([A, B], {A: 0, B: 1})
        self.settle()
        n = writes(self.emu.counters())
        print("\n  push, copy goes: %s" % n, end="")
        self.assertEqual(n["writes"], 1)  # the block coming back (admin writes are not counted)

    def settle(self):
        self.wait_for("queue and outbox empty", lambda: self.db(
            "SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM outbox)")[0][0] == 0)

    def assert_stays(self, want):
        time.sleep(0.5)
        self.assertEqual({c: len(self.emu.blocks(c)) for c in want}, want)


if __name__ == "__main__":
    unittest.main()
