"""Graceful degradation: while the database cannot take writes, notifications
are answered 503 (nothing is acknowledged that was not stored), /readyz fails,
and serve does not busy-loop (CPU time and log lines over the outage stay
small); when the database takes writes again, serve resumes by itself and the
change that arrived meanwhile is mirrored. Two outages: a second connection
holds an exclusive lock, and the disk is full (serve's file-size limit is
lowered under it with prlimit, so that its writes fail with EFBIG as on a full
disk: SQLite answers SQLITE_IOERR / SQLITE_FULL, which core/store counts as
"storage unavailable"). A job stored before the disk fills comes due during
the outage: the workers' claims fail, and they wait, backing off, instead of
spinning.

A read-only database is not tested here: the suite runs as root, whom file
modes do not stop; serve's store open fails then with one line and exit 1, and
SQLITE_READONLY at run time is storage unavailable like a full disk."""
import os
import resource
import signal
import sqlite3
import subprocess
import threading
import time
import unittest

from harness import BUSYMIRROR, hour, timed
from test_serve import Serve, ServeCase

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



class PipedServe(Serve):
    """A serve whose SIGXFSZ is ignored (a write past the file-size limit fails
    with EFBIG instead of killing it) and whose output goes through a pipe (the
    limit does not cut its log), copied into serve.log by a thread."""

    def __init__(self, case):
        self.case = case
        cfg = os.path.join(case.dir, "bm.ini")
        self.log = open(os.path.join(case.dir, "serve.log"), "a")
        self.p = subprocess.Popen(
            [BUSYMIRROR, "-c", cfg, "serve"], cwd=case.dir, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN))
        self.lock = threading.Lock()
        self.copier = threading.Thread(target=self.copy, daemon=True)
        self.copier.start()

    def copy(self):
        for line in self.p.stdout:
            with self.lock:
                if not self.log.closed:
                    self.log.write(line)
                    self.log.flush()

    def output(self):
        with self.lock:
            if not self.log.closed:
                self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.copier.join(10)
        with self.lock:
            if not self.log.closed:
                self.log.close()
        self.case.outputs.append(self.output())
        return self.p.returncode


class DiskFull(ServeCase):
    def test_full_disk_pauses_without_busy_loop_and_resumes_by_itself(self):
        a, b, c = self.three_calendars()
        # a job stored before the outage comes due during it: the workers' claims fail
        self.configure(gateway={"commit_timeout_ms": 300},
                       engine={"debounce_ms": 1500, "max_delay_ms": 2000})
        s = PipedServe(self)
        self.servers.append(s)
        s.wait_ready()
        self.channels_live(3)
        self.wait_for("idle", lambda: self.db("SELECT count(*) FROM jobs")[0][0] == 0)
        chan, res = self.db("SELECT ch.id, ch.resource_id FROM channels ch JOIN calendars c"
                            " ON c.id = ch.calendar_id WHERE c.gcal_id = ?"
                            " AND ch.stopped_at IS NULL", a)[0]
        self.emu.event(b, timed("Before the disk fills", hour(20)))
        self.wait_for("its job stored", lambda: self.db(
            "SELECT count(*) FROM jobs j JOIN calendars c ON c.id = j.calendar_id"
            " WHERE c.gcal_id = ?", b)[0][0] == 1)
        db = os.path.join(self.dir, "bm.db")
        sizes = [os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p)]
        # every write past the smaller of db and WAL fails (a WAL that starts
        # over after a checkpoint fills it within a few pages)
        limit = min(sizes)
        soft, hard = resource.prlimit(s.p.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(s.p.pid, resource.RLIMIT_FSIZE, (limit, hard))
        try:
            cpu0, lines0, t0 = cpu_seconds(s.p.pid), s.output().count("\n"), time.time()
            self.emu.event(a, timed("While the disk is full", hour(21)))
            self.wait_for("/readyz failing", lambda: self.admin("/readyz")[0] == 503)
            # Google's retry: answered 503, nothing acknowledged that is not stored
            self.assertEqual(self.notify(self.headers(chan, res, 90)), 503)
            time.sleep(max(0, OUTAGE - (time.time() - t0)))
            cpu = cpu_seconds(s.p.pid) - cpu0
            lines = s.output().count("\n") - lines0
            wall = time.time() - t0
            print("\ndisk full: %.1f s outage (file-size limit %d bytes), serve used %.2f s CPU, "
                  "wrote %d log lines" % (wall, limit, cpu, lines))
            self.assertLess(cpu, 0.5 * wall, "serve busy-loops while the disk is full")
            self.assertLess(lines, 200, "log flood while the disk is full")
            self.assertEqual(self.emu.blocks(a) + self.emu.blocks(b) + self.emu.blocks(c), [])
            self.assertIsNone(s.p.poll(), "serve died on a full disk")
            self.assertIn("cannot claim a job", s.output())
        finally:
            # the disk frees up: the limit goes back to what it was (unlimited)
            resource.prlimit(s.p.pid, resource.RLIMIT_FSIZE, (soft, hard))
        self.wait_for("/readyz back", lambda: self.admin("/readyz")[0] == 200)
        # Google retries the notification it was refused; serve takes it now
        self.wait_for("the retried notification stored",
                      lambda: self.notify(self.headers(chan, res, 91)) == 200)
        self.expect_blocks([a, b, c], {a: 1, b: 1, c: 2})
        self.assertIsNone(s.p.poll())
        self.assertEqual(s.stop(), 0)

    def headers(self, chan, res, n):
        from test_serve import PushTest
        return {"X-Goog-Channel-ID": chan, "X-Goog-Resource-ID": res,
                "X-Goog-Resource-State": "exists", "X-Goog-Message-Number": str(n),
                "X-Goog-Channel-Token": PushTest.channel_token(self, chan)}


if __name__ == "__main__":
    unittest.main()
