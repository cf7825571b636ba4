"""What a first-time operator hit: one calendar reached through two accounts,
undo that left blocks nothing manages, overlapping runs writing twice, and a
summary that did not count what was left. Each test here failed before its fix."""
import os
import re
import signal
import sqlite3
import sys
import time
import unittest

from harness import Scenario, db_rows, hour, q, timed

A, B, C = ("alice@example.com", "alice-personal@group.calendar.google.com", "bob@example.com")


def db_exec(test, sql, *args):
    db = sqlite3.connect(os.path.join(test.dir, "bm.db"))
    try:
        db.execute(sql, args)
        db.commit()
    finally:
        db.close()


class SameCalendarTest(Scenario):
    """alice's Google user added twice: as "alice" and as "work"."""

    def setUp(self):
        super().setUp()
        self.add_account("alice", A)
        self.add_account("bob", C)
        token = "refresh-work"
        self.emu.call("POST", "/_emulator/users/%s/refresh_tokens" % q(A), {"refresh_token": token})
        self.work_token = os.path.join(self.dir, "work.token")
        with open(self.work_token, "w") as f:
            f.write(token + "\n")

    def add_work(self, *extra):
        return self.bm("account", "add", "--name", "work", "--refresh-token-file", self.work_token,
                       *extra)

    def enabled_by(self, gcal_id):
        return db_rows(self, "SELECT a.name, c.group_name FROM calendars c JOIN accounts a"
                             " ON a.id = c.account_id WHERE c.gcal_id = ? AND c.enabled = 1"
                             " ORDER BY 1", gcal_id)

    def test_a_calendar_reached_through_two_accounts_is_never_its_own_target(self):
        self.add_work()
        for name in ("alice", "work", "bob"):
            self.bm("calendar", "discover", "--account-id", name)
        self.bm("calendar", "enable", "--calendar-id", A, "--account-id", "alice")
        self.bm("calendar", "enable", "--calendar-id", C)
        # a database from before the rule: both rows of A enabled in one group
        db_exec(self, "UPDATE calendars SET enabled = 1 WHERE gcal_id = ?", A)
        self.emu.event(A, timed("Planning", hour(11)))
        out, _ = self.bm("sync", "--dry-run")
        self.assertNotIn("%s -> %s" % (A, A), out)
        self.bm("sync")
        self.assertEqual(self.emu.blocks(A), [], "A holds blocks of its own meetings")
        self.assertEqual(len(self.emu.blocks(C)), 1)

    def test_enabling_one_calendar_twice_in_a_group_is_refused(self):
        self.add_work()
        for name in ("alice", "work"):
            self.bm("calendar", "discover", "--account-id", name)
        self.bm("calendar", "enable", "--calendar-id", A, "--account-id", "alice")
        before = db_rows(self, "SELECT * FROM calendars ORDER BY id")
        _, err = self.bm("calendar", "enable", "--calendar-id", A, "--account-id", "work", expect=2)
        self.assertIn("'alice'", err)
        self.assertEqual(db_rows(self, "SELECT * FROM calendars ORDER BY id"), before)
        # another group is another mirror
        self.bm("calendar", "enable", "--calendar-id", A, "--account-id", "work", "--group", "g2")
        self.assertEqual(self.enabled_by(A), [("alice", "default"), ("work", "g2")])

    def test_adding_a_google_user_again_warns(self):
        self.bm("calendar", "discover", "--account-id", "alice")
        _, err = self.add_work("--email", A)
        self.assertIn("already account 'alice'", err)

    def test_discover_warns_when_the_google_user_is_another_account(self):
        self.bm("calendar", "discover", "--account-id", "alice")
        _, err = self.add_work()
        self.assertNotIn("already", err)
        _, err = self.bm("calendar", "discover", "--account-id", "work")
        self.assertIn("already account 'alice'", err)


class UndoTest(Scenario):
    def setUp(self):
        super().setUp()
        self.three_meetings()
        self.assertEqual(self.counts(), (2, 2, 2))

    def counts(self):
        return tuple(len(self.emu.blocks(c)) for c in (A, B, C))

    def test_undo_of_a_disable_enables_the_calendar_again_and_its_blocks_are_managed(self):
        self.bm("calendar", "disable", "--calendar-id", B)
        self.assertEqual(self.counts(), (1, 0, 1))
        out, _ = self.bm("undo", "--last")
        self.assertIn("enabled again", out)
        self.assertEqual(db_rows(self, "SELECT enabled, group_name, role FROM calendars"
                                       " WHERE gcal_id = ?", B), [(1, "default", 0)])
        self.assertEqual(self.counts(), (2, 2, 2))
        self.bm("sync")
        self.emu.delete_event(B, self.mine["id"])
        self.bm("sync")
        self.assertEqual(self.counts(), (1, 2, 1), "the Dentist's blocks outlive it")
        out, _ = self.bm("cleanup", "--dry-run")
        self.assertIn("would remove 0 orphaned blocks", out)

    def test_undo_of_an_account_removal_declines_blocks_nothing_would_manage(self):
        self.bm("account", "remove", "--account-id", "bob", "--confirm")
        self.assertEqual(self.counts()[:2], (1, 1))
        out, err = self.bm("undo", "--last", expect=1)
        self.assertIn("0 blocks re-created, 4 could not be", out)
        self.assertIn("gone", out + err)
        self.assertEqual(self.counts()[:2], (1, 1), "undo brought back blocks of a removed account")

    def test_cleanup_finds_marked_blocks_the_store_does_not_manage(self):
        # ours by the marker, but no row manages it (a lost row, an old undo)
        stray = self.emu.event(A, timed("Busy", hour(20), extendedProperties={
            "private": {"busymirror": "1", "busymirror_src": "0123456789abcdef/gone"}}))
        mine = self.emu.event(A, timed("Not ours", hour(21)))
        out, _ = self.bm("cleanup", "--dry-run")
        self.assertIn("would remove 1 orphaned blocks", out)
        self.assertIn(stray["id"], out)
        self.bm("cleanup")
        ids = [ev["id"] for ev in self.emu.dump(A) if ev.get("status") != "cancelled"]
        self.assertNotIn(stray["id"], ids)
        self.assertIn(mine["id"], ids)
        self.assertEqual(self.counts(), (2, 2, 2))
        out, _ = self.bm("cleanup", "--dry-run")
        self.assertIn("would remove 0 orphaned blocks", out)


class BigOutboxTest(Scenario):
    EVENTS = 300

    def fill(self, n):
        cals = self.three_calendars()
        for cal in cals:
            for i in range(n):
                self.emu.event(cal, timed("M%d" % i, hour(i)))
        return cals

    def test_two_syncs_at_once_apply_each_write_once(self):
        cals = self.fill(self.EVENTS)
        want = 2 * self.EVENTS  # every target receives the other two calendars' events
        # a first sync plans everything, then is stopped in its first batch
        self.emu.faults(latency_ms=1500)
        p = self.bm_proc("sync")
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            if db_rows(self, "SELECT count(*) FROM outbox")[0][0] >= 3 * want:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
        self.emu.faults()
        needed = db_rows(self, "SELECT count(*) FROM outbox")[0][0]
        self.assertGreater(needed, 3 * want * 0.9)
        self.emu.reset_counters()
        procs = [self.bm_proc("sync") for _ in range(2)]
        for pr in procs:
            out, err = pr.communicate(timeout=600)
            self.outputs += [out, err]
            self.assertIn(pr.returncode, (0, 1, 75), err)
        self.bm("sync")
        c = self.emu.counters()
        calls = c["insert"] + c["update"] + c["delete"]
        print("\nwrite calls %d for %d writes needed: ratio %.3f"
              % (calls, needed, calls / needed), file=sys.stderr)
        self.assertLessEqual(calls, 1.05 * needed,
                             "%d write calls for %d writes (%s)" % (calls, needed, c))
        for cal in cals:
            srcs = [b["extendedProperties"]["private"]["busymirror_src"]
                    for b in self.emu.blocks(cal)]
            self.assertEqual(len(srcs), want, cal)
            self.assertEqual(len(set(srcs)), want, "duplicates in " + cal)
        self.assertEqual(db_rows(self, "SELECT count(*) FROM outbox")[0][0], 0)

    def test_summary_after_a_timeout_counts_what_is_pending(self):
        self.config_extra = {"google": {"user_quota": 120}}
        self.fill(100)
        for email in (A, C):
            self.emu.call("POST", "/_emulator/users/%s/quota" % q(email), {"rpm": 120})
        out, _ = self.bm("sync", "--timeout", "4", expect=1)
        m = re.search(r"(\d+) writes applied, (\d+) pending", out)
        self.assertIsNotNone(m, out)
        left = db_rows(self, "SELECT count(*) FROM outbox")[0][0]
        self.assertGreater(left, 0)
        self.assertEqual(int(m.group(2)), left, out)


if __name__ == "__main__":
    unittest.main()
