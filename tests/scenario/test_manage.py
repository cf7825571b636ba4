"""Management commands against gcal-emulator: reset, cleanup, undo, status, dead
letters, account removal, and the errors of bad ids."""
import json
import os
import sqlite3
import unittest

from harness import Scenario, hour, timed

A, B, C = ("alice@example.com", "alice-personal@group.calendar.google.com", "bob@example.com")


def times(blocks):
    return sorted((b["id"], b["start"].get("dateTime") or b["start"].get("date"),
                   b["end"].get("dateTime") or b["end"].get("date")) for b in blocks)


class ManageTest(Scenario):
    def setUp(self):
        super().setUp()
        self.three_calendars()
        self.emu.event(A, timed("Planning", hour(11)))
        self.emu.event(A, timed("Daily", hour(8), 30, tz="Europe/Berlin",
                                recurrence=["RRULE:FREQ=DAILY;COUNT=5"]))
        self.emu.event(C, timed("Standup", hour(16)))
        self.mine = self.emu.event(B, timed("Busy", hour(13)))  # a person's own "Busy"
        self.bm("sync")

    def test_reset_refuses_without_confirm_and_dry_run_writes_nothing(self):
        before = times(self.emu.blocks(B))
        self.emu.reset_counters()
        out, err = self.bm("reset", "--calendar-id", B, expect=1)
        self.assertIn("--confirm", err)
        self.assertEqual(out.count("would delete"), 3)
        out, _ = self.bm("reset", "--calendar-id", B, "--dry-run")
        self.assertEqual(out.count("would delete"), 3)
        self.assertEqual(self.emu.counters()["writes"], 0)
        self.assertEqual(times(self.emu.blocks(B)), before)

    def test_reset_deletes_only_marked_events_then_undo_restores_them(self):
        before = times(self.emu.blocks(B))
        self.assertEqual(len(before), 3)
        self.bm("reset", "--calendar-id", B, "--confirm")
        self.assertEqual(self.emu.blocks(B), [])
        live = [e for e in self.emu.dump(B) if e.get("status") != "cancelled"]
        self.assertEqual([e["id"] for e in live], [self.mine["id"]])  # the person's "Busy"
        # the other calendars keep their blocks
        self.assertEqual(len(self.emu.blocks(A)), 2)
        self.emu.reset_counters()
        out, _ = self.bm("undo", "--last")
        self.assertIn("3 blocks re-created, 0 could not be", out)
        self.assertEqual(times(self.emu.blocks(B)), before)
        # and sync takes them back over without a duplicate
        self.bm("sync")
        self.assertEqual(times(self.emu.blocks(B)), before)

    def test_reset_deletes_nothing_unmarked_when_the_server_ignores_the_marker_filter(self):
        # a server that lists every event despite privateExtendedProperty: the
        # marker check on each listed event is all that protects a person's events
        own = [self.mine["id"], self.emu.event(B, timed("Dentist", hour(15)))["id"]]
        self.emu.faults(ignore_extended_property_filter=1)
        self.bm("reset", "--calendar-id", B, "--confirm")
        self.emu.faults()
        self.assertEqual(self.emu.blocks(B), [])
        live = [e["id"] for e in self.emu.dump(B) if e.get("status") != "cancelled"]
        self.assertEqual(sorted(live), sorted(own))

    def test_reset_finds_blocks_by_marker_without_the_local_mapping(self):
        for f in ("bm.db", "bm.db-wal", "bm.db-shm"):
            path = os.path.join(self.dir, f)
            if os.path.exists(path):
                os.unlink(path)
        for name, email in (("alice", A), ("bob", C)):
            path = os.path.join(self.dir, name + ".token")
            self.bm("account", "add", "--name", name, "--refresh-token-file", path)
            self.bm("calendar", "discover", "--account-id", name)
        self.bm("reset", "--calendar-id", B, "--confirm")
        self.assertEqual(self.emu.blocks(B), [])

    def test_cleanup_removes_orphans_and_undo_brings_them_back(self):
        # bob's calendar stopped giving busy time without its blocks being removed
        # (as after a crash between the two, or a database edited by hand)
        db = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        db.execute("UPDATE calendars SET role = 2 WHERE gcal_id = ?", (C,))
        db.commit()
        db.close()
        before = times(self.emu.blocks(A))
        self.emu.reset_counters()
        out, _ = self.bm("cleanup", "--dry-run")
        self.assertIn("would remove 2 orphaned blocks", out)
        self.assertEqual(self.emu.counters()["writes"], 0)
        out, _ = self.bm("cleanup")
        self.assertIn("removed 2 orphaned blocks", out)
        self.assertEqual(len(self.emu.blocks(A)), 1)  # bob's standup went, B's "Busy" stays
        self.assertEqual(len(self.emu.blocks(B)), 2)  # alice's two remain
        self.assertEqual(len(self.emu.blocks(C)), 3)  # bob still receives
        out, _ = self.bm("cleanup")
        self.assertIn("removed 0 orphaned blocks", out)
        self.bm("undo", "--last")
        self.assertEqual(times(self.emu.blocks(A)), before)

    def test_status_is_healthy_then_says_what_needs_attention(self):
        out, _ = self.bm("status")
        self.assertIn("healthy", out)
        out, _ = self.bm("status", "--json")
        doc = json.loads(out)
        self.assertTrue(doc["healthy"])
        self.assertEqual(len(doc["calendars"]), 3)
        self.assertEqual({c["last_result"] for c in doc["calendars"]}, {"ok"})
        self.assertEqual(sum(c["blocks"] for c in doc["calendars"]), 8)
        self.emu.call("POST", "/_emulator/users/bob%40example.com/revoke", {})
        self.bm("sync", expect=1)
        out, _ = self.bm("status", "--json", expect=1)
        doc = json.loads(out)
        self.assertFalse(doc["healthy"])
        self.assertEqual([a["state"] for a in doc["accounts"]], ["ok", "needs-login"])

    def test_circuit_breaker_isolates_a_failing_account(self):
        self.emu.event(A, timed("Review", hour(20)))
        self.emu.call("POST", "/_emulator/users/bob%40example.com/quota",
                      {"rpm": 1, "status": 429})
        _, err = self.bm("sync", expect=1)
        self.assertIn("wait for a later run", err)
        self.assertEqual(len(self.emu.blocks(B)), 4)  # alice's calendars go on
        out, _ = self.bm("account", "list")
        self.assertRegex(out, r"bob .* breaker-open")
        doc = json.loads(self.bm("status", "--json", expect=1)[0])
        bob = [a for a in doc["accounts"] if a["name"] == "bob"][0]
        self.assertEqual((bob["breaker"], bob["breaker_failures"]), ("open", 1))
        # while open, the next run does not call Google for bob at all
        self.emu.event(C, timed("Another", hour(21)))
        self.emu.reset_counters()
        self.bm("sync", expect=1)
        self.assertEqual(self.emu.counters()["list"], 2)  # alice's two calendars only
        # half-open after the wait: one success closes it
        self.emu.call("POST", "/_emulator/users/bob%40example.com/quota", {"rpm": 0})
        db = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        db.execute("UPDATE accounts SET breaker_until = 1 WHERE name = 'bob'")
        db.commit()
        db.close()
        self.bm("sync")
        self.assertEqual(len(self.emu.blocks(C)), 4)
        self.assertEqual(len(self.emu.blocks(A)), 3)
        out, _ = self.bm("status")
        self.assertIn("healthy", out)

    def test_dead_letters_list_retry_and_purge(self):
        self.emu.event(A, timed("Review", hour(20)))
        self.emu.faults(error_403=1.0, writes_only=1)
        self.bm("sync", expect=1)
        out, _ = self.bm("dlq", "list")
        self.assertIn("2 dead letters", out)
        self.assertIn("requiredAccessLevel", out)
        self.bm("status", expect=1)
        self.emu.faults()
        out, _ = self.bm("dlq", "retry", "--all")
        self.assertIn("2 applied", out)
        self.assertEqual(len(self.emu.blocks(B)), 4)
        self.assertEqual(len(self.emu.blocks(C)), 4)
        out, _ = self.bm("dlq", "list")
        self.assertIn("0 dead letters", out)
        self.bm("status")
        _, err = self.bm("dlq", "purge", expect=1)
        self.assertIn("--confirm", err)
        self.bm("dlq", "purge", "--confirm")

    def test_account_remove_deletes_its_blocks_first(self):
        _, err = self.bm("account", "remove", "--account-id", "bob", expect=1)
        self.assertIn("--confirm", err)
        self.assertEqual(len(self.emu.blocks(C)), 3)
        out, _ = self.bm("account", "remove", "--account-id", "bob", "--confirm")
        self.assertIn("5 blocks deleted", out)  # bob's standup in A and B, 3 in bob's calendar
        self.assertEqual(self.emu.blocks(C), [])
        self.assertEqual(len(self.emu.blocks(A)), 1)  # B's "Busy"
        self.assertEqual(len(self.emu.blocks(B)), 2)
        out, _ = self.bm("account", "list")
        self.assertNotIn("bob", out)
        self.assertRegex(out, r"alice +alice@example.com +2 +ok")  # discover found the address
        # undo re-creates nothing: bob's calendars are gone, and the blocks made
        # from them in alice's would be managed by nothing
        out, _ = self.bm("undo", "--last", expect=1)
        self.assertIn("0 blocks re-created, 5 could not be", out)
        self.assertEqual(len(self.emu.blocks(A)), 1)

    def test_secrets_are_encrypted_at_rest(self):
        db = os.path.join(self.dir, "bm.db")
        sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
        for f in ("bm.db", "bm.db-wal"):
            path = os.path.join(self.dir, f)
            if os.path.exists(path):
                with open(path, "rb") as fh:
                    data = fh.read()
                self.assertNotIn(b"refresh-alice", data)
                self.assertNotIn(b"refresh-bob", data)
        for f in ("bm.db", "bm.key"):
            self.assertEqual(os.stat(os.path.join(self.dir, f)).st_mode & 0o777, 0o600)
        # a missing or wrong key is refused with a clear message, and changes nothing
        os.rename(os.path.join(self.dir, "bm.key"), os.path.join(self.dir, "bm.key.away"))
        _, err = self.bm("sync", expect=1)
        self.assertIn("log in again", err)
        os.rename(os.path.join(self.dir, "bm.key.away"), os.path.join(self.dir, "bm.key"))
        with open(os.path.join(self.dir, "bm.key"), "r+b") as fh:
            fh.write(b"\0" * 32)
        _, err = self.bm("sync", expect=1)
        self.assertIn("log in again", err)

    def test_bad_ids_name_the_candidates_and_change_nothing(self):
        _, err = self.bm("reset", "--calendar-id", "nope@example.com", "--confirm", expect=2)
        self.assertIn("unknown calendar 'nope@example.com'", err)
        _, err = self.bm("account", "remove", "--account-id", "carol", "--confirm", expect=2)
        self.assertIn("unknown account 'carol' (accounts: alice bob)", err)
        # the same calendar id in two accounts (a shared calendar) needs --account-id
        db = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        db.execute("INSERT INTO calendars(account_id, gcal_id, summary) SELECT id, ?, 'shared'"
                   " FROM accounts WHERE name = 'bob'", (B,))
        db.commit()
        db.close()
        _, err = self.bm("reset", "--calendar-id", B, "--confirm", expect=2)
        self.assertIn("is in 2 accounts (alice, bob)", err)
        self.assertEqual(len(self.emu.blocks(B)), 3)
        _, err = self.bm("undo", "--audit-id", "99", expect=2)
        self.assertIn("no audited run 99", err)


if __name__ == "__main__":
    unittest.main()
