"""busymirror sync against gcal-emulator: the engine's semantics, end to end."""
import datetime
import os
import signal
import sqlite3
import time
import unittest

from harness import Scenario, day, hour, timed

A, B, C = ("alice@example.com", "alice-personal@group.calendar.google.com", "bob@example.com")


def shapes(blocks):
    """Sorted (start, end) of blocks, as strings Google returned."""
    return sorted((json_time(b["start"]), json_time(b["end"])) for b in blocks)


def json_time(t):
    return t.get("date") or t.get("dateTime")


def epoch(date_time):
    """Seconds since the epoch of an RFC 3339 dateTime with its offset or Z."""
    return int(datetime.datetime.fromisoformat(date_time.replace("Z", "+00:00")).timestamp())


class SyncTest(Scenario):
    def setUp(self):
        super().setUp()
        self.three_calendars()

    def sync(self, *args, expect=0):
        return self.bm("sync", *args, expect=expect)

    def test_three_calendars_all_to_all_exact_counts(self):
        self.emu.event(A, timed("1:1 with Carol", hour(9)))
        self.emu.event(A, timed("Planning", hour(11)))
        self.emu.event(B, timed("Dentist", hour(14)))
        self.emu.event(C, timed("Standup", hour(16)))
        self.emu.event(C, {"summary": "Offsite", "start": {"date": day(3)}, "end": {"date": day(4)}})
        self.sync()
        self.assertEqual(len(self.emu.blocks(A)), 3)  # B's 1 + C's 2
        self.assertEqual(len(self.emu.blocks(B)), 4)  # A's 2 + C's 2
        self.assertEqual(len(self.emu.blocks(C)), 3)  # A's 2 + B's 1
        # never a block of a block, however often it runs
        self.sync()
        self.sync()
        self.assertEqual([len(self.emu.blocks(x)) for x in (A, B, C)], [3, 4, 3])
        total = sum(len(self.emu.dump(x)) for x in (A, B, C))
        self.assertEqual(total, 5 + 10)

    def test_repeated_sync_is_one_list_call_per_calendar_and_no_writes(self):
        self.emu.event(A, timed("Planning", hour(11)))
        self.emu.event(C, timed("Standup", hour(16)))
        self.sync()
        self.sync()  # sees its own blocks once
        self.emu.reset_counters()
        self.sync()
        n = self.emu.counters()
        self.assertEqual(n["list"], 3)
        self.assertEqual(n["writes"], 0)
        self.assertEqual(n["batch"], 0)

    def test_second_sync_is_incremental_with_the_stored_sync_token(self):
        self.emu.event(A, timed("Planning", hour(11)))
        self.sync()
        self.emu.reset_counters()
        self.emu.event(A, timed("Review", hour(13)))
        self.sync()
        n = self.emu.counters()
        # every calendar listed once, each time with the sync token the first sync stored
        self.assertEqual((n["list_sync"], n["list_full"]), (3, 0))
        self.assertEqual(len(self.emu.blocks(B)), 2)
        db = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        try:
            kinds = [k for (k,) in db.execute("SELECT kind FROM sync_log ORDER BY id")]
        finally:
            db.close()
        self.assertEqual(kinds, ["full"] * 3 + ["incremental"] * 3)

    def test_batch_part_answering_502_is_retried_not_dead_lettered(self):
        self.assert_bad_gateway_parts_are_retried("error_502")

    def test_batch_part_answering_503_is_retried_not_dead_lettered(self):
        self.assert_bad_gateway_parts_are_retried("error_503")

    def test_batch_part_answering_504_is_retried_not_dead_lettered(self):
        self.assert_bad_gateway_parts_are_retried("error_504")

    def assert_bad_gateway_parts_are_retried(self, fault):
        for i in range(3):
            self.emu.event(A, timed("m%d" % i, hour(9 + i)))
        # the first 2 block writes (parts of one batch: 3 blocks per target
        # calendar, each in its own account) answer the status; the rest succeed
        self.emu.faults(writes_only=1, max_errors=2, **{fault: 1.0})
        self.sync()
        self.assertEqual(self.emu.counters()["errors_injected"], 2)
        for t in (B, C):
            self.assertEqual(shapes(self.emu.blocks(t)),
                             shapes([timed("", hour(9 + i)) for i in range(3)]))
            self.assertEqual(len(self.emu.dump(t)), 3)
        db = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        try:
            self.assertEqual(db.execute("SELECT count(*) FROM dead_letters").fetchone()[0], 0)
            self.assertEqual(db.execute("SELECT count(*) FROM outbox").fetchone()[0], 0)
        finally:
            db.close()

    def test_blocks_are_private_anonymous_and_keep_times(self):
        start = hour(10)
        self.emu.event(A, timed("Secret project X", start, 90, tz="Europe/Berlin",
                                description="confidential", location="Room 1",
                                attendees=[{"email": "x@example.com"}]))
        self.emu.event(A, {"summary": "Holiday", "start": {"date": day(5)},
                           "end": {"date": day(7)}})
        self.sync()
        blocks = self.emu.blocks(C)
        self.assertEqual(len(blocks), 2)
        for b in blocks:
            self.assertEqual(b["summary"], "Busy")
            self.assertEqual(b["visibility"], "private")
            self.assertEqual(b.get("transparency", "opaque"), "opaque")
            for field in ("description", "location", "attendees", "conferenceData"):
                self.assertNotIn(field, b)
            self.assertNotIn("Secret", str(b))
        allday = [b for b in blocks if "date" in b["start"]]
        self.assertEqual(len(allday), 1)
        self.assertEqual((allday[0]["start"]["date"], allday[0]["end"]["date"]), (day(5), day(7)))
        timed_b = [b for b in blocks if "dateTime" in b["start"]][0]
        self.assertEqual(timed_b["start"].get("timeZone"), "Europe/Berlin")
        # the instants are kept, whatever offset notation Google answers with
        self.assertEqual(epoch(timed_b["start"]["dateTime"]), start)
        self.assertEqual(epoch(timed_b["end"]["dateTime"]), start + 90 * 60)

    def test_only_busy_events_are_mirrored(self):
        self.emu.event(A, timed("Busy one", hour(9)))
        self.emu.event(A, timed("Free", hour(10), transparency="transparent"))
        self.emu.event(A, timed("Declined", hour(11), attendees=[
            {"email": A, "self": True, "responseStatus": "declined"}]))
        self.emu.event(A, timed("Tentative", hour(12), attendees=[
            {"email": A, "self": True, "responseStatus": "tentative"}]))
        self.emu.event(A, timed("Office", hour(13), eventType="workingLocation",
                                workingLocationProperties={"type": "officeLocation"}))
        self.emu.event(A, timed("Away", hour(14), eventType="outOfOffice"))
        self.emu.event(A, timed("Cancelled", hour(15), status="cancelled"))
        self.emu.event(A, timed("Far future", hour(24 * 200)))
        self.sync()
        self.assertEqual(len(self.emu.blocks(B)), 3)  # busy, tentative, out of office

    def test_title_only_edit_costs_no_write(self):
        ev = self.emu.event(A, timed("Planning", hour(11)))
        self.sync()
        self.sync()
        self.emu.patch_event(A, ev["id"], {"summary": "Planning (renamed)",
                                            "description": "new agenda",
                                            "attendees": [{"email": "z@example.com"}]})
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 0)

    def test_move_and_delete_follow_the_source(self):
        ev = self.emu.event(A, timed("Planning", hour(11)))
        self.sync()
        self.emu.patch_event(A, ev["id"], timed("Planning", hour(15), 30))
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 2)  # one update per target
        for t in (B, C):
            (b,) = self.emu.blocks(t)
            self.assertEqual(shapes([b]), shapes([timed("", hour(15), 30)]))
        self.emu.delete_event(A, ev["id"])
        self.sync()
        self.assertEqual(len(self.emu.blocks(B)) + len(self.emu.blocks(C)), 0)

    def test_block_changed_by_a_person_is_restored(self):
        self.emu.event(A, timed("Planning", hour(11)))
        self.sync()
        (b,) = self.emu.blocks(B)
        self.emu.patch_event(B, b["id"], timed("Busy", hour(20)))
        (c,) = self.emu.blocks(C)
        self.emu.delete_event(C, c["id"])
        self.sync()
        self.assertEqual(shapes(self.emu.blocks(B)), shapes([timed("", hour(11))]))
        self.assertEqual(shapes(self.emu.blocks(C)), shapes([timed("", hour(11))]))
        # same ids: revived, never duplicated
        self.assertEqual(self.emu.blocks(C)[0]["id"], c["id"])
        self.assertEqual(len(self.emu.dump(C)), 1)

    def test_block_renamed_freed_or_published_by_a_person_is_restored(self):
        self.emu.event(A, timed("Planning", hour(11)))
        self.sync()
        (b,) = self.emu.blocks(B)
        self.emu.patch_event(B, b["id"], {"summary": "Lunch with the CEO"})
        (c,) = self.emu.blocks(C)
        self.emu.patch_event(C, c["id"], {"transparency": "transparent", "visibility": "public"})
        self.sync()
        for t in (B, C):
            (blk,) = self.emu.blocks(t)
            self.assertEqual(blk["summary"], "Busy")
            self.assertEqual(blk["visibility"], "private")
            self.assertEqual(blk.get("transparency", "opaque"), "opaque")
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 0)

    def test_new_block_summary_retitles_every_block_on_the_next_sync(self):
        self.emu.event(A, timed("Planning", hour(11)))
        self.emu.event(C, timed("Standup", hour(16)))
        self.sync()
        self.config_extra = {"sync": {"block_summary": "Occupied"}}
        self.write_config()
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 4)
        titles = {b["summary"] for t in (A, B, C) for b in self.emu.blocks(t)}
        self.assertEqual(titles, {"Occupied"})
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 0)

    def test_respect_deleted_blocks_leaves_them_deleted(self):
        self.config_extra = {"sync": {"respect_deleted_blocks": "true"}}
        self.write_config()
        ev = self.emu.event(A, timed("Planning", hour(11)))
        self.sync()
        (c,) = self.emu.blocks(C)
        self.emu.delete_event(C, c["id"])
        self.sync()
        self.sync()
        self.assertEqual(self.emu.blocks(C), [])
        self.assertEqual(len(self.emu.blocks(B)), 1)
        # it stays deleted when its source moves; the other block follows
        self.emu.patch_event(A, ev["id"], timed("Planning", hour(14)))
        self.sync()
        self.assertEqual(self.emu.blocks(C), [])
        self.assertEqual(shapes(self.emu.blocks(B)), shapes([timed("", hour(14))]))

    def test_recurring_series_is_one_block_series_with_overrides(self):
        start = hour(8)
        series = self.emu.event(A, timed("Daily", start, 30, tz="Europe/Berlin",
                                         recurrence=["RRULE:FREQ=DAILY;COUNT=10"]))
        self.sync()
        self.emu.reset_counters()
        # move the third occurrence, cancel the fifth
        inst3 = "%s_%s" % (series["id"], time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start + 2 * 86400)))
        inst5 = "%s_%s" % (series["id"], time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start + 4 * 86400)))
        self.emu.patch_event(A, inst3, timed("Daily", start + 2 * 86400 + 3600, 30, tz="Europe/Berlin"))
        self.emu.delete_event(A, inst5)
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 4)  # per target: 1 override + 1 cancel
        for t in (B, C):
            items = self.emu.dump(t)
            masters = [e for e in items if e.get("recurrence")]
            self.assertEqual(len(masters), 1)
            self.assertEqual(masters[0]["recurrence"], ["RRULE:FREQ=DAILY;COUNT=10"])
            overrides = {e["id"]: e for e in items if e.get("recurringEventId")}
            moved = [e for e in overrides.values() if e.get("status") != "cancelled"]
            gone = [e for e in overrides.values() if e.get("status") == "cancelled"]
            self.assertEqual(len(moved), 1)
            self.assertEqual(len(gone), 1)
            self.assertEqual(shapes(moved), shapes([timed("", start + 2 * 86400 + 3600, 30)]))

    def test_dry_run_writes_nothing_anywhere(self):
        self.emu.event(A, timed("Planning", hour(11)))
        self.emu.reset_counters()
        out, _ = self.sync("--dry-run")
        self.assertIn("would insert", out)
        self.assertEqual(self.emu.counters()["writes"], 0)
        db = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        self.assertEqual(db.execute("select count(*) from blocks").fetchone()[0], 0)
        self.assertEqual(db.execute("select count(*) from outbox").fetchone()[0], 0)
        self.assertEqual(db.execute("select count(*) from source_events").fetchone()[0], 0)
        db.close()
        self.sync()
        self.assertEqual(len(self.emu.blocks(B)), 1)

    def test_expired_sync_token_relists_and_catches_deletions(self):
        ev = self.emu.event(A, timed("Planning", hour(11)))
        keep = self.emu.event(A, timed("Review", hour(13)))
        self.sync()
        self.emu.call("POST", "/_emulator/calendars/%s/invalidate_sync_tokens" % A, {})
        self.emu.delete_event(A, ev["id"])
        self.sync()
        self.assertEqual(len(self.emu.blocks(B)), 1)
        self.assertEqual(len(self.emu.blocks(C)), 1)
        self.assertTrue(keep)

    def test_transient_faults_converge_without_duplicates(self):
        for i in range(40):
            self.emu.event([A, B, C][i % 3], timed("m%d" % i, hour(i)))
        self.emu.faults(seed=7, error_503=0.10, error_429=0.05)
        self.sync(expect=None)
        self.sync(expect=None)
        self.emu.faults()
        self.sync()
        for cal, n in ((A, 26), (B, 27), (C, 27)):
            blocks = self.emu.blocks(cal)
            self.assertEqual(len(blocks), n)
            self.assertEqual(len({b["id"] for b in blocks}), n)
            self.assertEqual(len(self.emu.dump(cal)), 40 // 3 + (1 if cal == A else 0) + n)

    def test_kill_9_mid_mirror_then_clean_sync_converges_exactly(self):
        for i in range(500):
            self.emu.event(A, timed("m%d" % i, hour(i % 2000) + (i // 2000) * 60))
        self.emu.faults(latency_ms=40)  # 20 batches per target: the kill lands mid-mirror
        p = self.bm_proc("sync")
        deadline = time.time() + 60
        while time.time() < deadline and len(self.emu.blocks(B)) < 50 and p.poll() is None:
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
        self.assertEqual(p.returncode, -signal.SIGKILL, "the sync ended before the kill")
        self.assertLess(len(self.emu.blocks(B)) + len(self.emu.blocks(C)), 1000)
        self.emu.faults()
        self.sync()
        for t in (B, C):
            blocks = self.emu.blocks(t)
            self.assertEqual(len(blocks), 500)
            self.assertEqual(len(self.emu.dump(t)), 500)

    def test_timeout_and_ctrl_c_stop_cleanly_with_the_outbox_intact(self):
        for i in range(200):
            self.emu.event(A, timed("m%d" % i, hour(i)))
        self.emu.faults(latency_ms=400)  # 3 lists + 8 batches: far beyond the 2 s timeout
        _, err = self.sync("--timeout", "2", expect=1)
        self.assertIn("stopped by --timeout", err)
        db = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        pending = db.execute("select count(*) from outbox").fetchone()[0]
        db.close()
        done = len(self.emu.blocks(B)) + len(self.emu.blocks(C))
        self.assertGreater(pending, 0)
        self.assertEqual(pending + done, 400)  # nothing lost, nothing twice
        p = self.bm_proc("sync")
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, err)
        self.emu.faults()
        self.sync()
        self.assertEqual(len(self.emu.blocks(B)), 200)
        self.assertEqual(len(self.emu.dump(C)), 200)

    def test_writes_are_paced_under_the_per_user_quota(self):
        # busymirror: a bucket of 20 calls, refilled at 100 a minute; batch parts
        # count one each. alice: 1 list + 3 batches of 10 = 31 calls. Paced, at most
        # 21 go before the last batch waits 6 s for 10 tokens; unpaced, all 31 go
        # at once and Google (at most 25 calls in any 5 s) refuses some of them.
        self.config_extra = {"google": {"user_quota": 120}, "engine": {"batch_size": 10}}
        self.write_config()
        self.emu.call("POST", "/_emulator/users/alice%40example.com/quota",
                      {"rpm": 25, "window_ms": 5000, "status": 403})
        for i in range(30):
            self.emu.event(A, timed("m%d" % i, hour(i)))
        self.emu.reset_counters()
        self.sync("--calendar-id", A)
        self.assertEqual(len(self.emu.blocks(B)), 30)
        self.assertEqual(len(self.emu.blocks(C)), 30)
        # no write was refused and sent again: 30 per target calendar, once each
        self.assertEqual(self.emu.counters()["writes"], 60)

    def test_revoked_account_parks_and_says_so(self):
        self.emu.event(A, timed("Planning", hour(11)))
        self.emu.call("POST", "/_emulator/users/bob%40example.com/revoke", {})
        _, err = self.sync(expect=1)
        self.assertIn("login", err)
        out, _ = self.bm("account", "list")
        self.assertIn("needs-login", out)
        # alice's calendars still mirrored into each other
        self.assertEqual(len(self.emu.blocks(B)), 1)


class CommandTest(Scenario):
    def test_unknown_and_ambiguous_calendars_exit_2(self):
        self.three_calendars()
        _, err = self.bm("sync", "--calendar-id", "nope@example.com", expect=2)
        self.assertIn("unknown calendar 'nope@example.com'", err)
        _, err = self.bm("sync", "--account-id", "carol", expect=2)
        self.assertIn("unknown account 'carol'", err)
        self.assertIn("alice", err)

    def test_lease_held_exits_75(self):
        self.three_calendars()
        for i in range(5):
            self.emu.event(A, timed("m%d" % i, hour(i)))
        self.emu.faults(latency_ms=1500)
        first = self.bm_proc("sync", "--calendar-id", A)
        time.sleep(0.7)
        _, err = self.bm("sync", "--calendar-id", A, expect=75)
        self.assertIn("held", err)
        first.wait(60)
        self.assertEqual(first.returncode, 0)


class SideBySideTest(Scenario):
    """The drain works accounts side by side ([engine] workers threads): under the
    per-user quota, one account's paced writes never wait for another's."""

    def written(self, cal):
        """(first, last) moment the emulator wrote a block into cal."""
        times = sorted(datetime.datetime.fromisoformat(ev["updated"].replace("Z", "+00:00"))
                       for ev in self.emu.blocks(cal))
        return times[0], times[-1]

    def first_mirror(self, workers):
        cals = []
        for name in ("ann", "ben", "cat"):
            email = name + "@example.com"
            self.add_account(name, email)
            self.emu.call("POST", "/_emulator/users/%s/quota" % email, {"rpm": 120})
            self.bm("calendar", "discover", "--account-id", name)
            self.bm("calendar", "enable", "--calendar-id", email)
            for i in range(12):
                self.emu.event(email, timed("%s %d" % (name, i), hour(1) + i * 3600, minutes=30))
            cals.append(email)
        self.write_config(google={"user_quota": 120}, engine={"workers": workers})
        self.bm("sync")
        for c in cals:  # 24 blocks each: 20 at once (the quota's burst), 4 paced
            self.assertEqual(len(self.emu.blocks(c)), 24)
        return [self.written(c) for c in cals]

    def test_three_accounts_are_written_side_by_side(self):
        spans = self.first_mirror(workers=3)
        # every account was still being written while each other one was
        latest_start = max(first for first, _ in spans)
        earliest_end = min(last for _, last in spans)
        self.assertLess(latest_start, earliest_end, spans)

    def test_one_worker_writes_accounts_one_after_another(self):
        spans = sorted(self.first_mirror(workers=1))
        for (_, end), (start, _) in zip(spans, spans[1:]):
            self.assertLessEqual(end, start, spans)


class AccessTokenTest(Scenario):
    def test_an_idle_run_costs_one_call_per_calendar_and_no_token_refresh(self):
        cals = self.three_calendars()  # 2 accounts, 3 calendars
        self.bm("sync")
        self.emu.reset_counters()
        self.bm("sync")
        got = self.emu.counters()
        self.assertEqual(got["token"], 0, "the kept access tokens were refreshed again")
        self.assertEqual(got["requests"], len(cals))
        # kept sealed: the database never holds an access token in clear
        con = sqlite3.connect(os.path.join(self.dir, "bm.db"))
        try:
            rows = con.execute("SELECT access_token_enc, access_expires FROM accounts").fetchall()
        finally:
            con.close()
        self.assertEqual(len(rows), 2)
        for enc, expires in rows:
            self.assertIsNotNone(enc)
            self.assertGreater(expires, time.time() * 1000)
            self.assertNotIn(b"ya29", bytes(enc))

    def test_a_refused_kept_token_is_refreshed(self):
        self.three_calendars()
        self.bm("sync")
        self.emu.call("POST", "/_emulator/users/alice@example.com/expire_access_tokens", {})
        self.emu.reset_counters()
        self.bm("sync")
        self.assertEqual(self.emu.counters()["token"], 1)  # alice's only


if __name__ == "__main__":
    unittest.main()
