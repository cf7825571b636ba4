"""A hostile or broken server: answers nested millions of levels deep (token
endpoint, calendarList, events.list) must end a command with a clean error and its
documented exit code (1: some work failed), never a crash. Before the bounded JSON
parser, 3 million nested brackets made `calendar discover` die with SIGSEGV.

The accounts and calendars are set up against the emulator; then the config points
the Google URLs at a small loopback server in this file that answers what the test
asks for."""
import http.server
import json
import os
import sqlite3
import threading
import unittest

from harness import Scenario

DEEP = 3000000  # what crashed calendar discover
TOKEN_DEEP = 30000  # token answers are capped at 64 KiB: as deep as fits


def nested(n, closed=True):
    return b"[" * n + (b"]" * n if closed else b"")


class Hostile(http.server.ThreadingHTTPServer):
    """127.0.0.1 only; token, calendarList and events.list answers set by the test."""

    daemon_threads = True

    def __init__(self):
        self.token_body = json.dumps({"access_token": "ya29.hostile", "expires_in": 3599,
                                      "token_type": "Bearer"}).encode()
        self.list_body = b"{}"
        self.calendars_body = b"{}"
        self.calendars_status = 200
        self.paths = []
        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()
        self.base = "http://127.0.0.1:%d" % self.server_address[1]

    def stop(self):
        self.shutdown()
        self.server_close()
        self.thread.join(10)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, body, status=200):
        self.server.paths.append(self.command + " " + self.path)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.answer(self.server.token_body)

    def do_GET(self):
        if "/calendarList" in self.path:
            self.answer(self.server.calendars_body, self.server.calendars_status)
        else:
            self.answer(self.server.list_body)


class HostileAnswersTest(Scenario):
    def setUp(self):
        super().setUp()
        self.add_account("alice", "alice@example.com")
        self.bm("calendar", "discover", "--account-id", "alice")
        self.bm("calendar", "enable", "--calendar-id", "alice@example.com")
        self.hostile = Hostile()
        self.addCleanup(self.hostile.stop)
        # the same database and key, Google's URLs now the hostile server's
        self.write_config(google={"api_base_url": self.hostile.base + "/calendar/v3",
                                  "batch_url": self.hostile.base + "/batch/calendar/v3",
                                  "token_url": self.hostile.base + "/token"})
        # no cached access token: every command asks the token endpoint
        self.db("UPDATE accounts SET access_token_enc = NULL, access_expires = 0")

    def db(self, sql):
        db = sqlite3.connect(os.path.join(self.dir, "bm.db"), timeout=30)
        try:
            db.execute(sql)
            db.commit()
        finally:
            db.close()

    def assert_clean_failure(self, out, err, *words):
        self.assertEqual(self.last_rc, 1)  # a crash would be negative (the signal)
        for w in words:
            self.assertIn(w, err)
        self.assertNotIn("AddressSanitizer", err)
        self.assertNotIn("runtime error", err)

    def test_deep_calendar_list_fails_discover_cleanly(self):
        self.hostile.calendars_body = nested(DEEP)
        out, err = self.bm("calendar", "discover", "--account-id", "alice", expect=1)
        self.assert_clean_failure(out, err, "JSON nested deeper than 64 levels")
        self.assertTrue(any("/calendarList" in p for p in self.hostile.paths),
                        self.hostile.paths)
        # never closed: the same
        self.hostile.calendars_body = nested(DEEP, closed=False)
        out, err = self.bm("calendar", "discover", "--account-id", "alice", expect=1)
        self.assert_clean_failure(out, err, "JSON nested deeper than 64 levels")

    def test_terminal_escapes_in_an_error_from_google_are_neutralised(self):
        # an error message is Google's text: on a terminal it must not retitle the
        # window or change colours
        self.hostile.calendars_status = 400
        self.hostile.calendars_body = json.dumps({"error": {
            "code": 400, "message": "\x1b]0;pwned\x07\x1b[31mred\u009b2J bad", "errors": [
                {"reason": "badRequest", "message": "\x1b[5m"}]}}).encode()
        out, err = self.bm("calendar", "discover", "--account-id", "alice", expect=1)
        self.assertIn("bad", err)
        for c in "\x1b\x07\u009b":
            self.assertNotIn(c, err + out)

    def test_deep_token_answer_fails_cleanly(self):
        self.hostile.token_body = nested(TOKEN_DEEP)
        out, err = self.bm("calendar", "discover", "--account-id", "alice", expect=1)
        self.assert_clean_failure(out, err, "token endpoint: unparseable answer",
                                  "JSON nested deeper than 64 levels")
        self.assertEqual([p for p in self.hostile.paths if p.startswith("GET")], [])
        # deeper than the cap allows: refused by size before any parsing
        self.hostile.token_body = nested(DEEP)
        out, err = self.bm("calendar", "discover", "--account-id", "alice", expect=1)
        self.assert_clean_failure(out, err, "larger than")

    def test_deep_events_page_fails_the_sync_cleanly(self):
        self.hostile.list_body = nested(DEEP)
        out, err = self.bm("sync", expect=1)
        self.assert_clean_failure(out, err, "JSON nested deeper than 64 levels")
        self.assertTrue(any("/events" in p for p in self.hostile.paths), self.hostile.paths)
        # nothing was stored half: once the server is sane again (and the breaker the
        # failure opened is closed), the next sync works
        self.write_config()
        self.db("UPDATE accounts SET breaker_failures = 0, breaker_until = 0")
        self.bm("sync")


if __name__ == "__main__":
    unittest.main()
