"""Edges of group rules and shared meetings (issue 13): a held-back block whose
calendar leaves its group (disable, regroup) leaves no shared_blocks row behind
and converges exactly when it comes back; one calendar reached through two
accounts gets each group's rules exactly once. Every test asserts the exact
blocks and the writes it cost."""
import unittest

from harness import Scenario, db_rows, hour, q, timed

import os

A, B = "alice@example.com", "bob@example.com"
UID = "meeting-edges@example.org"


def epoch(s):
    import calendar
    import time
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))


class EdgesBase(Scenario):
    def sync(self, *args, expect=0):
        return self.bm("sync", *args, expect=expect)

    def counted(self, *args):
        self.emu.reset_counters()
        self.sync(*args)
        n = self.emu.counters()
        print("\n  %s: %s" % (self.id().rsplit(".", 1)[-1],
                              {k: n[k] for k in ("insert", "update", "delete", "writes")}), end="")
        return n

    def assert_steady(self):
        n = self.counted()
        self.assertEqual(n["writes"], 0, "not converged: %s" % n)

    def cal_ids(self, gcal_id):
        return [r[0] for r in db_rows(self, "SELECT id FROM calendars WHERE gcal_id = ?", gcal_id)]

    def shared_rows_of(self, gcal_id):
        ids = self.cal_ids(gcal_id)
        marks = ",".join("?" * len(ids))
        return db_rows(self, "SELECT target_calendar_id, source_calendar_id, block_id"
                             " FROM shared_blocks WHERE target_calendar_id IN (%s)"
                             " OR source_calendar_id IN (%s)" % (marks, marks), *(ids + ids))

    def spans(self, cal):
        """(summary, start, end) of cal's live blocks, sorted."""
        return sorted((b["summary"], epoch(b["start"]["dateTime"]), epoch(b["end"]["dateTime"]))
                      for b in self.emu.blocks(cal, live=True))


class LeavingWhileHeldBackTest(EdgesBase):
    def setUp(self):
        super().setUp()
        self.enabled_accounts(("alice", A), ("bob", B))

    def meeting(self, cal):
        body = timed("Design review", hour(10), iCalUID=UID,
                     attendees=[{"email": A, "responseStatus": "accepted", "self": cal == A},
                                {"email": B, "responseStatus": "accepted", "self": cal == B}])
        return self.emu.event(cal, body)

    def held_back_both_ways(self):
        self.meeting(A)
        self.b_copy = self.meeting(B)
        self.emu.event(A, timed("Focus", hour(14)))
        self.sync()
        self.assertEqual((len(self.emu.blocks(A, live=True)), len(self.emu.blocks(B, live=True))),
                         (0, 1))
        # each copy's block is held back in the other calendar
        self.assertEqual(len(self.shared_rows_of(A)), 2)

    def come_back_and_converge(self):
        self.bm("calendar", "enable", "--calendar-id", A, "--group", "default")
        self.sync()
        self.assertEqual(self.spans(A), [])
        self.assertEqual(self.spans(B), [("Busy", hour(14), hour(15))])
        self.assertEqual(len(self.shared_rows_of(A)), 2)
        self.assert_steady()
        # the held-back rows are live again: bob's copy goes, alice's comes back as a block
        self.emu.delete_event(B, self.b_copy["id"])
        n = self.counted()
        self.assertEqual(self.spans(B), [("Busy", hour(10), hour(11)), ("Busy", hour(14), hour(15))])
        self.assertEqual(self.spans(A), [])
        self.assertEqual(n["writes"], 1)
        self.assert_steady()
        out, _ = self.bm("cleanup", "--dry-run")
        self.assertIn("would remove 0 orphaned blocks", out)

    def test_disable_drops_the_held_back_rows_and_enable_converges(self):
        self.held_back_both_ways()
        self.bm("calendar", "disable", "--calendar-id", A)
        self.assertEqual(self.shared_rows_of(A), [], "held-back rows outlive the membership")
        self.assertEqual(self.spans(B), [])
        self.come_back_and_converge()

    def test_regroup_drops_the_held_back_rows_and_coming_back_converges(self):
        self.held_back_both_ways()
        self.bm("calendar", "enable", "--calendar-id", A, "--group", "other")
        self.assertEqual(self.shared_rows_of(A), [], "held-back rows outlive the membership")
        self.sync()
        self.assertEqual((self.spans(A), self.spans(B)), ([], []))
        self.assertEqual(self.shared_rows_of(A), [])
        self.come_back_and_converge()

    def test_disable_of_the_target_drops_the_rows_held_in_it(self):
        self.held_back_both_ways()
        self.bm("calendar", "disable", "--calendar-id", B)
        self.assertEqual(self.shared_rows_of(B), [])
        self.assertEqual(db_rows(self, "SELECT count(*) FROM shared_blocks"), [(0,)])
        self.bm("calendar", "enable", "--calendar-id", B)
        self.sync()
        self.assertEqual(self.spans(A), [])
        self.assertEqual(self.spans(B), [("Busy", hour(14), hour(15))])
        self.assertEqual(len(self.shared_rows_of(B)), 2)
        self.assert_steady()


class TwoAccountsTwoGroupsTest(EdgesBase):
    """alice's calendar reached as account "alice" (group default, with bob) and as
    account "work" (group g2, with alice's personal calendar)."""

    P = "alice-personal@group.calendar.google.com"

    def setUp(self):
        super().setUp()
        self.write_config(**{"group default": {"exclude_title": "secret", "buffer_after": "15",
                                               "block_summary": "Default"},
                             "group g2": {"buffer_before": "10", "block_summary": "G2"}})
        self.add_account("alice", A)
        self.emu.calendar(A, self.P, "Alice personal")
        self.add_account("bob", B)
        token = "refresh-work"
        self.emu.call("POST", "/_emulator/users/%s/refresh_tokens" % q(A), {"refresh_token": token})
        path = os.path.join(self.dir, "work.token")
        with open(path, "w") as f:
            f.write(token + "\n")
        self.bm("account", "add", "--name", "work", "--refresh-token-file", path)
        for name in ("alice", "work", "bob"):
            self.bm("calendar", "discover", "--account-id", name)
        self.bm("calendar", "enable", "--calendar-id", A, "--account-id", "alice")
        self.bm("calendar", "enable", "--calendar-id", B)
        self.bm("calendar", "enable", "--calendar-id", A, "--account-id", "work", "--group", "g2")
        self.bm("calendar", "enable", "--calendar-id", self.P, "--account-id", "alice",
                "--group", "g2")

    def test_each_groups_rules_apply_once(self):
        self.emu.event(A, timed("Secret interview", hour(10)))
        self.emu.event(A, timed("Planning", hour(12)))
        self.emu.event(B, timed("Standup secret", hour(9)))
        self.emu.event(B, timed("Review", hour(16)))
        self.emu.event(self.P, timed("Dentist", hour(18)))
        n = self.counted()
        # default: alice <-> bob, "secret" excluded, 15 minutes after
        self.assertEqual(self.spans(B), [("Default", hour(12), hour(13) + 900)])
        # g2: alice <-> personal, nothing excluded, 10 minutes before
        self.assertEqual(self.spans(self.P), [("G2", hour(10) - 600, hour(11)),
                                              ("G2", hour(12) - 600, hour(13))])
        # alice's calendar gets bob's (default rules) and the personal one's (g2 rules)
        self.assertEqual(self.spans(A), [("Default", hour(16), hour(17) + 900),
                                         ("G2", hour(18) - 600, hour(19))])
        self.assertEqual(n["insert"], 5)
        self.assertEqual(n["writes"], 5)
        self.assert_steady()
        # a rule change in one group touches that group's blocks only, once
        self.write_config(**{"group default": {"exclude_title": "secret", "buffer_after": "30",
                                               "block_summary": "Default"},
                             "group g2": {"buffer_before": "10", "block_summary": "G2"}})
        n = self.counted()
        self.assertEqual(self.spans(B), [("Default", hour(12), hour(13) + 1800)])
        self.assertEqual(self.spans(A), [("Default", hour(16), hour(17) + 1800),
                                         ("G2", hour(18) - 600, hour(19))])
        self.assertEqual(len(self.spans(self.P)), 2)
        self.assertEqual(n["writes"], 2)
        self.assert_steady()


if __name__ == "__main__":
    unittest.main()
