"""Resilience paths of serve that the other scenario tests leave out.

- Watchdog: a worker really stuck in one call (the emulator's latency knob,
  below [google] request_timeout, past [serve] stall_timeout) is noticed: serve
  logs the stuck role once, stops feeding systemd's watchdog (the test is the
  NOTIFY_SOCKET: a unix datagram socket that reads serve's READY=1 and
  WATCHDOG=1), /readyz fails with the reason; when the call returns, the pings
  and /readyz come back and the change is mirrored.
- Claims after a full disk: a block write in flight when the disk fills (its
  batch is slow: the emulator's latency knob) cannot be recorded, nor its
  claim given back; when the disk frees, serve releases its own stale claims
  at once, so the write is settled within seconds, not when the claim expires
  (5 minutes), and no block is doubled (the insert answers 409 and revives).
- The breaker's half-open probe is one call: an account whose breaker opened
  before and whose open period is over (the persisted state, as serve and
  sync read it) gets one call through; when it fails, the breaker opens again
  (for twice as long) with no retry of that call and no other call made (the
  emulator counts calls per user). Before, the probe was a listing with the
  client's five retries: 6 calls. A probe that begins with a drain batch
  carries one part (the others wait for its answer): before, the whole batch
  (20 parts here).
- Every external call has a timeout: a token refresh whose answer comes far
  past [google] request_timeout (the emulator's token_latency_ms), and the
  renewer's watch calls of an account whose every call hangs (latency_ms),
  end at the timeout (with the client's retries) instead of holding their
  thread: sync fails with a clear error in bounded time, and the renewer opens
  the other account's channels and comes round.
- serve and cron on one database: poll and sync beside serve (75 where serve
  holds a calendar's lease), then during a full disk (serve's and the
  commands' writes fail) poll, sync, dlq retry and calendar disable exit 1
  with the store's error, changing nothing; after it, no change is lost or
  doubled and nothing stays claimed.
"""
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import unittest

from harness import BUSYMIRROR, hour, q, timed
from test_degrade import PipedServe
from test_serve import Serve, ServeCase

SLOW_BATCH_MS = 3000  # bob's calls while the disk fills under his batch
SETTLE_S = 30        # the stale claim is gone within this (its expiry: 300 s)
STALL_S = 5      # [serve] stall_timeout
HANG_MS = 14000  # a call of the stuck account takes this long: past the stall, below the timeout


class NotifySocket:
    """systemd's side of sd_notify: every datagram serve sends, with its time."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.msgs = []  # (monotonic time, text)
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        while not self.done:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                for line in data.decode(errors="replace").splitlines():
                    self.msgs.append((time.monotonic(), line))

    def times(self, text):
        with self.lock:
            return [t for t, m in self.msgs if m == text]

    def close(self):
        self.done = True
        self.thread.join(5)
        self.sock.close()


class ResilienceCase(ServeCase):
    def user_faults(self, email, **kw):
        self.emu.call("POST", "/_emulator/users/%s/faults" % q(email), kw)

    def user_counters(self, email):
        return self.emu.call("GET", "/_emulator/users/%s/counters" % q(email))

    def serve_with_notify(self):
        path = os.path.join(self.dir, "notify.sock")
        ns = NotifySocket(path)
        self.addCleanup(ns.close)
        os.environ["NOTIFY_SOCKET"] = path
        try:
            s = Serve(self)
        finally:
            del os.environ["NOTIFY_SOCKET"]
        self.servers.append(s)
        s.wait_ready()
        return s, ns


class Watchdog(ResilienceCase):
    def test_a_stuck_worker_stops_the_watchdog_and_fails_readyz(self):
        a, b, c = self.three_calendars()
        self.configure(serve={"stall_timeout": STALL_S}, google={"request_timeout": 60})
        s, ns = self.serve_with_notify()
        self.wait_for("READY=1", lambda: ns.times("READY=1"))
        self.wait_for("watchdog pings", lambda: len(ns.times("WATCHDOG=1")) >= 2)
        self.channels_live(3)
        self.wait_for("idle", lambda: self.db("SELECT count(*) FROM jobs")[0][0] == 0)

        # bob's calls now take HANG_MS: the worker syncing his calendar is stuck
        self.user_faults("bob@example.com", latency_ms=HANG_MS)
        t0 = time.monotonic()
        self.emu.event(c, timed("Stuck", hour(9)))
        self.wait_for("the stuck role logged", lambda: "a role is stuck" in s.output(),
                      timeout=HANG_MS / 1000)
        t_stuck = time.monotonic()
        code, body = self.admin("/readyz")
        self.assertEqual(code, 503, body)
        self.assertIn("has not come round", body)
        line = [ln for ln in s.output().splitlines() if "a role is stuck" in ln][0]
        self.assertIn("worker", line)
        # no ping while it is stuck (systemd would kill and restart serve)
        time.sleep(2.5)
        pings = ns.times("WATCHDOG=1")
        self.assertFalse([t for t in pings if t > t_stuck], "pinged while a worker is stuck")
        gap = time.monotonic() - max(pings)
        print("\nwatchdog: stuck noticed %.1f s after the change (stall_timeout %d s); "
              "no ping for %.1f s" % (t_stuck - t0, STALL_S, gap))
        self.assertGreaterEqual(t_stuck - t0, STALL_S - 1, "stuck before the stall timeout")

        # the call returns: every role comes round, the pings and /readyz come back
        self.user_faults("bob@example.com")
        self.wait_for("pings again", lambda: [t for t in ns.times("WATCHDOG=1") if t > t_stuck],
                      timeout=HANG_MS / 1000 + 30)
        self.wait_for("/readyz back", lambda: self.admin("/readyz")[0] == 200)
        self.assertIn("every role comes round again", s.output())
        self.assertEqual(s.output().count("a role is stuck"), 1, "logged every second")
        self.expect_blocks([a, b], {a: 1, b: 1})
        self.assertIsNone(s.p.poll())
        self.assertEqual(s.stop(), 0)


def full_disk(pid, dbpath):
    """Makes serve's writes fail as on a full disk (test_degrade.py); returns
    what undoes it."""
    sizes = [os.path.getsize(p) for p in (dbpath, dbpath + "-wal") if os.path.exists(p)]
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (min(sizes), hard))
    return lambda: resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


class StaleClaims(ResilienceCase):
    def test_a_write_in_flight_when_the_disk_fills_is_settled_soon_after(self):
        a, b, c = self.three_calendars()
        self.configure(gateway={"commit_timeout_ms": 300})
        s = PipedServe(self)
        self.servers.append(s)
        s.wait_ready()
        self.channels_live(3)
        self.wait_for("idle", lambda: self.db("SELECT count(*) FROM jobs")[0][0] == 0)
        bob = "bob@example.com"
        self.user_faults(bob, latency_ms=SLOW_BATCH_MS)
        batches0 = self.emu.counters()["batch"]
        self.emu.event(a, timed("Written while the disk fills", hour(10)))
        # alice's own block first (no latency), then bob's batch, slow
        self.wait_for("alice's block", lambda: len(self.emu.blocks(b)) == 1)
        self.wait_for("bob's batch in flight", lambda: self.emu.counters()["batch"] > batches0
                      and self.db("SELECT count(*) FROM outbox WHERE claim_owner IS NOT NULL")
                      [0][0] == 1)
        undo = full_disk(s.p.pid, os.path.join(self.dir, "bm.db"))
        try:
            self.wait_for("/readyz failing", lambda: self.admin("/readyz")[0] == 503)
            # the batch answers (Google wrote the block) but nothing can be recorded
            self.wait_for("the drain failed", lambda: "drain after a sync failed" in s.output(),
                          timeout=SLOW_BATCH_MS / 1000 + 10)
            self.assertEqual(len(self.emu.blocks(c)), 1)
            claimed = self.db("SELECT count(*) FROM outbox WHERE claim_until > ?",
                              int(time.time() * 1000))[0][0]
            self.assertEqual(claimed, 1, "the write's claim should outlive the failed commit")
        finally:
            undo()
        self.user_faults(bob)
        t0 = time.monotonic()
        self.wait_for("/readyz back", lambda: self.admin("/readyz")[0] == 200)
        self.wait_for("the write settled", lambda: self.db("SELECT count(*) FROM outbox")[0][0]
                      == 0, timeout=SETTLE_S)
        print("\nstale claims: the write in flight when the disk filled settled %.1f s after "
              "the disk freed (its claim would expire after 300 s)" % (time.monotonic() - t0))
        self.assertEqual(len(self.emu.blocks(c)), 1, "a block doubled")
        self.assertEqual(len(self.emu.blocks(b)), 1)
        self.assertEqual(self.db("SELECT count(*) FROM outbox WHERE claim_owner IS NOT NULL")
                         [0][0], 0)
        self.assertEqual(self.db("SELECT count(*) FROM dead_letters")[0][0], 0)
        self.assertIsNone(s.p.poll())
        self.assertEqual(s.stop(), 0)


class BreakerProbe(ResilienceCase):
    def half_open(self, name):
        con = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        try:
            con.execute("UPDATE accounts SET breaker_failures = 1, breaker_until = ?"
                        " WHERE name = ?", (int(time.time()) - 1, name))
            con.commit()
        finally:
            con.close()

    def probe(self, **faults):
        """bob half-open with faults on his calls, changes to list in his calendar and
        writes due in it; a sync: returns bob's counters and his breaker after it."""
        a, b, c = self.three_calendars()
        self.bm("sync")
        for i in range(20):  # writes for bob's calendar
            self.emu.event(a, timed("A %d" % i, hour(2) + i * 900, minutes=10))
        self.emu.event(c, timed("C", hour(30)))  # and a change to list in it
        self.user_faults("bob@example.com", **faults)
        self.half_open("bob")
        self.emu.reset_counters()
        self.bm("sync", expect=1)
        n = self.user_counters("bob@example.com")
        failures, left = self.db("SELECT breaker_failures, breaker_until - ? FROM accounts"
                                 " WHERE name = 'bob'", int(time.time()))[0]
        return n, failures, left

    def test_a_failing_probe_is_one_call(self):
        n, failures, left = self.probe(error_500=1)
        print("\nhalf-open probe against a failing API: %d calls, breaker open again for %d s"
              % (n["calls"], left))
        self.assertEqual(n["calls"], 1, "the half-open probe made more than one call")
        self.assertEqual(failures, 2)
        self.assertGreater(left, 60)  # the second open period: twice the first
        self.assertEqual(len(self.emu.blocks("alice-personal@group.calendar.google.com")), 20)

    def test_a_probe_that_begins_with_a_batch_sends_one_part(self):
        a, b, c = self.three_calendars()
        self.bm("sync")
        for i in range(20):  # writes due in bob's calendar, and nothing of his to list
            self.emu.event(a, timed("A %d" % i, hour(2) + i * 900, minutes=10))
        self.user_faults("bob@example.com", error_500=1, writes_only=1)
        self.half_open("bob")
        self.emu.reset_counters()
        self.bm("sync", "--account-id", "alice", expect=None)
        n = self.user_counters("bob@example.com")
        failures, left = self.db("SELECT breaker_failures, breaker_until - ? FROM accounts"
                                 " WHERE name = 'bob'", int(time.time()))[0]
        print("\nhalf-open probe that begins with a drain batch: %d batch parts in %d requests,"
              " breaker open again for %d s" % (n["calls"], n["requests"], left))
        self.assertEqual(n["calls"], 1, "the probe's batch carried more than one part")
        self.assertEqual(n["requests"], 1)
        self.assertEqual(failures, 2)
        self.assertGreater(left, 60)
        self.assertEqual(self.db("SELECT count(*) FROM outbox o JOIN calendars c"
                                 " ON c.id = o.target_calendar_id"
                                 " WHERE c.gcal_id = 'bob@example.com'")[0][0], 20)

TIMEOUT_S = 2     # [google] request_timeout of the timeout tests
HANG_FAR_MS = 60000
# 6 attempts of at most the timeout each, the client's backoff between them
# (full jitter, 0.5 s doubling: under 16 s in all) and slack for the sanitizers
BOUND_S = 6 * TIMEOUT_S + 16 + 10


class Timeouts(ResilienceCase):
    def test_a_token_refresh_past_the_timeout_ends_at_it(self):
        self.add_account("alice", "alice@example.com")
        self.bm("calendar", "discover", "--account-id", "alice")
        self.bm("calendar", "enable", "--calendar-id", "alice@example.com")
        # no kept access token: the sync must refresh one
        con = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        con.execute("UPDATE accounts SET access_token_enc = NULL, access_expires = 0")
        con.commit()
        con.close()
        self.write_config(google={"request_timeout": TIMEOUT_S})
        self.emu.faults(token_latency_ms=HANG_FAR_MS)
        t0 = time.monotonic()
        _, err = self.bm("sync", expect=None, timeout=BOUND_S * 2)
        took = time.monotonic() - t0
        print("\ntimeouts: a token refresh answered after %d s gave up after %.1f s "
              "(request_timeout %d s): %s" % (HANG_FAR_MS // 1000, took, TIMEOUT_S,
                                             err.strip().splitlines()[-1]))
        self.assertNotEqual(self.last_rc, 0)
        self.assertLess(took, BOUND_S)
        self.assertIn("token endpoint", err)
        # the account's breaker opened: its calendars wait instead of hammering
        self.assertGreater(self.db("SELECT breaker_until FROM accounts")[0][0], time.time())

    def test_the_renewers_watch_calls_end_at_the_timeout(self):
        a, b, c = self.three_calendars()
        self.configure(google={"request_timeout": TIMEOUT_S})
        self.user_faults("bob@example.com", latency_ms=HANG_FAR_MS)
        t0 = time.monotonic()
        s = Serve(self)
        self.servers.append(s)
        # alice's two channels open although bob's watch hangs
        self.wait_for("alice's channels", lambda: self.db(
            "SELECT count(*) FROM channels WHERE resource_id IS NOT NULL AND stopped_at IS NULL"
        )[0][0] == 2, timeout=BOUND_S)
        self.wait_for("bob's watch given up", lambda: "gave up after" in s.output()
                      and "watch" in s.output(), timeout=BOUND_S)
        took = time.monotonic() - t0
        print("timeouts: bob's hung watch given up %.1f s after serve started" % took)
        self.assertLess(took, BOUND_S)
        self.user_faults("bob@example.com")
        self.wait_for("ready", lambda: self.admin("/readyz")[0] == 200, timeout=BOUND_S)
        self.assertIsNone(s.p.poll())
        self.assertEqual(s.stop(), 0)


def limited(limit):
    """preexec_fn: a command's writes past limit bytes fail as on a full disk."""
    def f():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return f


class ServeAndCron(ResilienceCase):
    def cli(self, *args, limit=None):
        cfg = os.path.join(self.dir, "bm.ini")
        p = subprocess.run([BUSYMIRROR, "-c", cfg, *args], cwd=self.dir, capture_output=True,
                           text=True, timeout=300,
                           preexec_fn=limited(limit) if limit is not None else None)
        self.outputs += [p.stdout, p.stderr]
        return p.returncode, p.stderr

    def test_poll_sync_dlq_and_disable_beside_a_degraded_serve(self):
        a, b, c = self.three_calendars()
        self.configure(gateway={"commit_timeout_ms": 300})
        s = PipedServe(self)
        self.servers.append(s)
        s.wait_ready()
        self.channels_live(3)
        self.wait_for("idle", lambda: self.db("SELECT count(*) FROM jobs")[0][0] == 0)
        # a dead letter: bob's calendar refuses one write for good (403)
        self.user_faults("bob@example.com", error_403=1, writes_only=1, max_errors=1)
        self.emu.event(a, timed("Refused once", hour(7)))
        self.wait_for("a dead letter", lambda: self.db("SELECT count(*) FROM dead_letters")
                      [0][0] == 1)
        self.user_faults("bob@example.com")
        # beside a healthy serve: cron's poll and a sync on the same database
        self.emu.event(a, timed("Before", hour(8)))
        for cmd in (("poll",), ("sync",)):
            rc, err = self.cli(*cmd)
            print("\nhealthy: %s -> %d" % (" ".join(cmd), rc))
            self.assertIn(rc, (0, 75), err)  # 75: serve held a calendar's lease
        self.expect_blocks([b, c], {b: 2, c: 1})
        # the disk fills, for serve and for the commands alike
        db = os.path.join(self.dir, "bm.db")
        limit = min(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))
        undo = full_disk(s.p.pid, db)
        try:
            self.emu.event(a, timed("During", hour(9)))
            self.wait_for("/readyz failing", lambda: self.admin("/readyz")[0] == 503)
            for cmd, want in ((("poll",), (0, 1)), (("sync",), (1,)),
                              (("dlq", "retry", "--all"), (1,)),
                              (("calendar", "disable", "--calendar-id", c), (1,))):
                rc, err = self.cli(*cmd, limit=limit)
                last = err.strip().splitlines()[-1] if err.strip() else ""
                print("full disk: %s -> %d %s" % (" ".join(cmd), rc, last[-200:]))
                self.assertIn(rc, want, err)
                if rc != 0:
                    self.assertIn("disk I/O error", err)
            # nothing half-done: the dead letter stays, the calendar stays enabled
            self.assertEqual(self.db("SELECT count(*) FROM dead_letters")[0][0], 1)
            self.assertEqual(self.db("SELECT enabled FROM calendars WHERE gcal_id = ?", c),
                             [(1,)])
        finally:
            undo()
        self.wait_for("/readyz back", lambda: self.admin("/readyz")[0] == 200)
        rc, err = self.cli("dlq", "retry", "--all")
        self.assertIn(rc, (0, 75), err)
        rc, err = self.cli("poll")
        self.assertIn(rc, (0, 75), err)
        rc, err = self.cli("sync")
        self.assertIn(rc, (0, 75), err)
        # no change lost, none doubled, nothing left claimed
        self.expect_blocks([b, c], {b: 3, c: 3})
        self.wait_for("nothing claimed", lambda: self.db(
            "SELECT count(*) FROM outbox WHERE claim_owner IS NOT NULL")[0][0] == 0
            and self.db("SELECT count(*) FROM jobs WHERE lease_owner IS NOT NULL")[0][0] == 0)
        self.assertEqual(self.db("SELECT count(*) FROM dead_letters")[0][0], 0)
        self.assertIsNone(s.p.poll())
        self.assertEqual(s.stop(), 0)

if __name__ == "__main__":
    unittest.main()
