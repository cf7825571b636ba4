"""What an operator reaches for: the audit list (what each run deleted, the run
ids undo takes), the sync log, --json on every list, and the progress line of a
long paced first mirror on a terminal."""
import calendar
import json
import os
import pty
import re
import subprocess
import time
import unittest

from harness import BUSYMIRROR, Scenario, hour, timed

A, B, C = ("alice@example.com", "alice-personal@group.calendar.google.com", "bob@example.com")


def parse_utc(text):
    """Epoch of an RFC 3339 UTC time as busymirror writes it; fails on another shape."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


class OperatorToolsTest(Scenario):
    def setUp(self):
        super().setUp()
        self.three_calendars()
        self.emu.event(A, timed("Planning", hour(11)))
        self.emu.event(A, timed("Daily", hour(8), 30, tz="UTC", recurrence=["RRULE:FREQ=DAILY;COUNT=5"]))
        self.emu.event(C, timed("Standup", hour(16)))
        self.bm("sync")

    def json(self, *args, expect=0):
        out, _ = self.bm(*args, expect=expect)
        return json.loads(out)

    # -- audit list --

    def test_audit_list_names_each_run_what_it_deleted_and_what_was_undone(self):
        self.assertEqual(self.json("audit", "list", "--json"), {"runs": []})
        before = time.time()
        self.bm("reset", "--calendar-id", B, "--confirm")  # 3 blocks: Planning, Daily, Standup
        out, _ = self.bm("undo", "--last")
        reset_run = int(re.search(r"undo of run (\d+)", out).group(1))
        out, _ = self.bm("calendar", "disable", "--calendar-id", C)
        n_disabled = int(re.search(r"(\d+) blocks removed", out).group(1))
        self.assertGreater(n_disabled, 0)

        runs = self.json("audit", "list", "--json")["runs"]
        self.assertEqual([r["action"] for r in runs], ["disable", "reset"])  # newest first
        disable, reset = runs
        self.assertEqual(reset["run_id"], reset_run)
        self.assertEqual(reset["calendars"], [B])
        self.assertEqual((reset["blocks"], reset["undone"]), (3, 3))
        self.assertGreater(disable["run_id"], reset_run)
        self.assertIn(C, disable["calendars"])
        self.assertEqual(disable["calendars"], sorted(set(disable["calendars"])))
        self.assertEqual((disable["blocks"], disable["undone"]), (n_disabled, 0))
        for r in runs:
            self.assertEqual(set(r), {"run_id", "at", "action", "calendars", "blocks", "undone"})
            self.assertLessEqual(abs(parse_utc(r["at"]) - before), 120)

        self.assertEqual([r["run_id"] for r in self.json("audit", "list", "--json", "--limit",
                                                         "1")["runs"]], [disable["run_id"]])
        out, _ = self.bm("audit", "list")
        row = next(line for line in out.splitlines() if line.startswith("%d " % reset_run))
        self.assertEqual(row.split()[2:5], ["reset", "3", "3"])
        self.assertIn(B, row)
        self.assertIn("2 runs", out)
        # the run id listed is the one undo takes
        self.bm("undo", "--audit-id", str(disable["run_id"]))
        runs = self.json("audit", "list", "--json")["runs"]
        self.assertEqual(runs[0]["undone"], n_disabled)

    def test_audit_list_refuses_bad_arguments(self):
        _, err = self.bm("audit", expect=2)
        self.assertIn("list", err)
        _, err = self.bm("audit", "list", "--limit", "0", expect=2)
        self.assertIn("--limit", err)
        self.bm("audit", "show", expect=2)

    # -- log --

    def test_log_lists_recent_syncs_per_calendar_newest_first(self):
        self.emu.event(A, timed("Review", hour(20)))
        self.bm("sync")
        syncs = self.json("log", "--json")["syncs"]
        self.assertEqual(len(syncs), 6)  # two runs over three calendars
        self.assertEqual([s["id"] for s in syncs], sorted((s["id"] for s in syncs), reverse=True))
        self.assertEqual({s["result"] for s in syncs}, {"ok"})
        self.assertEqual({s["error"] for s in syncs}, {None})
        for s in syncs:
            self.assertEqual(set(s), {"id", "started_at", "account", "calendar", "kind", "listed",
                                      "inserted", "updated", "deleted", "api_calls", "duration_ms",
                                      "result", "error"})
            self.assertLessEqual(abs(parse_utc(s["started_at"]) - time.time()), 120)
            self.assertGreaterEqual(s["api_calls"], 1)
            self.assertGreaterEqual(s["duration_ms"], 0)

        mine = self.json("log", "--calendar-id", A, "--json")["syncs"]
        self.assertEqual([(s["calendar"], s["account"], s["kind"]) for s in mine],
                         [(A, "alice", "incremental"), (A, "alice", "full")])
        # the incremental listing: Review (and the Standup block written into A after its
        # first listing); Review's blocks for B and C planned
        self.assertGreaterEqual(mine[0]["listed"], 1)
        self.assertEqual((mine[0]["inserted"], mine[0]["deleted"]), (2, 0))
        self.assertEqual((mine[1]["listed"], mine[1]["inserted"]), (2, 4))
        self.assertEqual(self.json("log", "--json", "--limit", "1")["syncs"], syncs[:1])

        # a failed sync says why
        self.emu.call("POST", "/_emulator/users/bob%40example.com/revoke", {})
        self.bm("sync", expect=1)
        last = self.json("log", "--calendar-id", C, "--limit", "1", "--json")["syncs"][0]
        self.assertNotEqual(last["result"], "ok")
        self.assertTrue(last["error"])
        out, _ = self.bm("log", "--calendar-id", A)
        self.assertEqual(len(re.findall(r"^\S+Z +%s +incremental " % re.escape(A), out, re.M)), 2)
        self.assertIn("3 syncs", out)
        _, err = self.bm("log", "--calendar-id", "nope@example.com", expect=2)
        self.assertIn("unknown calendar", err)

    # -- --json on the lists --

    def test_lists_print_one_json_document_without_secrets(self):
        accounts = self.json("account", "list", "--json")["accounts"]
        self.assertEqual(accounts, [
            {"name": "alice", "email": A, "calendars": 2, "state": "ok", "priority": 50,
             "poll_interval": 0},
            {"name": "bob", "email": C, "calendars": 1, "state": "ok", "priority": 50,
             "poll_interval": 0}])
        cals = self.json("calendar", "list", "--json")["calendars"]
        self.assertEqual([c["calendar"] for c in cals], [B, A, C])  # by account, then id
        self.assertEqual([c["account"] for c in cals], ["alice", "alice", "bob"])
        self.assertEqual({(c["group"], c["role"], c["enabled"], c["mode"]) for c in cals},
                         {("default", "both", True, "poll")})
        self.assertEqual([c["blocks"] for c in cals], [3, 1, 2])
        self.assertEqual([c["primary"] for c in cals], [False, True, True])
        for c in cals:
            self.assertEqual(c["last_result"], "ok")
            self.assertLessEqual(abs(parse_utc(c["last_sync"]) - time.time()), 120)
            self.assertNotIn("sync_token", c)
        only = self.json("calendar", "list", "--account-id", "bob", "--json")["calendars"]
        self.assertEqual([c["calendar"] for c in only], [C])
        self.assertEqual(self.json("dlq", "list", "--json"), {"dead_letters": []})

        self.emu.event(A, timed("Review", hour(20)))
        self.emu.faults(error_403=1.0, writes_only=1)
        self.bm("sync", expect=1)
        self.emu.faults()
        dead = self.json("dlq", "list", "--json")["dead_letters"]
        self.assertEqual(sorted(d["calendar"] for d in dead), [B, C])
        for d in dead:
            self.assertEqual(set(d), {"id", "failed_at", "calendar", "block", "op", "attempts",
                                      "error"})
            self.assertEqual(d["op"], "put")
            self.assertIn("403", d["error"])
            self.assertLessEqual(abs(parse_utc(d["failed_at"]) - time.time()), 120)
        self.bm("dlq", "retry", "--id", str(dead[0]["id"]))  # the ids listed are the ones retry takes
        self.assertEqual(len(self.json("dlq", "list", "--json")["dead_letters"]), 1)
        # --json belongs to list only
        self.bm("dlq", "purge", "--json", "--confirm", expect=2)
        self.bm("calendar", "enable", "--calendar-id", C, "--json", expect=2)
        self.bm("account", "list", "extra", expect=2)


class ProgressTest(Scenario):
    """A long paced first mirror on a terminal shows what is written, what remains,
    the pace and the time left."""

    N = 150  # alice's events, each one block in her other calendar

    def setUp(self):
        super().setUp()
        # busymirror keeps under 600 calls a minute: a bucket of 100, refilled at 500 a
        # minute, 50 writes a batch; Google (the emulator) refuses what goes beyond.
        self.config_extra = {"google": {"user_quota": 600}, "engine": {"batch_size": 50}}
        self.write_config()
        self.add_account("alice", A)
        self.emu.calendar(A, B, "Alice personal")
        self.emu.call("POST", "/_emulator/users/alice%40example.com/quota",
                      {"rpm": 600, "window_ms": 60000, "status": 429})
        self.bm("calendar", "discover", "--account-id", "alice")
        for c in (A, B):
            self.bm("calendar", "enable", "--calendar-id", c)
        for i in range(self.N):
            self.emu.event(A, timed("m%d" % i, hour(i % 24) + (i // 24) * 86400, 15))

    def sync_on_a_tty(self):
        """Runs `sync --verbose` with a pty as stdout; returns (exit code, stdout text)."""
        master, slave = pty.openpty()
        with open(os.path.join(self.dir, "tty.err"), "wb") as err:
            p = subprocess.Popen([BUSYMIRROR, "-c", os.path.join(self.dir, "bm.ini"), "sync",
                                  "--verbose"], cwd=self.dir, stdin=subprocess.DEVNULL,
                                 stdout=slave, stderr=err)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        rc = p.wait(120)
        text = b"".join(chunks).decode()
        self.outputs.append(text)
        return rc, text

    def test_progress_line_shows_pace_and_time_left(self):
        start = time.monotonic()
        rc, text = self.sync_on_a_tty()
        self.assertEqual(rc, 0, text)
        self.assertGreater(time.monotonic() - start, 4, "the quota did not pace the mirror")
        self.assertEqual(len(self.emu.blocks(B)), self.N)
        line = re.compile(r"applying block writes: (\d+) done, (\d+) pending, (\d+) writes/min, "
                          r"about (?:(\d+) h (\d+) min|(\d+) min (\d+) s|(\d+) s) left")
        shown = [line.fullmatch(seg.replace("\x1b[K", "").strip())
                 for seg in re.split(r"[\r\n]", text) if "applying block writes" in seg]
        self.assertTrue(shown and all(shown), text)
        done = [int(m.group(1)) for m in shown]
        self.assertEqual(done, sorted(done))
        self.assertEqual((done[-1], int(shown[-1].group(2))), (self.N, 0))
        waiting = [m for m in shown if int(m.group(2)) > 0]
        self.assertTrue(waiting, text)
        for m in waiting:
            pace, pending = int(m.group(3)), int(m.group(2))
            # the first batches go at once (a full bucket): no faster than the quota for all that
            self.assertTrue(0 < pace <= 600, m.group(0))
            h, hm, m_, ms, s = (int(g) if g else 0 for g in m.groups()[3:])
            left = h * 3600 + hm * 60 + m_ * 60 + ms + s
            # the time left is what remains at that pace (the pace is rounded for display)
            self.assertLessEqual(abs(left - pending * 60 / pace), 1 + left * 0.02, m.group(0))
            self.assertGreater(left, 0, m.group(0))

    def test_no_progress_line_without_a_terminal(self):
        out, _ = self.bm("sync", "--verbose")
        self.assertNotIn("applying block writes", out)
        self.assertEqual(len(self.emu.blocks(B)), self.N)


if __name__ == "__main__":
    unittest.main()
