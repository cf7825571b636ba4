"""Group rules against the features that touch the same rows (issue 13, "think
in paths"): a rule or label change under a running serve, rules and shared
meetings (excluded, parked, copy_title and buffers while parked), regroup,
undo, cleanup, series edited mid-rule, DST with working hours and buffers,
SIGKILL during a rule-change resync, dry runs, rules check errors and empty
regexes. Every test asserts the exact blocks and the writes it cost."""
import datetime
import os
import random
import signal
import time
import unittest

from harness import Scenario, db_rows, hour, timed
from test_rules import epoch, monday, suffix
from test_serve import ServeCase

A, B = "alice@example.com", "bob@example.com"
P = "alice-personal@group.calendar.google.com"
G = "group default"
UID = "meeting-paths@example.org"


def live_ids(items):
    return sorted(e["id"] for e in items if e.get("status") != "cancelled")


class PathsBase(Scenario):
    def setUp(self):
        super().setUp()
        self.rules = {}
        self.write_config()
        self.enabled_accounts(("alice", A), ("bob", B))

    def set_rules(self, extra=None, **rules):
        self.rules = dict(rules)
        sections = dict(extra or {})
        if self.rules:
            sections[G] = self.rules
        self.write_config(**sections)

    def sync(self, *args, expect=0):
        return self.bm("sync", *args, expect=expect)

    def counted(self, *args):
        self.emu.reset_counters()
        self.sync(*args)
        return self.emu.counters()

    def titles(self, cal):
        return sorted(b["summary"] for b in self.emu.blocks(cal))

    def meeting(self, cal, start=None, **extra):
        body = timed("Design review", start or monday(10), iCalUID=UID,
                     attendees=[{"email": A, "responseStatus": "accepted", "self": cal == A},
                                {"email": B, "responseStatus": "accepted", "self": cal == B}])
        body.update(extra)
        return self.emu.event(cal, body)

    def assert_steady(self):
        n = self.counted()
        self.assertEqual(n["writes"], 0, "not converged: %s" % n)


class SharedRulesTest(PathsBase):
    def test_an_excluded_shared_meeting_stays_away_when_the_target_copy_goes(self):
        a = self.meeting(A)
        self.meeting(B)
        self.sync()
        self.assertEqual((self.emu.blocks(A), self.emu.blocks(B)), ([], []))  # parked
        self.set_rules(exclude_title="review")
        self.sync()
        self.emu.delete_event(A, a["id"])
        n = self.counted()
        self.assertEqual(self.emu.blocks(A), [], "an excluded meeting came back as a block")
        self.assertEqual(n["writes"], 0)
        self.assertEqual(db_rows(self, "SELECT count(*) FROM shared_blocks"), [(0,)])
        # the rule goes: the block of bob's copy appears in alice's calendar, once
        self.set_rules()
        n = self.counted()
        self.assertEqual(len(self.emu.blocks(A)), 1)
        self.assertEqual(n["writes"], 1)
        self.assert_steady()

    def test_copy_title_and_buffers_on_a_parked_block(self):
        self.set_rules(copy_title="true", buffer_before="10")
        a = self.meeting(A)
        b = self.meeting(B)
        self.sync()
        self.emu.patch_event(B, b["id"], {"summary": "Design review v2"})
        self.sync()
        self.assertEqual(self.emu.blocks(A), [])
        # a rule change while parked: the parked block takes it too
        self.set_rules(copy_title="true", buffer_before="10", buffer_after="5")
        self.sync()
        self.emu.delete_event(A, a["id"])
        n = self.counted()
        (blk,) = self.emu.blocks(A)
        self.assertEqual(blk["summary"], "Design review v2")
        self.assertEqual(epoch(blk["start"]["dateTime"]), monday(10) - 600)
        self.assertEqual(epoch(blk["end"]["dateTime"]), monday(11) + 300)
        self.assertEqual(n["writes"], 1)
        self.assert_steady()


class MembershipRulesTest(PathsBase):
    def setUp(self):
        super().setUp()
        self.emu.calendar(A, P, "Alice personal")
        self.bm("calendar", "discover", "--account-id", "alice")

    def test_regroup_into_a_group_with_other_rules_is_exact(self):
        self.write_config(**{"group work": {"block_summary": "Work ({calendar})",
                                            "exclude_title": "lunch"}})
        self.bm("calendar", "enable", "--calendar-id", P)
        self.emu.event(A, timed("Lunch", monday(12)))
        self.emu.event(A, timed("Planning", monday(9)))
        self.emu.event(B, timed("Standup", monday(10)))
        self.emu.event(P, timed("Dentist", monday(15)))
        self.sync()
        self.assertEqual(self.titles(B), ["Busy"] * 3)
        self.assertEqual(self.titles(P), ["Busy"] * 3)
        # bob and the personal calendar move to "work": default keeps only alice
        self.bm("calendar", "enable", "--calendar-id", B, "--group", "work")
        self.bm("calendar", "enable", "--calendar-id", P, "--group", "work")
        self.sync()
        self.assertEqual(self.titles(A), [])
        self.assertEqual(self.titles(B), ["Work (Alice personal)"])
        self.assertEqual(self.titles(P), ["Work (%s)" % B])
        self.bm("calendar", "enable", "--calendar-id", A, "--group", "work")
        self.sync()
        self.assertEqual(self.titles(A), ["Work (Alice personal)", "Work (%s)" % B])
        self.assertEqual(self.titles(B), sorted(["Work (%s)" % A, "Work (Alice personal)"]))
        self.assert_steady()
        out, _ = self.bm("cleanup", "--dry-run")
        self.assertIn("would remove 0 orphaned blocks", out)

    def test_undo_of_a_disable_restores_blocks_under_the_current_rules(self):
        self.emu.event(A, timed("Lunch", monday(12)))
        self.emu.event(A, timed("Planning", monday(9)))
        self.emu.event(B, timed("Standup", monday(10)))
        self.sync()
        self.bm("calendar", "disable", "--calendar-id", B)
        self.assertEqual((self.titles(A), self.titles(B)), ([], []))
        self.set_rules(exclude_title="lunch", block_summary="Occupied")
        self.bm("undo", "--last")
        self.sync()
        self.assertEqual(self.titles(B), ["Occupied"], "the excluded Lunch came back")
        self.assertEqual(self.titles(A), ["Occupied"])
        self.assert_steady()
        out, _ = self.bm("cleanup", "--dry-run")
        self.assertIn("would remove 0 orphaned blocks", out)

    def test_cleanup_after_a_rule_change_finds_no_orphan_and_keeps_what_is_wanted(self):
        self.emu.event(A, timed("Lunch", monday(12)))
        self.emu.event(A, timed("Planning", monday(9)))
        self.sync()
        self.set_rules(exclude_title="lunch")
        # the rule's delete fails for now: its row waits in the outbox
        self.emu.faults(writes_only=1, max_errors=2, error_503=1.0)
        self.sync(expect=None)
        self.emu.faults()
        out, _ = self.bm("cleanup", "--dry-run")
        self.assertIn("would remove 0 orphaned blocks", out)  # planned already, not twice
        self.bm("cleanup")
        self.sync()
        self.sync()
        self.assertEqual(self.titles(B), ["Busy"])
        self.assertEqual(len(self.emu.dump(B)), 2)  # Planning's block, Lunch's deleted one
        self.assertEqual(db_rows(self, "SELECT count(*) FROM outbox"), [(0,)])
        self.assertEqual(db_rows(self, "SELECT count(*) FROM dead_letters"), [(0,)])
        self.assert_steady()
        out, _ = self.bm("cleanup", "--dry-run")
        self.assertIn("would remove 0 orphaned blocks", out)

    def test_reset_then_sync_under_new_rules(self):
        self.emu.event(A, timed("Lunch", monday(12)))
        self.emu.event(A, timed("Planning", monday(9)))
        self.sync()
        self.set_rules(exclude_title="lunch")
        self.bm("reset", "--calendar-id", B, "--confirm")
        self.assertEqual(self.titles(B), [])
        n = self.counted()
        self.assertEqual(self.titles(B), ["Busy"])
        self.assertEqual(n["writes"], 1)
        self.assert_steady()


class SeriesRulesTest(PathsBase):
    def test_an_edited_occurrence_then_a_rule_matching_only_its_new_title_and_back(self):
        start = monday(9)
        s = self.emu.event(A, timed("Standup", start, 15, tz="Europe/Berlin",
                                    recurrence=["RRULE:FREQ=DAILY;COUNT=5"]))
        self.sync()
        inst = "%s_%s" % (s["id"], suffix(start + 86400))
        self.emu.patch_event(A, inst, {"summary": "Standup offsite"})
        self.sync()
        self.assert_steady()
        self.set_rules(exclude_title="offsite")
        n = self.counted()
        self.assertEqual(n["writes"], 1)  # that occurrence is cancelled in the block series
        gone = [e for e in self.emu.dump(B) if e.get("status") == "cancelled"]
        self.assertEqual([epoch(e["originalStartTime"]["dateTime"]) for e in gone],
                         [start + 86400])
        self.assert_steady()
        self.set_rules()
        n = self.counted()
        self.assertEqual(n["writes"], 1)
        self.assertEqual([e for e in self.emu.dump(B) if e.get("status") == "cancelled"], [])
        self.assertEqual(len([e for e in self.emu.dump(B) if e.get("recurrence")]), 1)
        self.assert_steady()

    def test_working_hours_buffers_and_dst_on_a_series(self):
        # 16:30 UTC daily: 17:30 in Berlin in winter (in hours), 18:30 in summer (out)
        now = int(time.time())
        spring = 0
        year = time.gmtime(now).tm_year
        while spring < now + 86400 * 4:  # the next last Sunday of March, 01:00 UTC
            d = datetime.datetime(year, 3, 31, 1, tzinfo=datetime.timezone.utc)
            while d.weekday() != 6:
                d -= datetime.timedelta(days=1)
            spring, year = int(d.timestamp()), year + 1
        first = (spring // 86400 - 3) * 86400 + 16 * 3600 + 1800
        days = (first - now) // 86400 + 10
        sync = {"sync": {"past_days": 0, "future_days": days}}
        self.write_config(**sync)
        self.emu.event(A, timed("Late sync", first, 30, tz="UTC",
                                recurrence=["RRULE:FREQ=DAILY;COUNT=6"]))
        self.sync()
        self.set_rules(extra=sync, working_hours="Mon-Sun 08:00-18:00",
                       time_zone="Europe/Berlin", buffer_before="15")
        n = self.counted()
        items = self.emu.dump(B)
        (master,) = [e for e in items if e.get("recurrence")]
        self.assertEqual(epoch(master["start"]["dateTime"]), first - 900)
        gone = sorted(epoch(e["originalStartTime"]["dateTime"]) for e in items
                      if e.get("status") == "cancelled")
        # in summer time 16:15-17:00 UTC is 18:15-19:00 in Berlin: out of hours
        want = [first + k * 86400 - 900 for k in range(6) if first + k * 86400 > spring]
        self.assertEqual(gone, want)
        self.assertEqual(n["writes"], 1 + len(want))  # the series moves once, one cancel each
        self.assert_steady()
        self.set_rules(extra=sync)
        n = self.counted()
        self.assertEqual([e for e in self.emu.dump(B) if e.get("status") == "cancelled"], [])
        (master,) = [e for e in self.emu.dump(B) if e.get("recurrence")]
        self.assertEqual(epoch(master["start"]["dateTime"]), first)
        self.assert_steady()


class CrashTest(PathsBase):
    def test_sigkill_during_a_rule_change_resync_converges_exactly(self):
        rng = random.Random(13)
        for i in range(40):
            self.emu.event(A, timed("Lunch %d" % i if i % 3 == 0 else "Work %d" % i,
                                    monday(0) + i * 1800, 20))
        self.sync()
        self.assertEqual(len(self.emu.blocks(B)), 40)
        self.set_rules(extra={"engine": {"batch_size": 2}}, exclude_title="lunch",
                       block_summary="Occupied", buffer_after="5")
        self.emu.faults(latency_ms=80)
        self.emu.reset_counters()
        kills = 0
        for _ in range(5):
            p = self.bm_proc("sync")
            time.sleep(rng.uniform(0.1, 0.6))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
            out, err = p.communicate(timeout=60)
            self.outputs += [out, err]
        self.assertGreaterEqual(kills, 2)
        self.emu.faults()
        self.sync()
        n = self.emu.counters()
        print("SIGKILL x%d during a rule-change resync: %d writes (minimum 40)" % (kills,
                                                                                  n["writes"]))
        blocks = self.emu.blocks(B)
        self.assertEqual(len(blocks), 26)  # 40 - 14 lunches
        self.assertEqual({b["summary"] for b in blocks}, {"Occupied"})
        self.assertEqual(len(self.emu.dump(B)), 40)  # 26 live, 14 deleted: never a duplicate
        self.assertEqual(db_rows(self, "SELECT count(*) FROM outbox"), [(0,)])
        self.assertEqual(db_rows(self, "SELECT count(*) FROM blocks WHERE wanted IS NULL"), [(0,)])
        self.assertGreaterEqual(n["writes"], 40)
        self.assert_steady()
        out, _ = self.bm("cleanup", "--dry-run")
        self.assertIn("would remove 0 orphaned blocks", out)


class SurfaceTest(PathsBase):
    def test_dry_run_verbose_after_a_rule_change_writes_nothing_and_names_every_skip(self):
        for i, t in enumerate(["Lunch", "Planning", "Lunch 2", "Late"]):
            self.emu.event(A, timed(t, monday(8 + i * 4)))
        self.sync()
        self.set_rules(exclude_title="lunch", working_hours="Mon-Fri 08:00-18:00")
        before = db_rows(self, "SELECT * FROM blocks ORDER BY block_id")
        self.emu.reset_counters()
        out, _ = self.sync("--dry-run", "--verbose")
        self.assertEqual(self.emu.counters()["writes"], 0)
        self.assertEqual(out.count("skip reason=exclude_title calendar=%s" % A), 2, out)
        self.assertEqual(out.count("skip reason=working_hours calendar=%s" % A), 1, out)
        self.assertEqual(out.count("would delete"), 3, out)
        self.assertEqual(db_rows(self, "SELECT * FROM blocks ORDER BY block_id"), before)
        # the real run still does it
        n = self.counted()
        self.assertEqual((n["delete"], n["writes"]), (3, 3))

    def test_rules_check_with_an_unknown_calendar_is_a_clear_error(self):
        out, err = self.bm("rules", "check", "--calendar-id", "nobody@example.com", expect=2)
        self.assertIn("nobody@example.com", err)
        self.assertEqual(out, "")  # no half answer before the error
        out, err = self.bm("rules", "check", "--calendar-id", A, "--account-id", "bob", expect=2)
        self.assertEqual(out, "")

    def test_an_empty_regex_is_unset_not_a_regex_matching_everything(self):
        self.emu.event(A, timed("Planning", monday(9)))
        self.set_rules(exclude_title="", include_title="")
        self.sync()
        self.assertEqual(len(self.emu.blocks(B)), 1)
        out, _ = self.bm("rules", "check")
        self.assertIn("exclude_title = \n", out)

    def test_a_regex_of_pathological_cost_refuses_to_start(self):
        # glibc's matcher takes seconds and hundreds of MB on a 100-byte title
        # with nested bounded repetitions (measured: 2.6 s, 218 MB)
        for rx in ("(a{1,255}){1,255}b", "(.{1,30}){1,30}x", "((a{1,10}){1,10}){1,10}"):
            self.write_config(**{G: {"exclude_title": rx}})
            _, err = self.bm("sync", expect=78)
            self.assertRegex(err, r"bm\.ini:\d+: \[group default\] exclude_title: .*costly")
        self.write_config(**{G: {"exclude_title": "(.{1,16}){1,16}x|^(lunch|gym)\\b"}})
        self.sync()

    def test_a_long_title_is_matched_on_its_first_1024_bytes(self):
        self.set_rules(exclude_title="secret")
        self.emu.event(A, timed("x" * 1100 + " secret", monday(9)))
        self.emu.event(A, timed("x" * 1000 + " secret", monday(10)))
        self.sync()
        self.assertEqual(len(self.emu.blocks(B)), 1)

    def test_include_and_exclude_together(self):
        self.set_rules(include_title="client", exclude_title="internal")
        self.emu.event(A, timed("Client call", monday(9)))
        self.emu.event(A, timed("Client internal prep", monday(10)))
        self.emu.event(A, timed("Team", monday(11)))
        out, _ = self.sync("--verbose")
        self.assertEqual(len(self.emu.blocks(B)), 1)
        self.assertIn("skip reason=exclude_title", out)
        self.assertIn("skip reason=include_title", out)


class ServeRulesTest(ServeCase):
    def setUp(self):
        super().setUp()
        self.add_account("alice", A)
        self.add_account("bob", B)
        self.bm("calendar", "discover", "--account-id", "alice")
        self.bm("calendar", "discover", "--account-id", "bob")
        for c in (A, B):
            self.bm("calendar", "enable", "--calendar-id", c)

    def test_a_rule_change_takes_effect_when_serve_restarts_without_waiting_a_poll(self):
        for i, t in enumerate(["Lunch", "Planning", "Review"]):
            self.emu.event(A, timed(t, monday(9 + i)))
        self.configure()
        server = self.serve()
        self.expect_blocks([B], {B: 3})
        self.wait_for("quiet", lambda: self.db("SELECT count(*) FROM outbox")[0][0] == 0)
        server.stop()
        self.configure(**{G: {"exclude_title": "lunch", "block_summary": "Occupied"}})
        self.emu.reset_counters()
        server = self.serve()
        self.wait_for("the new rules applied", lambda: sorted(
            b["summary"] for b in self.emu.blocks(B)) == ["Occupied", "Occupied"])
        self.wait_for("quiet", lambda: self.db("SELECT count(*) FROM outbox")[0][0] == 0)
        time.sleep(1.5)
        n = self.emu.counters()
        self.assertEqual((n["delete"], n["update"], n["insert"]), (1, 2, 0))

    def test_a_label_change_reaches_a_running_serve_promptly(self):
        self.emu.event(A, timed("Planning", monday(9)))
        self.configure(**{G: {"block_summary": "Busy ({calendar})"}})
        self.serve()
        self.wait_for("the block", lambda: [b["summary"] for b in self.emu.blocks(B)] ==
                      ["Busy (%s)" % A])
        self.bm("calendar", "set", "--calendar-id", A, "--label", "Work")
        self.wait_for("the new title", lambda: [b["summary"] for b in self.emu.blocks(B)] ==
                      ["Busy (Work)"], timeout=20)


if __name__ == "__main__":
    unittest.main()
