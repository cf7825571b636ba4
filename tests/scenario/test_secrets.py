"""No secret in any output, none in clear at rest, every file private.

One busymirror world with distinctive secrets (a client secret and refresh
tokens holding a quote, a backslash, '%', '&', '=', '+' and '/'; one token that
extends another; one issued by the emulator's consent flow), run through every
command of the binary, its error paths and `serve` with push at log level debug.
Every secret busymirror handles is collected: the ones the test chose, every
access token, refresh token and channel token the emulator issued or was given
(its --db file keeps them), the authorization codes of the logins and the
channel tokens derived from the key file. All output (stdout, stderr, the log
file, /metrics, /readyz, /healthz) is searched for each of them whole, URL- and
JSON-escaped, and for any 16-character fragment. The database, its -wal and
-shm are read raw while serve runs and after: no refresh token or client secret
in clear. The children run under umask 000: every file busymirror creates is
0600, every directory 0700.
"""
import base64
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import stat
import subprocess
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from harness import BUSYMIRROR, Scenario, hour, q, timed
from test_login import Login, get
from test_serve import free_port

FRAG = 16  # any fragment this long of a secret is a leak

# Distinctive values; none shares a 16-character run with another or with
# anything busymirror prints on its own.
CLIENT_SECRET = 'GOCSPX-cs"Qk\\7%2F+&=Zt9vW1xN4mB6rY2p'
RT_ALICE = '1//0aliceRT"Wq\\uX%3D+&=/Lm8Kp2Jd5Hs7Fg3'
RT_BOB = "1//0bobRefreshTok-Lx9Vc4Nb6Mq1Wz8Ty5Ru"
RT_DAVE = RT_BOB + "DaveTailNotBobs-Kq3Pj7"  # extends bob's: the longest match must win
WRONG_SECRET = "GOCSPX-wrongOne-Hh4Gg5Ff6Dd7Ss8Aa9"
# token files account add refuses: a blank, two lines, too long
BAD_TOKENS = ["1//0badTokenWith Blank-Qq7Ww8Ee9Rr0",
              "1//0firstLineTok-Tt1Yy2Uu3Ii4\n1//0secondLineTok-Oo5Pp6Hh7Jj8",
              "1//0tooLong-" + "".join("Kk%03dLl" % i for i in range(80))]

A = "alice@example.com"
A2 = "alice-personal@group.calendar.google.com"
B = "bob@example.com"
C = "carol@example.com"
D = "dave@example.com"

# files the test or the emulator make in the test folder (not busymirror's)
NOT_OURS = {"bm.ini", "bad.ini", "emulator.log", "emulator.port", "emu.db", "emu.db-wal",
            "emu.db-shm", "emu.db-journal", "alice.token", "bob.token", "dave.token",
            "bad.token", "serve.out", "serve.err"}


def forms(secret):
    """The ways a secret could be written out: whole, URL- and JSON-escaped."""
    out = {secret, q(secret), urllib.parse.quote_plus(secret), json.dumps(secret)[1:-1],
           json.dumps(secret, ensure_ascii=True)[1:-1]}
    return {f for f in out if f}


class SecretsTest(Scenario):
    @property
    def emulator_args(self):
        return ("--client-secret", CLIENT_SECRET, "--db", os.path.join(self.dir, "emu.db"))

    def setUp(self):
        # the children inherit a permissive umask: modes must come from busymirror
        self.old_umask = os.umask(0)
        super().setUp()
        self.tmp = os.path.join(self.dir, "tmp")  # TMPDIR of every child
        os.mkdir(self.tmp, 0o700)
        self.env = dict(os.environ, TMPDIR=self.tmp)
        self.chosen = {CLIENT_SECRET, RT_ALICE, RT_BOB, RT_DAVE, WRONG_SECRET}
        self.issued = set()  # what the emulator issued or was given
        self.procs = []
        self.texts = []  # (where, text) of every output
        self.port, self.admin_port = free_port(), free_port()
        self.config_extra = {
            "google": {"client_secret": CLIENT_SECRET},
            "log": {"level": "debug"},
            "gateway": {"listen": "127.0.0.1:%d" % self.port,
                        "public_url": "http://127.0.0.1:%d/google/notify" % self.port},
            "admin": {"listen": "127.0.0.1:%d" % self.admin_port},
            "sync": {"poll_interval": 86400},
        }
        self.write_config()

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        try:
            super().tearDown()
        finally:
            os.umask(self.old_umask)

    # ------------------------------------------------------------ helpers

    def bm(self, *args, expect=0, timeout=600, config=None):
        cfg = config or os.path.join(self.dir, "bm.ini")
        p = subprocess.run([BUSYMIRROR, "-c", cfg, *args], cwd=self.dir, capture_output=True,
                           text=True, timeout=timeout, env=self.env)
        # (not self.outputs: the harness's own check finds "refresh-" in --help)
        self.texts += [(" ".join(args) + " (stdout)", p.stdout),
                       (" ".join(args) + " (stderr)", p.stderr)]
        self.last_rc = p.returncode
        self.assertNotIn("Sanitizer", p.stderr)
        if expect is not None:
            self.assertEqual(p.returncode, expect, "busymirror %s -> %d\nstdout: %s\nstderr: %s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr))
        self.harvest()
        return p.stdout, p.stderr

    def bm_proc(self, *args):  # account login (test_login.Login) and serve
        cfg = os.path.join(self.dir, "bm.ini")
        p = subprocess.Popen([BUSYMIRROR, "-c", cfg, *args], cwd=self.dir, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def token_file(self, name, token):
        path = os.path.join(self.dir, name + ".token")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(token + "\n")
        return path

    def harvest(self):
        """Every token the emulator holds now (revocations and stops delete rows:
        this runs after every command) and every channel token busymirror derives."""
        con = sqlite3.connect(os.path.join(self.dir, "emu.db"), timeout=30)
        try:
            for (tok,) in con.execute("SELECT token FROM tokens"):
                self.issued.add(tok)
            for (tok,) in con.execute("SELECT token FROM channels WHERE token IS NOT NULL"):
                self.issued.add(tok)
        finally:
            con.close()
        key_path = os.path.join(self.dir, "bm.key")
        db_path = os.path.join(self.dir, "bm.db")
        if os.path.exists(key_path) and os.path.exists(db_path):
            with open(key_path, "rb") as f:
                key = f.read()
            # the key itself, as text, is a secret too
            self.issued |= {key.hex(), base64.b64encode(key).decode(),
                            base64.urlsafe_b64encode(key).rstrip(b"=").decode()}
            server = hmac.new(key, b"busymirror channel token v1", hashlib.sha256).digest()
            con = sqlite3.connect(db_path, timeout=30)
            try:
                ids = [i for (i,) in con.execute("SELECT id FROM channels")]
            finally:
                con.close()
            for i in ids:
                mac = hmac.new(server, i.encode(), hashlib.sha256).digest()
                self.issued.add(base64.urlsafe_b64encode(mac).rstrip(b"=").decode())

    def secrets(self):
        s = self.chosen | self.issued
        self.assertTrue(all(len(x) >= FRAG for x in s), [x for x in s if len(x) < FRAG])
        return s

    def fragments(self, secrets):
        """{needle: secret} for every form of every secret and every 16-character
        fragment of each form."""
        out = {}
        for s in secrets:
            for f in forms(s):
                out[f] = s
                for i in range(len(f) - FRAG + 1):
                    out.setdefault(f[i:i + FRAG], s)
        return out

    def leaks(self, where, data, secrets):
        """Where a secret (or a fragment of it) occurs in data (str or bytes)."""
        needles = self.fragments(secrets)
        if isinstance(data, bytes):
            needles = {k.encode("utf-8"): v for k, v in needles.items()}
        found = set()
        grams = {k for k in needles if len(k) == FRAG}
        for i in range(len(data) - FRAG + 1):
            g = data[i:i + FRAG]
            if g in grams:
                found.add((where, needles[g], g if isinstance(g, str) else g.decode(errors="replace")))
        # whole forms shorter than a fragment cannot exist (secrets are >= 16)
        return found

    def admin(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin_port, path),
                                        timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait_for(self, what, cond, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.05)
        self.fail("%s: not within %d s" % (what, timeout))

    def db(self, sql, *args):
        con = sqlite3.connect(os.path.join(self.dir, "bm.db"), timeout=30)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def raw_store(self):
        """The raw bytes of the database, its -wal and -shm (those that exist)."""
        out = {}
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = os.path.join(self.dir, "bm.db" + suffix)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    out["bm.db" + suffix] = f.read()
        self.assertIn("bm.db", out)
        return out

    def check_store_clear(self, when):
        """No refresh token or client secret (nor a fragment) in the raw store,
        nor any other secret (access tokens are sealed too, channel tokens derived)."""
        at_rest = self.secrets()
        found = set()
        for name, data in self.raw_store().items():
            found |= self.leaks("%s (%s)" % (name, when), data, at_rest)
        self.assertEqual(found, set(), "secrets in clear at rest")

    def login(self, name, email):
        p = Login(self, "--name", name, "--login-hint", email)
        url = p.url()
        status, headers, body = get(url)
        self.assertEqual(status, 302, body)
        loc = headers["location"]
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)["code"][0]
        self.chosen.add(code)
        # the real code with a forged state first: refused, and the page says nothing of it
        u = urllib.parse.urlsplit(loc)
        status, _, body = get("http://%s/?code=%s&state=forged-state-Zz9" % (u.netloc, q(code)))
        self.assertEqual(status, 400, body)
        self.texts.append(("login page (forged state)", body))
        status, _, body = get(loc)
        self.assertEqual(status, 200, body)
        self.texts.append(("login page", body))
        rc, out, err = p.wait()
        self.texts += [("account login (stdout)", out), ("account login (stderr)", err)]
        self.assertEqual(rc, 0, err)
        self.harvest()
        return out, err

    # --------------------------------------------------------------- test

    def test_every_command_and_serve_keep_every_secret_out_of_output_and_at_rest(self):
        e = self.emu
        e.user(A, refresh_token=RT_ALICE)
        e.calendar(A, A2, "Alice personal")
        e.user(B, refresh_token=RT_BOB)
        e.user(C)  # logs in through the consent flow
        e.user(D, refresh_token=RT_DAVE)

        # --- no account yet, help, config
        self.bm("--help")
        self.bm("--version")
        for cmd in ("serve", "sync", "reset", "cleanup", "poll", "account", "calendar", "status",
                    "dlq", "undo", "audit", "log", "config"):
            self.bm(cmd, "--help")
        out, _ = self.bm("config", "check")
        self.assertIn("client_secret", out)
        self.bm("config", "keys")

        # --- accounts: a token file, a token that extends another, a login
        self.bm("account", "add", "--name", "alice", "--refresh-token-file",
                self.token_file("alice", RT_ALICE), "--email", A)
        self.bm("account", "add", "--name", "bob", "--refresh-token-file",
                self.token_file("bob", RT_BOB))
        self.bm("account", "add", "--name", "dave", "--refresh-token-file",
                self.token_file("dave", RT_DAVE))
        self.login("carol", C)
        self.bm("account", "list")
        self.bm("account", "list", "--json")
        self.bm("account", "set", "--account-id", "alice", "--priority", "60")

        # --- calendars
        for name in ("alice", "bob", "carol", "dave"):
            self.bm("calendar", "discover", "--account-id", name)
        self.bm("calendar", "list")
        self.bm("calendar", "list", "--json")
        for cal in (A, A2, B, C, D):
            self.bm("calendar", "enable", "--calendar-id", cal)

        # --- syncs, every flavour, with events in each calendar
        for i, cal in enumerate((A, A2, B, C, D)):
            e.event(cal, timed("Meeting %d" % i, hour(9 + i)))
        self.bm("sync", "--dry-run", "--verbose")
        self.bm("sync", "--verbose")
        self.bm("sync", "--force-full", "--verbose")
        self.assertEqual(len(self.emu.blocks(B)), 4)
        self.bm("status")
        self.bm("status", "--json")
        self.bm("log")
        self.bm("log", "--json", "--calendar-id", A)

        # --- expired access tokens: a refresh mid-run
        for u in (A, B, C, D):
            e.call("POST", "/_emulator/users/%s/expire_access_tokens" % q(u), {})
        e.event(A, timed("After expiry", hour(20)))
        self.bm("sync", "--verbose")

        # --- reset, undo, regroup, disable, cleanup, audit
        self.bm("reset", "--calendar-id", B, "--dry-run")
        self.bm("reset", "--calendar-id", B, "--confirm")
        self.bm("audit", "list")
        self.bm("audit", "list", "--json")
        self.bm("undo", "--last")
        self.bm("calendar", "enable", "--calendar-id", D, "--group", "other")
        self.bm("calendar", "enable", "--calendar-id", D, "--group", "default")
        self.bm("calendar", "disable", "--calendar-id", A2)
        self.bm("calendar", "enable", "--calendar-id", A2)
        self.bm("cleanup", "--dry-run")
        self.bm("cleanup")
        self.bm("poll", expect=None)
        self.assertIn(self.last_rc, (0, 1))

        # --- dead letters: permanent 403s on writes
        e.faults(error_403=1.0, writes_only=1)
        e.event(B, timed("Blocked write", hour(22)))
        self.bm("sync", "--verbose", expect=None)
        e.faults()
        out, _ = self.bm("dlq", "list")
        self.bm("dlq", "list", "--json")
        self.assertTrue(self.db("SELECT count(*) FROM dead_letters")[0][0] > 0,
                        "no dead letter to retry")
        self.bm("dlq", "retry", "--all", expect=None)
        self.bm("status", expect=None)

        # --- error paths
        self.bm("sync", "--bogus", expect=2)
        self.bm("frobnicate", expect=2)
        self.bm("account", "add", "--name", "bad name!", "--refresh-token-file",
                self.token_file("bad", RT_ALICE), expect=2)
        self.bm("account", "add", "--name", "alice", "--refresh-token-file",
                self.token_file("bad", RT_ALICE), expect=None)
        self.bm("calendar", "list", "--account-id", "nobody", expect=None)
        for i, tok in enumerate(BAD_TOKENS):
            self.chosen |= set(tok.split("\n"))
            self.bm("account", "add", "--name", "bad%d" % i, "--refresh-token-file",
                    self.token_file("bad", tok), expect=2)
        # a broken configuration around the secret's line
        bad = os.path.join(self.dir, "bad.ini")
        with open(os.open(bad, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write("[google]\nclient_secret = %s\nclient_id = x\nbogus_key = %s\n"
                    "[store]\npath = bm.db\nkey_file = bm.key\n" % (CLIENT_SECRET, RT_BOB))
        self.bm("config", "check", config=bad, expect=78)
        with open(os.open(bad, os.O_WRONLY | os.O_TRUNC, 0o600), "w") as f:
            f.write("[google]\nclient_secret %s\n" % CLIENT_SECRET)
        self.bm("status", config=bad, expect=78)
        # the token endpoint refuses the client (a wrong secret): say so, not the secret
        with open(os.path.join(self.dir, "bm.ini")) as f:
            good_ini = f.read()
        with open(os.open(bad, os.O_WRONLY | os.O_TRUNC, 0o600), "w") as f:
            f.write(good_ini.replace(CLIENT_SECRET, WRONG_SECRET))
        for u in (A, B):
            e.call("POST", "/_emulator/users/%s/expire_access_tokens" % q(u), {})
        self.bm("sync", "--verbose", config=bad, expect=None)
        self.assertNotEqual(self.last_rc, 0)
        # a revoked refresh token: the account needs login
        self.harvest()
        e.call("POST", "/_emulator/users/%s/revoke" % q(D), {})
        e.event(D, timed("After revoke", hour(23)))
        self.bm("sync", "--verbose", expect=1)
        out, _ = self.bm("account", "list")
        self.assertIn("needs-login", out)
        self.bm("status", expect=1)
        self.bm("status", "--json", expect=1)
        # a new login fixes it (the emulator issues a new refresh token)
        self.login("dave", D)
        # dead letters left for serve's time
        e.faults(error_403=1.0, writes_only=1, max_errors=2)
        e.event(C, timed("Dead letter", hour(25)))
        self.bm("sync", "--verbose", expect=None)
        e.faults()
        self.assertTrue(self.db("SELECT count(*) FROM dead_letters")[0][0] > 0)
        self.check_store_clear("after the commands")

        # --- serve with push, everything at debug, a log file
        log_file = os.path.join(self.dir, "serve.log")
        self.write_config(log={"file": log_file})
        for u in (A, B, C, D):  # serve refreshes them: a debug line
            e.call("POST", "/_emulator/users/%s/expire_access_tokens" % q(u), {})
        cfg = os.path.join(self.dir, "bm.ini")
        s_out = open(os.path.join(self.dir, "serve.out"), "w")
        s_err = open(os.path.join(self.dir, "serve.err"), "w")
        serve = subprocess.Popen([BUSYMIRROR, "-c", cfg, "serve"], cwd=self.dir, env=self.env,
                                 stdout=s_out, stderr=s_err)
        self.procs.append(serve)
        self.wait_for("serve ready", lambda: serve.poll() is None and self.admin_ok("/readyz"))
        self.wait_for("live channels", lambda: self.db(
            "SELECT count(*) FROM channels WHERE resource_id IS NOT NULL AND stopped_at IS NULL"
        )[0][0] >= 5)
        self.harvest()
        ev = e.event(A, timed("Pushed", hour(30)))
        self.wait_for("the pushed block", lambda: any(
            b.get("start", {}).get("dateTime", "").startswith(
                time.strftime("%Y-%m-%dT%H", time.gmtime(hour(30)))) for b in e.blocks(B)))
        e.patch_event(A, ev["id"], {"summary": "Pushed, renamed"})
        e.delete_event(C, e.dump(C)[0]["id"])
        # a forged notification carrying a real channel's id
        chan, res = self.db("SELECT id, resource_id FROM channels WHERE resource_id IS NOT NULL"
                            " LIMIT 1")[0]
        req = urllib.request.Request(
            "http://127.0.0.1:%d/google/notify" % self.port, data=b"", method="POST",
            headers={"X-Goog-Channel-ID": chan, "X-Goog-Resource-ID": res,
                     "X-Goog-Resource-State": "exists", "X-Goog-Message-Number": "99",
                     "X-Goog-Channel-Token": RT_ALICE})
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.HTTPError:
            pass
        # commands while serve runs
        self.bm("status", expect=None)
        self.bm("dlq", "retry", "--all", expect=None)
        for path in ("/metrics", "/readyz", "/healthz"):
            status, body = self.admin(path)
            self.texts.append((path, body))
        self.harvest()
        self.check_store_clear("while serve runs")
        seen = self.check_modes("while serve runs")
        for want in ("bm.db-wal", "bm.db-shm", "serve.log", "bm.db.serve.lock"):
            self.assertIn(want, seen)
        time.sleep(1)  # a few loops of every role at debug
        status, body = self.admin("/metrics")
        self.texts.append(("/metrics (later)", body))
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=120)
        s_out.close()
        s_err.close()
        with open(s_out.name) as f:
            out = f.read()
        with open(s_err.name) as f:
            err = f.read()
        self.assertEqual(serve.returncode, 0, err)
        self.assertNotIn("Sanitizer", err)
        self.texts += [("serve (stdout)", out), ("serve (stderr)", err)]
        with open(log_file) as f:
            serve_log = f.read()
        self.assertIn("level=debug", serve_log)
        self.texts.append(("serve.log", serve_log))
        self.harvest()
        self.check_store_clear("after serve")
        self.bm("status", expect=None)  # with [log] file set

        self.bm("dlq", "purge", "--confirm", expect=None)
        self.bm("dlq", "purge", "--older-than", "1", "--confirm", expect=None)

        # --- removal
        self.bm("account", "remove", "--account-id", "dave", "--confirm", expect=None)
        self.bm("account", "remove", "--account-id", "bob", "--keep-blocks", "--confirm")
        self.check_store_clear("after removal")

        # --- the search
        secrets = self.secrets()
        self.assertTrue(any(s.startswith("ya29.") for s in secrets), "no access token collected")
        self.assertTrue(any(s.startswith("1//emu-") for s in secrets), "no login token collected")
        self.assertTrue(len(self.db("SELECT id FROM channels")) > 0, "no channel token collected")
        found = set()
        for where, text in self.texts:
            found |= self.leaks(where, text, secrets)
        self.assertEqual(sorted(found), [], "secrets in busymirror's output")

        # --- modes
        self.check_modes("at the end")
        made = sorted(n for n in os.listdir(self.dir) if n not in NOT_OURS)
        for want in ("bm.db", "bm.key", "serve.log", "bm.db.serve.lock"):
            self.assertIn(want, made)

    def check_modes(self, when):
        """Every file busymirror made is 0600, every directory 0700."""
        bad_modes, seen = [], []
        for root, dirs, files in os.walk(self.dir):
            for d in dirs:
                path = os.path.join(root, d)
                mode = stat.S_IMODE(os.lstat(path).st_mode)
                if path != self.tmp and mode != 0o700:
                    bad_modes.append((path, oct(mode)))
            for name in files:
                path = os.path.join(root, name)
                if root == self.dir and name in NOT_OURS:
                    continue
                seen.append(name)
                try:
                    mode = stat.S_IMODE(os.lstat(path).st_mode)
                except FileNotFoundError:
                    continue  # gone meanwhile
                if mode != 0o600:
                    bad_modes.append((path, oct(mode)))
        self.assertEqual(bad_modes, [], "files busymirror made that are not private (%s)" % when)
        return seen

    def admin_ok(self, path):
        try:
            return self.admin(path)[0] == 200
        except OSError:
            return False


if __name__ == "__main__":
    unittest.main()
