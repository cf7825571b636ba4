"""busymirror serve end to end: the emulator delivers real push notifications to
the gateway on loopback; blocks must follow through push alone (polling is set
far away), forged notifications enqueue nothing, a burst coalesces, kill -9 and
SIGTERM lose nothing, a database that cannot commit answers 503, a second serve
exits 75, and /healthz, /readyz, /metrics answer on the admin listener."""
import base64
import hashlib
import hmac
import math
import os
import signal
import socket
import sqlite3
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from harness import BUSYMIRROR, Scenario, hour, timed

FAR = 86400  # poll_interval: push alone must do it


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """A `busymirror serve` process of a scenario, its ports and its output."""

    def __init__(self, case):
        self.case = case
        cfg = os.path.join(case.dir, "bm.ini")
        self.log = open(os.path.join(case.dir, "serve.log"), "a")
        self.p = subprocess.Popen([BUSYMIRROR, "-c", cfg, "serve"], cwd=case.dir,
                                  stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.p.poll() is not None:
                self.case.fail("serve exited %s:\n%s" % (self.p.returncode, self.output()))
            try:
                if self.case.admin("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.case.fail("serve not ready in %d s:\n%s" % (timeout, self.output()))

    def output(self):
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
        if not self.log.closed:
            self.log.close()
            self.case.outputs.append(self.output())
        return self.p.returncode


class ServeCase(Scenario):
    def setUp(self):
        super().setUp()
        self.servers = []
        self.port, self.admin_port = free_port(), free_port()

    def tearDown(self):
        for s in self.servers:
            s.stop(signal.SIGKILL)
        super().tearDown()

    def configure(self, poll_interval=FAR, **extra):
        sections = {
            "gateway": {"listen": "127.0.0.1:%d" % self.port,
                        "public_url": "http://127.0.0.1:%d/google/notify" % self.port},
            "admin": {"listen": "127.0.0.1:%d" % self.admin_port},
            "sync": {"poll_interval": poll_interval},
        }
        for sec, kv in extra.items():
            sections.setdefault(sec, {}).update(kv)
        self.write_config(**sections)

    def serve(self):
        s = Serve(self)
        self.servers.append(s)
        s.wait_ready()
        return s

    def admin(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin_port, path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def notify(self, headers):
        req = urllib.request.Request("http://127.0.0.1:%d/google/notify" % self.port, data=b"",
                                     method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def db(self, sql, *args):
        con = sqlite3.connect(os.path.join(self.dir, "bm.db"), timeout=30)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def wait_for(self, what, cond, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.02)
        self.fail("%s: not within %d s" % (what, timeout))

    def expect_blocks(self, cals, want):
        """Every calendar in cals holds exactly want[cal] live blocks."""
        for c in cals:
            self.wait_for("%d blocks in %s" % (want[c], c),
                          lambda c=c: len(self.emu.blocks(c)) == want[c])

    def channels_live(self, n):
        self.wait_for("%d live channels" % n, lambda: self.db(
            "SELECT count(*) FROM channels WHERE resource_id IS NOT NULL AND stopped_at IS NULL"
        )[0][0] == n)


class PushTest(ServeCase):
    def test_created_moved_and_deleted_events_follow_through_push_alone(self):
        a, b, c = self.three_calendars()
        self.configure()
        self.serve()
        self.channels_live(3)
        modes = self.db("SELECT mode FROM sync_state s JOIN calendars c ON c.id = s.calendar_id"
                        " WHERE c.enabled = 1")
        self.assertEqual(sorted(m for (m,) in modes), [1, 1, 1])  # push
        ev = self.emu.event(a, timed("Planning", hour(11)))
        self.expect_blocks([a, b, c], {a: 0, b: 1, c: 1})
        self.emu.patch_event(a, ev["id"], {"start": {"dateTime": "%sZ" % time.strftime(
            "%Y-%m-%dT%H:%M:%S", time.gmtime(hour(14)))}, "end": {"dateTime": "%sZ" % time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(hour(15)))}})
        self.wait_for("the block moved", lambda: all(
            blk["start"].get("dateTime", "").startswith(time.strftime(
                "%Y-%m-%dT%H", time.gmtime(hour(14)))) for blk in self.emu.blocks(b)))
        self.emu.delete_event(a, ev["id"])
        self.expect_blocks([a, b, c], {a: 0, b: 0, c: 0})
        # polled only at the start (never synced before): the rest came by push
        self.assertEqual(self.metric("busymirror_polls_total"), 3)

    def metric(self, name, labels=""):
        for line in self.admin("/metrics")[1].splitlines():
            if line.startswith(name + labels + " ") or line.startswith(name + "{" + labels + "}"):
                return float(line.split()[-1])
        return 0

    def test_forged_notifications_enqueue_nothing(self):
        a, b, c = self.three_calendars()
        self.configure()
        self.serve()
        self.channels_live(3)
        time.sleep(0.5)  # the sync messages are answered; the first syncs are done
        self.wait_for("the queue drained", lambda: self.db("SELECT count(*) FROM jobs")[0][0] == 0)
        chan, res = self.db("SELECT id, resource_id FROM channels LIMIT 1")[0]
        lists = self.emu.counters()["list"]
        good = {"X-Goog-Channel-ID": chan, "X-Goog-Resource-ID": res,
                "X-Goog-Resource-State": "exists", "X-Goog-Message-Number": "9",
                "X-Goog-Channel-Token": "A" * 43}
        self.assertIn(self.notify(good), (401, 403))  # forged token
        unknown = dict(good, **{"X-Goog-Channel-ID": "bm" + "0" * 32})
        self.assertIn(self.notify(unknown), (401, 403, 404))
        missing = {k: v for k, v in good.items() if k != "X-Goog-Resource-State"}
        self.assertEqual(self.notify(missing), 400)
        time.sleep(0.5)
        self.assertEqual(self.db("SELECT count(*) FROM jobs")[0][0], 0)
        self.assertEqual(self.emu.counters()["list"], lists, "a forged notification listed")
        out = "".join(s.output() for s in self.servers)
        self.assertNotIn("A" * 43, out)

    def channel_token(self, channel_id):
        """The token busymirror derives for a channel (core/crypto.h)."""
        with open(os.path.join(self.dir, "bm.key"), "rb") as f:
            key = f.read()
        server = hmac.new(key, b"busymirror channel token v1", hashlib.sha256).digest()
        mac = hmac.new(server, channel_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def test_a_burst_of_notifications_costs_few_listings(self):
        a, b, c = self.three_calendars()
        self.configure(engine={"debounce_ms": 20, "max_delay_ms": 250})
        self.serve()
        self.channels_live(3)
        self.wait_for("idle", lambda: self.db("SELECT count(*) FROM jobs")[0][0] == 0)
        chans = self.db("SELECT ch.id, ch.resource_id, c.gcal_id FROM channels ch"
                        " JOIN calendars c ON c.id = ch.calendar_id WHERE ch.resource_id IS NOT NULL"
                        " AND c.gcal_id IN (?, ?)", a, c)
        heads = [{"X-Goog-Channel-ID": ch, "X-Goog-Resource-ID": res,
                  "X-Goog-Resource-State": "exists", "X-Goog-Channel-Token": self.channel_token(ch)}
                 for ch, res, _ in chans]
        before = self.db("SELECT COALESCE(max(id), 0) FROM sync_log")[0][0]
        t0 = time.time()
        sent = 0
        while time.time() - t0 < 1.0 and sent < 4000:  # bounded in time and count
            h = dict(heads[sent % len(heads)], **{"X-Goog-Message-Number": str(10 + sent)})
            self.assertEqual(self.notify(h), 200)
            sent += 1
        burst = time.time() - t0
        self.wait_for("the queue drained", lambda: self.db("SELECT count(*) FROM jobs")[0][0] == 0)
        bound = math.ceil(burst / 0.25) + 2
        for _, _, cal in chans:
            lists = self.db("SELECT count(*) FROM sync_log l JOIN calendars c"
                            " ON c.id = l.calendar_id WHERE c.gcal_id = ? AND l.id > ?",
                            cal, before)[0][0]
            self.assertGreaterEqual(lists, 1)
            self.assertLessEqual(lists, bound, "%d listings of %s for %d notifications in %.2f s"
                                 % (lists, cal, sent, burst))

    def test_kill_9_during_a_burst_then_restart_leaves_every_calendar_exact(self):
        a, b, c = self.three_calendars()
        self.configure()
        s = self.serve()
        self.channels_live(3)
        for i in range(40):
            self.emu.event(a if i % 2 else c, timed("Busy %d" % i, hour(2) + i * 900, minutes=10))
        time.sleep(0.2)
        s.stop(signal.SIGKILL)
        # changes made while serve is down arrive when it is back (channels stay live)
        self.emu.event(c, timed("While down", hour(30)))
        self.serve()
        # the restart reuses the live channels and catches up
        self.expect_blocks([a, b, c], {a: 21, b: 41, c: 20})
        self.assertEqual(self.db("SELECT count(*) FROM dead_letters")[0][0], 0)

    def test_sigterm_during_work_exits_0_and_loses_nothing(self):
        a, b, c = self.three_calendars()
        self.configure()
        s = self.serve()
        self.channels_live(3)
        for i in range(30):
            self.emu.event(b, timed("Work %d" % i, hour(3) + i * 900, minutes=10))
        time.sleep(0.1)
        self.assertEqual(s.stop(signal.SIGTERM), 0, s.output())
        self.serve()
        self.expect_blocks([a, b, c], {a: 30, b: 0, c: 30})

    def test_sighup_reopens_the_log_file(self):
        self.three_calendars()
        log = os.path.join(self.dir, "busymirror.log")
        self.configure(log={"file": log})
        s = self.serve()
        self.channels_live(3)
        self.wait_for("lines in the log file", lambda: "serving" in open(log).read())
        self.assertEqual(os.stat(log).st_mode & 0o777, 0o600)
        os.rename(log, log + ".1")  # as logrotate does
        s.p.send_signal(signal.SIGHUP)
        self.wait_for("a new log file", lambda: os.path.exists(log) and
                      "log reopened" in open(log).read())
        self.assertIsNone(s.p.poll(), "SIGHUP stopped serve")
        self.assertEqual(os.stat(log).st_mode & 0o777, 0o600)
        self.assertEqual(s.stop(signal.SIGTERM), 0)

    def test_second_serve_on_one_database_exits_75(self):
        self.three_calendars()
        self.configure()
        self.serve()
        cfg = os.path.join(self.dir, "bm.ini")
        p = subprocess.run([BUSYMIRROR, "-c", cfg, "serve"], cwd=self.dir, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 75, p.stderr)
        self.assertIn("another busymirror serve", p.stderr)

    def test_a_database_that_cannot_commit_answers_503(self):
        a, b, c = self.three_calendars()
        self.configure(gateway={"commit_timeout_ms": 300})
        self.serve()
        self.channels_live(3)
        chan, = self.db("SELECT id FROM channels WHERE resource_id IS NOT NULL LIMIT 1")[0]
        con = sqlite3.connect(os.path.join(self.dir, "bm.db"), timeout=30, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")  # nobody else can commit now
        try:
            self.emu.event(a, timed("Blocked", hour(20)))
            # the notification is not stored: answered 503, nothing acknowledged
            self.wait_for("a notification answered 503", lambda: self.refused() > 0)
            self.wait_for("/readyz failing", lambda: self.admin("/readyz")[0] == 503)
        finally:
            con.execute("ROLLBACK")
            con.close()
        # Google retries a 503: the change arrives once the database is back
        self.expect_blocks([b, c], {b: 1, c: 1})
        self.wait_for("/readyz back", lambda: self.admin("/readyz")[0] == 200)

    def refused(self):
        text = self.admin("/metrics")[1]
        n = 0
        for line in text.splitlines():
            if line.startswith("bm_gateway_notifications_total{") and (
                    'result="not_stored"' in line or 'result="timeout"' in line):
                n += int(float(line.split()[-1]))
        return n

    def test_admin_listener_serves_health_readiness_and_metrics(self):
        a, b, c = self.three_calendars()
        self.configure()
        self.serve()
        self.channels_live(3)
        self.emu.event(a, timed("Metric", hour(5)))
        self.expect_blocks([b], {b: 1})
        self.assertEqual(self.admin("/healthz")[0], 200)
        self.assertEqual(self.admin("/readyz")[0], 200)
        status, text = self.admin("/metrics")
        self.assertEqual(status, 200)
        for name in ("busymirror_jobs_total", "busymirror_job_latency_seconds_bucket",
                     "busymirror_queue_jobs", "busymirror_api_calls_total",
                     "busymirror_channel_expiry_seconds", "busymirror_calendars"):
            self.assertIn(name, text)
        self.assertIn('busymirror_calendars{mode="push"} 3', text)
        # the public listener serves only the notification path and /healthz
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=5):
                self.fail("/metrics on the public listener")
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 404)


class PollTest(ServeCase):
    def test_without_public_url_calendars_are_polled(self):
        a, b, c = self.three_calendars()
        self.write_config(admin={"listen": "127.0.0.1:%d" % self.admin_port},
                          sync={"poll_interval": 1})
        self.serve()
        self.emu.event(c, timed("Polled", hour(7)))
        self.expect_blocks([a, b], {a: 1, b: 1})
        self.assertEqual(self.emu.counters()["watch"], 0)


if __name__ == "__main__":
    unittest.main()
