"""Scenario-test harness: the real gcal-emulator and the real busymirror binary
on 127.0.0.1, each test in its own temporary folder.

Binaries come from the environment (set by tests/scenario/meson.build):
GCAL_EMULATOR and BUSYMIRROR.
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

EMULATOR = os.environ.get("GCAL_EMULATOR", "")
BUSYMIRROR = os.environ.get("BUSYMIRROR", "")
CLIENT_ID = "emu-client-id"
CLIENT_SECRET = "emu-client-secret"


class Emulator:
    """A gcal-emulator process on a free loopback port."""

    def __init__(self, workdir, *extra):
        self.workdir = workdir
        port_file = os.path.join(workdir, "emulator.port")
        self.log = open(os.path.join(workdir, "emulator.log"), "wb")
        self.proc = subprocess.Popen(
            [EMULATOR, "--bind", "127.0.0.1", "--port", "0", "--port-file", port_file, *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(500):  # bounded: 10 s
            if os.path.exists(port_file):
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    break
            if self.proc.poll() is not None:
                raise RuntimeError("gcal-emulator exited: see " + self.log.name)
            time.sleep(0.02)
        else:
            raise RuntimeError("gcal-emulator did not start")
        self.base = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    # -- admin API --
    def call(self, method, path, body=None, expect=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if expect and status not in expect:
            raise AssertionError("%s %s -> %d %s" % (method, path, status, text))
        return json.loads(text) if text.strip() else {}

    def user(self, email, refresh_token=None, tz="UTC"):
        body = {"email": email, "timeZone": tz}
        if refresh_token:
            body["refresh_token"] = refresh_token
        return self.call("POST", "/_emulator/users", body)

    def calendar(self, email, cal_id, summary, tz="UTC"):
        return self.call("POST", "/_emulator/users/%s/calendars" % q(email),
                         {"id": cal_id, "summary": summary, "timeZone": tz})

    def event(self, cal, body):
        return self.call("POST", "/_emulator/calendars/%s/events" % q(cal), body)

    def patch_event(self, cal, event_id, body):
        return self.call("PATCH", "/_emulator/calendars/%s/events/%s" % (q(cal), q(event_id)), body)

    def delete_event(self, cal, event_id):
        return self.call("DELETE", "/_emulator/calendars/%s/events/%s" % (q(cal), q(event_id)))

    def dump(self, cal):
        return self.call("GET", "/_emulator/calendars/%s/dump" % q(cal))["items"]

    def blocks(self, cal, live=True):
        """busymirror's blocks in cal (the marker is set), live ones only by default."""
        return [ev for ev in self.dump(cal)
                if "busymirror" in ev.get("extendedProperties", {}).get("private", {})
                and not (live and ev.get("status") == "cancelled")]

    def counters(self):
        return self.call("GET", "/_emulator/counters")

    def reset_counters(self):
        self.call("POST", "/_emulator/counters/reset", {})

    def faults(self, **kw):
        self.call("POST", "/_emulator/faults", kw)


def q(s):
    return urllib.parse.quote(s, safe="")


def db_rows(test, sql, *args):
    """Rows of one query on the test's database (bm.db in test.dir)."""
    db = sqlite3.connect(os.path.join(test.dir, "bm.db"))
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def day(offset_days):
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + offset_days * 86400))


def timed(summary, start, minutes=60, tz=None, **extra):
    """A timed event body starting at epoch `start`."""
    ev = {"summary": summary,
          "start": {"dateTime": rfc3339(start)},
          "end": {"dateTime": rfc3339(start + minutes * 60)}}
    if tz:
        ev["start"]["timeZone"] = tz
        ev["end"]["timeZone"] = tz
    ev.update(extra)
    return ev


def hour(n, base=None):
    """Epoch of a whole hour n hours after the next midnight UTC (stable, in the window)."""
    now = int(time.time()) if base is None else base
    return (now // 86400 + 1) * 86400 + n * 3600


class Scenario(unittest.TestCase):
    """Starts an emulator and gives helpers to run busymirror against it."""

    emulator_args = ()

    def setUp(self):
        if not EMULATOR or not BUSYMIRROR:
            self.fail("GCAL_EMULATOR and BUSYMIRROR must name the binaries")
        self.dir = tempfile.mkdtemp(prefix="bm_scenario_")
        self.emu = Emulator(self.dir, *self.emulator_args)
        self.config_extra = {}
        self.outputs = []

    def tearDown(self):
        self.emu.stop()
        # Secrets never reach busymirror's output, whatever the test did.
        for text in self.outputs:
            for secret in ("refresh-", CLIENT_SECRET):
                self.assertNotIn(secret, text, "a secret reached busymirror's output")
        if self._outcome_ok():
            shutil.rmtree(self.dir, ignore_errors=True)

    def _outcome_ok(self):
        res = getattr(self, "_outcome", None)
        errors = getattr(res, "errors", None) or getattr(getattr(res, "result", None), "errors", [])
        return not any(e for _, e in errors if e) if isinstance(errors, list) else True

    def write_config(self, **sections):
        cfg = {
            "store": {"path": "bm.db", "key_file": "bm.key"},
            "google": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                       "api_base_url": self.emu.base + "/calendar/v3",
                       "batch_url": self.emu.base + "/batch/calendar/v3",
                       "token_url": self.emu.base + "/token",
                       "auth_url": self.emu.base + "/o/oauth2/v2/auth",
                       "user_quota": 0},  # pacing has a test of its own
            "log": {"level": "info"},
        }
        for sec, kv in list(self.config_extra.items()) + list(sections.items()):
            cfg.setdefault(sec, {}).update(kv)
        path = os.path.join(self.dir, "bm.ini")
        # it holds the client secret: 0600, as the README asks
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            for sec, kv in cfg.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
        return path

    def bm(self, *args, expect=0, timeout=600):
        """Runs busymirror; asserts its exit code (unless expect is None); keeps it in
        self.last_rc; returns (stdout, stderr)."""
        cfg = os.path.join(self.dir, "bm.ini")
        if not os.path.exists(cfg):
            self.write_config()
        p = subprocess.run([BUSYMIRROR, "-c", cfg, *args], cwd=self.dir, capture_output=True,
                           text=True, timeout=timeout)
        self.outputs += [p.stdout, p.stderr]
        self.last_rc = p.returncode
        if expect is not None:
            self.assertEqual(p.returncode, expect,
                             "busymirror %s -> %d\nstdout: %s\nstderr: %s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p.stdout, p.stderr

    def bm_proc(self, *args):
        cfg = os.path.join(self.dir, "bm.ini")
        return subprocess.Popen([BUSYMIRROR, "-c", cfg, *args], cwd=self.dir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def add_account(self, name, email, tz="UTC"):
        token = "refresh-" + name
        self.emu.user(email, refresh_token=token, tz=tz)
        path = os.path.join(self.dir, name + ".token")
        with open(path, "w") as f:
            f.write(token + "\n")
        self.bm("account", "add", "--name", name, "--refresh-token-file", path)
        return token

    def enabled_accounts(self, *accounts):
        """Each (name, email): the account added, its calendars discovered and its
        primary enabled in the default group."""
        for name, email in accounts:
            self.add_account(name, email)
        for name, _ in accounts:
            self.bm("calendar", "discover", "--account-id", name)
        for _, email in accounts:
            self.bm("calendar", "enable", "--calendar-id", email)

    def three_calendars(self):
        """alice (primary + personal) and bob (primary), all enabled in one group."""
        self.add_account("alice", "alice@example.com")
        self.emu.calendar("alice@example.com", "alice-personal@group.calendar.google.com",
                          "Alice personal")
        self.add_account("bob", "bob@example.com")
        self.bm("calendar", "discover", "--account-id", "alice")
        self.bm("calendar", "discover", "--account-id", "bob")
        cals = ["alice@example.com", "alice-personal@group.calendar.google.com",
                "bob@example.com"]
        for c in cals:
            self.bm("calendar", "enable", "--calendar-id", c)
        return cals

    def three_meetings(self):
        """three_calendars with a meeting in each (Planning in alice's primary,
        Dentist in her personal calendar, Standup in bob's), synced."""
        a, b, c = self.three_calendars()
        self.planning = self.emu.event(a, timed("Planning", hour(11)))
        self.standup = self.emu.event(c, timed("Standup", hour(16)))
        self.mine = self.emu.event(b, timed("Dentist", hour(13)))
        self.bm("sync")
        return a, b, c
