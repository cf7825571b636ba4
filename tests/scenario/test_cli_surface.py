"""The operator's surface: deadlines, signals, names, file modes and messages, as
the real busymirror shows them against the real gcal-emulator."""
import json
import os
import signal
import stat
import time
import unittest

from harness import Scenario, hour, timed

A = "alice@example.com"


class Surface(Scenario):

    def one_calendar(self):
        self.add_account("alice", A)
        self.bm("calendar", "discover", "--account-id", "alice")
        self.bm("calendar", "enable", "--calendar-id", A)

    def test_a_hung_api_is_bounded_by_request_timeout_and_deadline(self):
        self.one_calendar()
        self.write_config(google={"request_timeout": 1}, sync={"deadline": 3})
        self.emu.faults(latency_ms=30000)
        t0 = time.monotonic()
        _, err = self.bm("sync", expect=1, timeout=120)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertIn("stopped by [sync] deadline (3 s)", err)

    def test_timeout_flag_overrides_the_deadline(self):
        self.one_calendar()
        self.write_config(google={"request_timeout": 1}, sync={"deadline": 0})
        self.emu.faults(latency_ms=30000)
        t0 = time.monotonic()
        _, err = self.bm("sync", "--timeout", "2", expect=1, timeout=120)
        self.assertLess(time.monotonic() - t0, 12)
        self.assertIn("stopped by --timeout (2 s)", err)
        self.emu.faults(latency_ms=0)
        self.bm("sync", "--timeout", "0")  # 0: no deadline

    def test_account_add_refuses_an_email_that_is_not_an_address(self):
        path = os.path.join(self.dir, "t.token")
        with open(path, "w") as f:
            f.write("refresh-x\n")
        for bad in ("nobody", "@example.com", "a@", "a b@example.com", "a\x1b@example.com",
                    "a@" + "x" * 260):
            _, err = self.bm("account", "add", "--name", "x", "--refresh-token-file", path,
                             "--email", bad, expect=2)
            self.assertIn("--email takes an address", err)
            self.assertEqual(len(err.strip().splitlines()), 2, err)  # and where help is
        out, _ = self.bm("account", "list", "--json")
        self.assertEqual(json.loads(out)["accounts"], [])  # nothing was stored
        self.bm("account", "add", "--name", "x", "--refresh-token-file", path,
                "--email", "x@example.com")

    def test_counts_are_singular_or_plural(self):
        self.add_account("alice", A)
        out, _ = self.bm("calendar", "discover", "--account-id", "alice")
        self.assertIn("1 calendar found for alice", out)
        self.emu.calendar(A, "alice-personal@group.calendar.google.com", "Alice personal")
        out, _ = self.bm("calendar", "discover", "--account-id", "alice")
        self.assertIn("2 calendars found for alice", out)

    def test_sighup_stops_sync_cleanly_with_129(self):
        self.one_calendar()
        self.emu.faults(latency_ms=3000)
        p = self.bm_proc("sync")
        time.sleep(1)
        p.send_signal(signal.SIGHUP)
        out, err = p.communicate(timeout=60)
        self.outputs += [out, err]
        self.assertEqual(p.returncode, 129, err)
        self.assertIn("stopped by SIGHUP", err)

    def test_reset_of_an_enabled_calendar_says_the_next_sync_puts_blocks_back(self):
        self.one_calendar()
        self.bm("sync")
        out, _ = self.bm("reset", "--calendar-id", A, "--confirm")
        self.assertIn("the next sync puts its blocks back", out)
        self.assertIn("busymirror calendar disable --calendar-id '%s'" % A, out)

    def test_status_and_calendar_list_label_their_numbers(self):
        self.one_calendar()
        self.emu.event(A, timed("m", hour(3)))
        self.bm("sync")
        out, _ = self.bm("status")
        self.assertRegex(out, r"jobs=0 pending=0 retrying=0 dead=0 blocks=0")
        out, _ = self.bm("calendar", "list")
        self.assertRegex(out, r"blocks=0 last=ok")


if __name__ == "__main__":
    unittest.main()
