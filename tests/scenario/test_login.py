"""busymirror account login: the installed-app flow (loopback redirect + PKCE)
against gcal-emulator, with this test playing the browser."""
import http.client
import os
import queue
import socket
import threading
import unittest
import urllib.parse

from harness import Scenario, hour, timed

A = "alice@example.com"
A2 = "alice-personal@group.calendar.google.com"
URL_INTRO = "Open this address in a browser and allow access:"


def get(url, timeout=30):
    """GET without following redirects: (status, headers, body)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""))
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read().decode()
    finally:
        conn.close()


def with_param(url, name, value):
    """url with query parameter name set to value (added when absent)."""
    u = urllib.parse.urlsplit(url)
    q = [(k, v) for k, v in urllib.parse.parse_qsl(u.query, keep_blank_values=True) if k != name]
    q.append((name, value))
    return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))


class Login:
    """A running `busymirror account login`: its output lines arrive in a queue."""

    def __init__(self, test, *args):
        self.test = test
        self.proc = test.bm_proc("account", "login", *args)
        self.lines = queue.Queue()
        self.out, self.err = [], []
        self.t_out = threading.Thread(target=self._pump, args=(self.proc.stdout, self.out, True))
        self.t_err = threading.Thread(target=self._pump, args=(self.proc.stderr, self.err, False))
        self.t_out.start()
        self.t_err.start()

    def _pump(self, f, keep, to_queue):
        for line in f:
            keep.append(line)
            if to_queue:
                self.lines.put(line)
        if to_queue:
            self.lines.put(None)

    def url(self):
        """The consent address, after the intro line (bounded wait)."""
        seen_intro = False
        while True:
            line = self.lines.get(timeout=30)
            if line is None:
                self.test.fail("login ended before printing the address: %s" % "".join(self.err))
            line = line.rstrip("\n")
            if line == URL_INTRO:
                seen_intro = True
            elif line.startswith(("http://", "https://")):
                self.test.assertTrue(seen_intro, "the address came before the intro line")
                return line

    def wait(self, timeout=60):
        """Exit code, stdout, stderr; output goes to the test's secret check."""
        rc = self.proc.wait(timeout)
        self.t_out.join(10)
        self.t_err.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        out, err = "".join(self.out), "".join(self.err)
        self.test.outputs += [out, err]
        self.test.assertNotIn("Sanitizer", err)
        return rc, out, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        if not self.proc.stdout.closed:
            self.wait()


class LoginTest(Scenario):
    def setUp(self):
        super().setUp()
        self.logins = []

    def tearDown(self):
        for p in self.logins:
            p.kill()
        super().tearDown()

    def login(self, *args):
        p = Login(self, *args)
        self.logins.append(p)
        return p

    def consent(self, url):
        """Plays Google's consent page: the 302 to busymirror's listener."""
        status, headers, body = get(url)
        self.assertEqual(status, 302, body)
        loc = headers["location"]
        self.assertTrue(loc.startswith("http://127.0.0.1:"), loc)
        return loc

    def full_login(self, name="alice", email=A):
        p = self.login("--name", name, "--login-hint", email)
        loc = self.consent(p.url())
        status, headers, body = get(loc)
        self.assertEqual(status, 200, body)
        self.assertIn("you can close this tab", body)
        self.assertEqual(headers.get("connection"), "close")
        self.assertEqual(int(headers["content-length"]), len(body.encode()))
        rc, out, err = p.wait()
        self.assertEqual(rc, 0, "stdout: %s\nstderr: %s" % (out, err))
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)["code"][0]
        self.assertNotIn(code, out + err)
        return out, err, code

    def assert_no_clear_secrets(self, *secrets):
        blob = b""
        for f in ("bm.db", "bm.db-wal"):
            path = os.path.join(self.dir, f)
            if os.path.exists(path):
                with open(path, "rb") as fh:
                    blob += fh.read()
        self.assertTrue(blob)
        # every refresh token the emulator issues starts with 1//emu-, access tokens ya29.emu-
        for s in ("1//emu-", "ya29.emu-", "4/emu-") + secrets:
            self.assertNotIn(s.encode(), blob, "%r in the database in clear" % s)

    # ---------------------------------------------------------------- tests

    def test_login_stores_account_and_the_token_works(self):
        self.emu.user(A)
        self.emu.calendar(A, A2, "Alice personal")
        self.write_config()
        p = self.login("--name", "alice", "--login-hint", A)
        url = p.url()
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        self.assertTrue(url.startswith(self.emu.base + "/o/oauth2/v2/auth?"), url)
        self.assertEqual(q["client_id"], ["emu-client-id"])
        self.assertEqual(q["response_type"], ["code"])
        self.assertEqual(q["scope"], ["https://www.googleapis.com/auth/calendar"])
        self.assertEqual(q["access_type"], ["offline"])
        self.assertEqual(q["prompt"], ["consent"])
        self.assertEqual(q["code_challenge_method"], ["S256"])
        self.assertEqual(len(q["code_challenge"][0]), 43)
        self.assertEqual(q["login_hint"], [A])
        self.assertRegex(q["redirect_uri"][0], r"^http://127\.0\.0\.1:\d+/$")
        self.assertGreaterEqual(len(q["state"][0]), 16)
        self.assertNotIn("client_secret", url)
        self.assertNotIn("emu-client-secret", url)
        loc = self.consent(url)
        status, _, body = get(loc)
        self.assertEqual(status, 200)
        self.assertIn("busymirror: you can close this tab", body)
        rc, out, err = p.wait()
        self.assertEqual(rc, 0, err)
        self.assertIn("account 'alice' logged in as alice@example.com; 2 calendars found", out)
        self.assertEqual(sum(1 for l in out.splitlines() if l.startswith(("http://", "https://"))),
                         1)

        out, _ = self.bm("account", "list")
        self.assertRegex(out, r"alice\s+alice@example.com\s+2\s+ok")
        out, _ = self.bm("calendar", "list", "--account-id", "alice")
        self.assertIn(A, out)
        self.assertIn(A2, out)
        self.bm("calendar", "enable", "--calendar-id", A)
        self.bm("calendar", "enable", "--calendar-id", A2)
        self.emu.event(A, timed("Planning", hour(11)))
        self.bm("sync")
        self.assertEqual(len(self.emu.blocks(A2)), 1)
        self.assert_no_clear_secrets()

    def test_wrong_state_and_junk_are_refused_then_the_right_answer_wins(self):
        self.emu.user(A)
        self.write_config()
        p = self.login("--name", "alice", "--login-hint", A)
        loc = self.consent(p.url())
        status, _, body = get(with_param(loc, "state", "forged-state-value"))
        self.assertEqual(status, 400, body)
        status, _, _ = get(with_param(loc, "state", ""))
        self.assertEqual(status, 400)
        u = urllib.parse.urlsplit(loc)
        status, _, _ = get("http://%s/?state=x" % u.netloc)
        self.assertEqual(status, 400)
        status, _, _ = get("http://%s/favicon.ico" % u.netloc)
        self.assertEqual(status, 404)
        # a request line beyond the 8 KiB bound
        with socket.create_connection((u.hostname, u.port), timeout=10) as s:
            s.sendall(b"GET /?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b" 414 ", s.recv(4096).split(b"\r\n")[0] + b" ")
        # a connection that sends nothing does not block the listener
        idle = socket.create_connection((u.hostname, u.port), timeout=10)
        # right state but no code
        state = urllib.parse.parse_qs(u.query)["state"][0]
        status, _, _ = get("http://%s/?state=%s" % (u.netloc, urllib.parse.quote(state)))
        self.assertEqual(status, 400)
        self.assertIsNone(p.proc.poll(), "login gave up after a refused answer")
        status, _, body = get(loc)
        idle.close()
        self.assertEqual(status, 200, body)
        rc, out, err = p.wait()
        self.assertEqual(rc, 0, err)
        self.assertIn("logged in as alice@example.com", out)

    def test_access_denied_ends_the_login(self):
        self.emu.user(A)
        self.write_config()
        # the user clicks Cancel on the consent screen
        self.emu.call("POST", "/_emulator/consent", {"email": A, "deny": True})
        p = self.login("--name", "alice")
        url = p.url()
        state = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["state"][0]
        loc = self.consent(url)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)
        self.assertEqual(q, {"error": ["access_denied"], "state": [state]})
        status, _, body = get(loc)
        self.assertEqual(status, 200, body)
        rc, _, err = p.wait()
        self.assertEqual(rc, 1)
        self.assertIn("access was denied", err)
        out, _ = self.bm("account", "list")
        self.assertNotIn("alice", out)

    def test_no_browser_answer_times_out(self):
        self.write_config()
        p = self.login("--name", "alice", "--timeout", "1")
        p.url()
        rc, _, err = p.wait(timeout=30)
        self.assertEqual(rc, 1)
        self.assertIn("no answer from the browser within 1 s", err)

    def test_token_endpoint_refusal_names_googles_reason(self):
        self.emu.user(A)
        self.write_config(google={"client_secret": "wrong-client-secret"})
        p = self.login("--name", "alice", "--login-hint", A)
        loc = self.consent(p.url())
        status, _, body = get(loc)
        self.assertNotEqual(status, 200, body)
        rc, out, err = p.wait()
        self.assertEqual(rc, 1)
        self.assertIn("invalid_client", err)
        self.assertNotIn("wrong-client-secret", out + err)
        out, _ = self.bm("account", "list")
        self.assertNotIn("alice", out)

    def test_missing_client_id_is_a_config_error(self):
        self.write_config(google={"client_id": "", "client_secret": ""})
        _, err = self.bm("account", "login", "--name", "alice", expect=78)
        self.assertIn("[google] client_id", err)
        self.assertNotIn("http", err)

    def test_login_fixes_an_account_that_needs_login(self):
        self.emu.user(A)
        self.emu.calendar(A, A2, "Alice personal")
        self.write_config()
        self.full_login()
        self.bm("calendar", "enable", "--calendar-id", A)
        self.bm("calendar", "enable", "--calendar-id", A2)
        self.emu.event(A, timed("Planning", hour(11)))
        self.bm("sync")
        self.assertEqual(len(self.emu.blocks(A2)), 1)

        self.emu.call("POST", "/_emulator/users/%s/revoke" % urllib.parse.quote(A, safe=""), {})
        self.emu.event(A, timed("Review", hour(13)))
        _, err = self.bm("sync", expect=1)
        self.assertIn("login", err)
        out, _ = self.bm("account", "list")
        self.assertIn("needs-login", out)

        out, _, _ = self.full_login()
        self.assertIn("account 'alice' logged in as alice@example.com; 2 calendars found", out)
        out, _ = self.bm("account", "list")
        self.assertRegex(out, r"alice\s+alice@example.com\s+2\s+ok")
        self.assertNotIn("needs-login", out)
        self.bm("sync")
        self.assertEqual(len(self.emu.blocks(A2)), 2)
        self.assert_no_clear_secrets()

    def test_existing_token_account_is_relogged_and_other_users_are_refused(self):
        self.add_account("alice", A)  # added with a token file, e-mail unknown
        self.emu.user("mallory@example.com")
        self.write_config()
        out, _, _ = self.full_login()
        self.assertIn("logged in as alice@example.com; 1 calendar found", out)
        # the account is alice's now: a login as someone else changes nothing
        p = self.login("--name", "alice", "--login-hint", "mallory@example.com")
        status, _, _ = get(self.consent(p.url()))
        self.assertEqual(status, 200)
        rc, _, err = p.wait()
        self.assertEqual(rc, 1)
        self.assertIn("mallory@example.com", err)
        out, _ = self.bm("account", "list")
        self.assertRegex(out, r"alice\s+alice@example.com\s+1\s+ok")
        self.bm("calendar", "discover", "--account-id", "alice")
        self.assert_no_clear_secrets("refresh-alice")


if __name__ == "__main__":
    unittest.main()
