"""Shared helpers of the serve benchmarks (bench/serve/*.py): a gcal-emulator and
a `busymirror serve` (or `busymirror sync`) of a RELEASE build on 127.0.0.1, in a
temporary folder, with real push from the emulator to the gateway.

Reuses tests/scenario/harness.py (the Emulator class and its admin helpers).
Nothing here is part of the test suite; every loop is bounded.
"""
import base64
import hashlib
import hmac
import http.client
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "scenario"))
import harness  # noqa: E402

FAR = 86400  # poll_interval: push alone must do it


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_build_arg(ap):
    ap.add_argument("--build", default=os.environ.get("BM_BENCH_BUILD", "build-release"),
                    help="a release build tree (meson --buildtype=release)")


def percentile(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(1, math.ceil(p / 100.0 * len(s)))
    return s[k - 1]


def rss_kib(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid):
    """user + system CPU seconds of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_ms(rfc3339):
    """'2026-12-01T10:00:00.123Z' -> epoch milliseconds."""
    main, _, frac = rfc3339.rstrip("Z").partition(".")
    t = time.strptime(main, "%Y-%m-%dT%H:%M:%S")
    import calendar
    return calendar.timegm(t) * 1000 + (int((frac + "000")[:3]) if frac else 0)


class World:
    """An emulator, busymirror's folder and config; accounts and calendars."""

    def __init__(self, build, emulator_args=()):
        build = os.path.abspath(build)
        harness.EMULATOR = os.path.join(build, "emulator", "gcal-emulator")
        self.bm_bin = os.path.join(build, "cli", "busymirror")
        for b in (harness.EMULATOR, self.bm_bin):
            if not os.path.exists(b):
                raise SystemExit("%s missing: build a release tree first (meson setup "
                                 "build-release --buildtype=release && ninja -C build-release)" % b)
        self.dir = tempfile.mkdtemp(prefix="bm_bench_serve_")
        self.emu = harness.Emulator(self.dir, *emulator_args)
        self.port, self.admin_port = free_port(), free_port()
        self.serve_proc = None
        self.cfg = os.path.join(self.dir, "bm.ini")

    # -- setup --
    def config(self, push=True, **sections):
        e = self.emu.base
        cfg = {
            "store": {"path": "bm.db", "key_file": "bm.key"},
            "google": {"client_id": harness.CLIENT_ID, "client_secret": harness.CLIENT_SECRET,
                       "api_base_url": e + "/calendar/v3", "batch_url": e + "/batch/calendar/v3",
                       "token_url": e + "/token", "auth_url": e + "/o/oauth2/v2/auth",
                       "user_quota": 0},
            "gateway": {"listen": "127.0.0.1:%d" % self.port},
            "admin": {"listen": "127.0.0.1:%d" % self.admin_port},
            "sync": {"poll_interval": FAR, "future_days": 90},
            "log": {"level": "warn"},
        }
        if push:
            cfg["gateway"]["public_url"] = "http://127.0.0.1:%d/google/notify" % self.port
        for sec, kv in sections.items():
            cfg.setdefault(sec, {}).update(kv)
        with open(os.open(self.cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            for sec, kv in cfg.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))

    def bm(self, *args, timeout=1800):
        p = subprocess.run([self.bm_bin, "-c", self.cfg, *args], cwd=self.dir,
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise SystemExit("busymirror %s -> %d\n%s\n%s" % (" ".join(args), p.returncode,
                                                              p.stdout, p.stderr[-3000:]))
        return p.stdout

    def account(self, name, extra_calendars=(), role=None):
        """A user <name>@example.com with a busymirror account; its primary and the
        given secondary calendar ids enabled (with --role when given). Returns the ids."""
        email = name + "@example.com"
        self.emu.user(email, refresh_token="refresh-" + name)
        for cal in extra_calendars:
            self.emu.calendar(email, cal, cal.split("@")[0])
        path = os.path.join(self.dir, name + ".tok")
        with open(path, "w") as f:
            f.write("refresh-" + name + "\n")
        self.bm("account", "add", "--name", name, "--refresh-token-file", path)
        self.bm("calendar", "discover", "--account-id", name)
        cals = [email] + list(extra_calendars)
        for c in cals:
            args = ["calendar", "enable", "--calendar-id", c]
            if role:
                args += ["--role", role]
            self.bm(*args)
        return cals

    # -- serve --
    def serve(self, timeout=30):
        self.serve_log = open(os.path.join(self.dir, "serve.log"), "a")
        self.serve_proc = subprocess.Popen([self.bm_bin, "-c", self.cfg, "serve"], cwd=self.dir,
                                           stdout=self.serve_log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.serve_proc.poll() is not None:
                raise SystemExit("serve exited %s: see %s" % (self.serve_proc.returncode,
                                                              self.serve_log.name))
            try:
                if self.admin("/readyz")[0] == 200:
                    return self.serve_proc
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("serve not ready in %d s" % timeout)

    def admin(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin_port, path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def db(self, sql, *args):
        con = sqlite3.connect(os.path.join(self.dir, "bm.db"), timeout=30)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def wait_for(self, what, cond, timeout=60, step=0.02):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(step)
        raise SystemExit("%s: not within %d s" % (what, timeout))

    def channels_live(self, n):
        self.wait_for("%d live channels" % n, lambda: self.db(
            "SELECT count(*) FROM channels WHERE resource_id IS NOT NULL AND stopped_at IS NULL"
        )[0][0] >= n)

    def idle(self, timeout=120):
        """The queue is empty and no block write is pending."""
        self.wait_for("the queue drained", lambda: self.db(
            "SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM outbox)")[0][0] == 0,
            timeout=timeout, step=0.05)

    def channel_token(self, channel_id):
        """The token busymirror derives for a channel (core/crypto.h)."""
        with open(os.path.join(self.dir, "bm.key"), "rb") as f:
            key = f.read()
        server = hmac.new(key, b"busymirror channel token v1", hashlib.sha256).digest()
        mac = hmac.new(server, channel_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def channel_heads(self):
        """[(calendar gcal id, headers of a valid notification without a number)]."""
        rows = self.db("SELECT ch.id, ch.resource_id, c.gcal_id FROM channels ch"
                       " JOIN calendars c ON c.id = ch.calendar_id"
                       " WHERE ch.resource_id IS NOT NULL AND ch.stopped_at IS NULL")
        return [(cal, {"X-Goog-Channel-ID": ch, "X-Goog-Resource-ID": res,
                       "X-Goog-Resource-State": "exists",
                       "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/x",
                       "X-Goog-Channel-Token": self.channel_token(ch),
                       "User-Agent": "APIs-Google"})
                for ch, res, cal in rows]

    def stop(self):
        if self.serve_proc is not None and self.serve_proc.poll() is None:
            self.serve_proc.send_signal(signal.SIGTERM)
            try:
                self.serve_proc.wait(30)
            except subprocess.TimeoutExpired:
                self.serve_proc.kill()
                self.serve_proc.wait()
        self.emu.stop()

    def cleanup(self, keep=False):
        self.stop()
        if keep:
            print("  (work folder kept: %s)" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class Notifier:
    """Keep-alive HTTP/1.1 connection to the gateway; sends notifications."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def send(self, headers):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.conn.request("POST", "/google/notify", body=b"", headers=headers)
                r = self.conn.getresponse()
                r.read()
                return r.status
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        return 0

    def close(self):
        if self.conn is not None:
            self.conn.close()


def _blast_one(port, mine, n_mine, rate_mine, t0, deadline, first_number, out):
    note = Notifier(port)
    sent = bad = 0
    counts = {}
    number = first_number
    while sent < n_mine and time.time() < deadline:
        if rate_mine:
            d = t0 + sent / rate_mine - time.time()
            if d > 0:
                time.sleep(d)
        cal, h = mine[sent % len(mine)]
        number += 1
        status = note.send(dict(h, **{"X-Goog-Message-Number": str(number)}))
        sent += 1
        counts[cal] = counts.get(cal, 0) + 1
        if status != 200:
            bad += 1
    note.close()
    out.put((sent, bad, counts))


def blast(port, heads, total, senders, max_seconds, rate=None, first_number=1000):
    """Sends `total` notifications over `heads` from `senders` processes (not
    threads: one GIL caps Python near 1,300 requests/s here; each process owns a
    share of the channels, so message numbers rise per channel), at most
    max_seconds, at `rate` per second overall when given. Returns
    (sent, non-200 answers, seconds, sent per calendar)."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    t0 = time.time() + 0.2  # every process starts on the same clock
    deadline = t0 + max_seconds
    ps = []
    for k in range(senders):
        mine = [h for i, h in enumerate(heads) if i % senders == k] or heads
        n_mine = total // senders + (1 if k < total % senders else 0)
        ps.append(ctx.Process(target=_blast_one, args=(
            port, mine, n_mine, rate / senders if rate else None, t0, deadline, first_number, out)))
    for p in ps:
        p.start()
    sent = bad = 0
    per_cal = {}
    for _ in ps:
        s, b, counts = out.get(timeout=max_seconds + 60)
        sent += s
        bad += b
        for c, n in counts.items():
            per_cal[c] = per_cal.get(c, 0) + n
    for p in ps:
        p.join()
    return sent, bad, max(time.time() - t0, 1e-6), per_cal
