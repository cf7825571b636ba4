"""What busymirror prints for people cannot steer their terminal: texts that came
from Google (a calendar's summary, an e-mail, error texts, reasons) reach the
human output of every command with their control characters neutralised; the
JSON output keeps them exact, escaped."""
import json
import os
import sqlite3
import subprocess
import unittest

from harness import BUSYMIRROR, Scenario

A = "alice@example.com"
EVIL_ID = "evil@group.calendar.google.com"
# OSC 0 (retitle the window) ended by BEL, then CSI 31m (red), then CSI as one
# C1 character (U+009B), a DEL and a bidirectional override.
EVIL = "\x1b]0;pwned\x07\x1b[31mTeam\u009b2J\x7f\u202eoff"
# Bytes that are no UTF-8 at all, and raw C1 (0x9b) among them.
EVIL_BYTES = b"bad \xff\xfe \x9b31m \xc0\xaf end"
# Text that is fine as it is: accents, CJK, an emoji (4 bytes).
FINE = "R\u00e9union \u4f1a\u8b70 \U0001f4c5"
FORBIDDEN = (b"\x1b", b"\x07", b"\x7f", b"\xc2\x9b", b"\x9b", b"\xe2\x80\xae", b"\xff")


class OutputSafety(Scenario):

    def run_bytes(self, *args, expect=0):
        """busymirror's stdout and stderr as bytes (texts may not be UTF-8)."""
        p = subprocess.run([BUSYMIRROR, "-c", os.path.join(self.dir, "bm.ini"), *args],
                           cwd=self.dir, capture_output=True, timeout=600)
        self.outputs += [p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")]
        self.assertEqual(p.returncode, expect, "busymirror %s -> %d\n%r\n%r"
                         % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p.stdout, p.stderr

    def assert_safe(self, what, out):
        for bad in FORBIDDEN:
            self.assertNotIn(bad, out, "%s printed %r raw: %r" % (what, bad, out))

    def setUp(self):
        super().setUp()
        self.add_account("alice", A)
        self.emu.calendar(A, EVIL_ID, EVIL)
        self.emu.calendar(A, "fine@group.calendar.google.com", FINE)
        self.bm("calendar", "discover", "--account-id", "alice")

    def test_calendar_list_neutralises_a_summary_from_google(self):
        out, _ = self.run_bytes("calendar", "list")
        self.assert_safe("calendar list", out)
        self.assertIn(EVIL_ID.encode(), out)
        self.assertIn(b"?]0;pwned", out)  # the text is still there, made harmless
        self.assertIn(FINE.encode(), out)  # printable UTF-8 stays as it is
        # JSON keeps the summary exact (escaped by the JSON writer)
        out, _ = self.run_bytes("calendar", "list", "--json")
        for bad in (b"\x1b", b"\x07"):
            self.assertNotIn(bad, out)
        cals = {c["calendar"]: c for c in json.loads(out)["calendars"]}
        self.assertEqual(cals[EVIL_ID]["summary"], EVIL)

    def plant(self, sql, *args):
        db = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        try:
            db.execute(sql, args)
            db.commit()
        finally:
            db.close()

    def test_every_human_printer_neutralises_external_texts(self):
        self.bm("calendar", "enable", "--calendar-id", EVIL_ID)
        self.bm("sync")
        (cal_id,) = [r[0] for r in sqlite3.connect(os.path.join(self.dir, "bm.db")).execute(
            "SELECT id FROM calendars WHERE gcal_id = ?", (EVIL_ID,))]
        # What Google could have put in the store: an e-mail, a sync's result and
        # error, a refused watch's reason, a dead letter's error, an audited id.
        self.plant("UPDATE accounts SET email = ?", EVIL)
        self.plant("UPDATE sync_state SET last_result = ?, last_error = ?, watch_refused = ?"
                   " WHERE calendar_id = ?", EVIL, EVIL_BYTES, EVIL, cal_id)
        self.plant("UPDATE sync_log SET error = ?, result = ?", EVIL_BYTES, EVIL)
        self.plant("INSERT INTO dead_letters(target_calendar_id, block_id, op, attempts, error,"
                   " failed_at) VALUES (?, ?, 0, 3, ?, 1700000000)", cal_id, EVIL, EVIL_BYTES)
        self.plant("INSERT INTO audit_log(run_id, at, action, gcal_id, block_id)"
                   " VALUES (7, 1700000000, ?, ?, 'b1')", EVIL, EVIL)
        unsafe = []
        # status shows a refused watch's reason only when push is configured
        self.write_config(gateway={"public_url": "https://mirror.example.com/notify"})
        for args, rc in ((("calendar", "list"), 0), (("account", "list"), 0), (("status",), 1),
                         (("log",), 0), (("dlq", "list"), 0), (("audit", "list"), 0)):
            out, err = self.run_bytes(*args, expect=rc)
            raw = [bad for bad in FORBIDDEN if bad in out or bad in err]
            if raw:
                unsafe.append("%s printed %r raw" % (" ".join(args), raw))
        self.assertEqual(unsafe, [])
        out, _ = self.run_bytes("dlq", "list")
        self.assertIn(b"bad ?? ?31m ?? end", out)


if __name__ == "__main__":
    unittest.main()
