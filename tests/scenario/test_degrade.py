"""Graceful degradation: while the database cannot take writes (a second
connection holds an exclusive lock), notifications are answered 503 (nothing is
acknowledged that was not stored), /readyz fails, and serve does not busy-loop
(CPU time and log lines over the outage stay small); when the lock goes, serve
resumes by itself and the change that arrived meanwhile is mirrored."""
import os
import sqlite3
import time
import unittest

from harness import hour, timed
from test_serve import ServeCase

OUTAGE = 3.0  # seconds the database refuses writes


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Degrade(ServeCase):
    def test_locked_database_pauses_without_busy_loop_and_resumes(self):
        a, b, c = self.three_calendars()
        self.configure(gateway={"commit_timeout_ms": 300})
        s = self.serve()
        self.channels_live(3)
        self.wait_for("idle", lambda: self.db("SELECT count(*) FROM jobs")[0][0] == 0)
        con = sqlite3.connect(os.path.join(self.dir, "bm.db"), timeout=30, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        try:
            cpu0, lines0, t0 = cpu_seconds(s.p.pid), s.output().count("\n"), time.time()
            self.emu.event(a, timed("During the outage", hour(21)))
            self.wait_for("/readyz failing", lambda: self.admin("/readyz")[0] == 503)
            time.sleep(max(0, OUTAGE - (time.time() - t0)))
            cpu = cpu_seconds(s.p.pid) - cpu0
            lines = s.output().count("\n") - lines0
            wall = time.time() - t0
            print("\ndegrade: %.1f s outage, serve used %.2f s CPU, wrote %d log lines"
                  % (wall, cpu, lines))
            self.assertLess(cpu, 0.5 * wall, "serve busy-loops while the database is locked")
            self.assertLess(lines, 200, "log flood while the database is locked")
            self.assertEqual(self.emu.blocks(b) + self.emu.blocks(c), [])
        finally:
            con.execute("ROLLBACK")
            con.close()
        self.expect_blocks([b, c], {b: 1, c: 1})
        self.wait_for("/readyz back", lambda: self.admin("/readyz")[0] == 200)
        self.assertIsNone(s.p.poll())


if __name__ == "__main__":
    unittest.main()
