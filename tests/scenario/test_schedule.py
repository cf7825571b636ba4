"""Scheduling: account priority and poll interval (account set/list), the cron
`poll` (one at a time through its lock file; only what is due), the claim order
when workers are scarce, polls spread over the interval instead of bursts, and
[sync] full_resync_hours."""
import collections
import fcntl
import json
import os
import time
import unittest

from harness import Scenario, db_rows

from test_serve import Serve, free_port


class AccountScheduleTest(Scenario):
    def test_account_set_and_list(self):
        self.add_account("alice", "alice@example.com")
        self.add_account("bob", "bob@example.com")
        self.bm("account", "set", "--account-id", "alice", "--priority", "80",
                "--poll-interval", "60")
        self.bm("account", "set", "--account-id", "bob", "--poll-interval", "0")
        out, _ = self.bm("account", "list")
        self.assertIn("PRIORITY", out)
        rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
        self.assertEqual(rows["alice"][4:6], ["80", "60"])
        self.assertEqual(rows["bob"][4:6], ["50", "-"])
        doc = json.loads(self.bm("account", "list", "--json")[0])
        got = {a["name"]: (a["priority"], a["poll_interval"]) for a in doc["accounts"]}
        self.assertEqual(got, {"alice": (80, 60), "bob": (50, 0)})
        for opt, bad in (("--priority", "101"), ("--priority", "x"),
                         ("--poll-interval", "86401"), ("--poll-interval", "-1")):
            _, err = self.bm("account", "set", "--account-id", "alice", opt, bad, expect=2)
            self.assertIn(opt, err)
        self.bm("account", "set", "--account-id", "nobody", "--priority", "1", expect=2)
        self.bm("account", "set", "--account-id", "alice", expect=2)  # nothing to set


class PollTest(Scenario):
    def kinds_by_calendar(self):
        return db_rows(self, "SELECT c.gcal_id, l.kind FROM sync_log l"
                       " JOIN calendars c ON c.id = l.calendar_id ORDER BY l.id")

    def test_an_overlapping_poll_exits_75_at_once(self):
        self.three_calendars()
        self.write_config(sync={"poll_interval": 86400})
        # the first poll holds the lock file (as a running poll does)
        with open(os.path.join(self.dir, "bm.db.poll.lock"), "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _, err = self.bm("poll", expect=75)
            self.assertIn("another busymirror poll", err)
            self.assertEqual(self.kinds_by_calendar(), [], "the second poll synced")
        self.bm("poll")
        self.assertEqual(len(self.kinds_by_calendar()), 3)

    def test_poll_syncs_what_is_due_and_not_what_was_synced_recently(self):
        a, b, c = self.three_calendars()
        self.write_config(sync={"poll_interval": 86400})
        self.bm("sync", "--account-id", "bob")
        before = len(self.kinds_by_calendar())
        out, _ = self.bm("poll")
        self.assertIn("2 calendars due", out)
        polled = [cal for cal, _ in self.kinds_by_calendar()[before:]]
        self.assertEqual(sorted(polled), sorted([a, b]))
        self.emu.event(c, {"summary": "x", "start": {"date": "2030-01-01"},
                           "end": {"date": "2030-01-02"}})
        self.bm("poll")  # nothing is due now: nothing listed
        self.assertEqual(len(self.kinds_by_calendar()), before + 2)
        self.assertEqual(db_rows(self, "SELECT count(*) FROM jobs"), [(0,)])

    def test_the_higher_priority_account_is_synced_first(self):
        a, b, c = self.three_calendars()
        self.write_config(engine={"workers": 1}, sync={"poll_interval": 86400})
        self.bm("account", "set", "--account-id", "bob", "--priority", "90")
        self.bm("account", "set", "--account-id", "alice", "--priority", "10")
        self.bm("poll")
        order = [cal for cal, _ in self.kinds_by_calendar()]
        self.assertEqual(order[0], c, order)
        self.assertEqual(sorted(order[1:]), sorted([a, b]))

    def test_full_resync_hours(self):
        a, b, c = self.three_calendars()
        self.write_config(sync={"full_resync_hours": 1})
        self.bm("sync")
        db = os.path.join(self.dir, "bm.db")
        import sqlite3
        con = sqlite3.connect(db)
        with con:
            con.execute("UPDATE sync_state SET last_full_sync = ? WHERE calendar_id ="
                        " (SELECT id FROM calendars WHERE gcal_id = ?)", (int(time.time()) - 7200, a))
            con.execute("UPDATE sync_state SET last_full_sync = ? WHERE calendar_id ="
                        " (SELECT id FROM calendars WHERE gcal_id = ?)", (int(time.time()) - 1800, b))
        con.close()
        n = len(self.kinds_by_calendar())
        self.bm("sync")
        kinds = dict(self.kinds_by_calendar()[n:])
        self.assertEqual(kinds[a], "full")
        self.assertEqual(kinds[b], "incremental")


class SpreadTest(Scenario):
    N = 200
    INTERVAL = 10

    def test_polls_of_200_calendars_spread_over_the_interval(self):
        self.add_account("alice", "alice@example.com")
        for i in range(self.N - 1):
            self.emu.calendar("alice@example.com", "c%03d@group.calendar.google.com" % i,
                              "C%d" % i)
        admin = free_port()
        self.write_config(admin={"listen": "127.0.0.1:%d" % admin},
                          sync={"poll_interval": self.INTERVAL})
        self.bm("calendar", "discover", "--account-id", "alice")
        import sqlite3
        con = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        with con:  # enabled as `calendar enable` would, without 200 runs of it
            con.execute("UPDATE calendars SET enabled = 1, role = 1")  # sources only
        con.close()
        self.bm("sync")
        start = int(time.time())
        self.assertEqual(len(db_rows(self, "SELECT id FROM calendars WHERE enabled = 1")), self.N)
        serve = Serve(self)
        try:
            for _ in range(1200):  # bounded: 60 s
                done = db_rows(self, "SELECT count(DISTINCT calendar_id) FROM sync_log"
                               " WHERE started_at > ?", start)[0][0]
                if done >= self.N or serve.p.poll() is not None:
                    break
                time.sleep(0.05)
        finally:
            serve.stop()
        firsts = db_rows(self, "SELECT min(started_at) FROM sync_log WHERE started_at > ?"
                         " GROUP BY calendar_id", start)
        self.assertEqual(len(firsts), self.N, serve.output()[-2000:])
        per_second = collections.Counter(t for (t,) in firsts)
        average = self.N / self.INTERVAL
        self.assertLessEqual(max(per_second.values()), 3 * average, sorted(per_second.items()))
        self.assertGreaterEqual(len(per_second), self.INTERVAL - 2, sorted(per_second.items()))


if __name__ == "__main__":
    unittest.main()
