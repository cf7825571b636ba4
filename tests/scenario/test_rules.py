"""Mirror rules per group ([group G]) against gcal-emulator: each rule alone and
combined, rule changes converging with the minimum writes, series decided per
occurrence, copy_title following a title edit, labels, rules check, and a bad
rule refusing to start."""
import datetime
import os
import time
import unittest

from harness import Scenario, day, db_rows, timed

A, B = "alice@example.com", "bob@example.com"
G = "group default"


def monday(h=0, weeks=1):
    """Epoch of a Monday 00:00 UTC at least a day ahead, plus h hours."""
    now = int(time.time())
    d = now // 86400 + 1
    while (d + 4) % 7 != 1:  # 1970-01-01 was a Thursday; 1 = Monday
        d += 1
    return (d + 7 * (weeks - 1)) * 86400 + h * 3600


def epoch(date_time):
    return int(datetime.datetime.fromisoformat(date_time.replace("Z", "+00:00")).timestamp())


def suffix(t):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


class RulesTest(Scenario):
    def setUp(self):
        super().setUp()
        self.rules = {}
        self.write_config()
        self.enabled_accounts(("alice", A), ("bob", B))

    def set_rules(self, **rules):
        self.rules = {k: v for k, v in rules.items()}
        self.write_config(**{G: self.rules} if self.rules else {})

    def sync(self, *args, expect=0):
        return self.bm("sync", *args, expect=expect)

    def titles(self, cal):
        return sorted(b["summary"] for b in self.emu.blocks(cal))

    def wanted(self):
        return {(t, b): w for t, b, w in
                db_rows(self, "SELECT target_calendar_id, block_id, wanted FROM blocks")}

    def change(self, **rules):
        """Applies new rules and syncs; returns (writes, blocks whose wanted state
        changed, counters), printing the figures."""
        before = self.wanted()
        self.set_rules(**rules)
        self.emu.reset_counters()
        self.sync()
        n = self.emu.counters()
        after = self.wanted()
        changed = sum(1 for k in set(before) | set(after) if before.get(k) != after.get(k))
        print("rule change %s: %d writes (insert %d, update %d, delete %d) for %d blocks whose "
              "wanted state changed" % (rules or "{}", n["writes"], n["insert"], n["update"],
                                        n["delete"], changed))
        return n["writes"], changed, n

    # ---- each rule on its own ----

    def test_exclude_and_include_title(self):
        self.set_rules(exclude_title="^(lunch|gym)\\b")
        self.emu.event(A, timed("Lunch with Bob", monday(12)))
        self.emu.event(A, timed("GYM", monday(7)))
        self.emu.event(A, timed("Board meeting", monday(9)))
        self.emu.event(A, timed("Réunion lunchtime", monday(10)))
        self.sync()
        self.assertEqual(self.titles(B), ["Busy", "Busy"])
        self.set_rules(include_title="réunion|RÉUNION")
        self.sync()
        (b,) = self.emu.blocks(B)
        self.assertEqual(b["start"]["dateTime"].replace("+00:00", "Z")[:19],
                         time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(monday(10))))

    def test_event_types_all_day_tentative_unanswered(self):
        me = [{"email": A, "self": True, "responseStatus": "accepted"}]
        self.emu.event(A, timed("Office", monday(8), eventType="workingLocation",
                                workingLocationProperties={"type": "officeLocation"}))
        self.emu.event(A, {"summary": "Holiday", "start": {"date": day(20)},
                           "end": {"date": day(21)}})
        # invitations: someone else organises (an event A organises is A's: busy)
        carol = {"email": "carol@example.org"}
        self.emu.event(A, timed("Maybe", monday(10), organizer=carol,
                                attendees=[dict(me[0], responseStatus="tentative")]))
        self.emu.event(A, timed("Status tentative", monday(11), status="tentative"))
        self.emu.event(A, timed("Not answered", monday(12), organizer=carol, attendees=[
            dict(me[0], responseStatus="needsAction")]))
        self.emu.event(A, timed("Accepted", monday(13), attendees=me))
        # A organises it; A's own attendee entry was never answered: still A's, busy
        self.emu.event(A, timed("Mine with guests", monday(14), attendees=[
            dict(me[0], responseStatus="needsAction", organizer=True),
            {"email": B, "responseStatus": "needsAction"}]))
        self.sync()
        self.assertEqual(len(self.emu.blocks(B)), 6)  # all but workingLocation
        for rules, n in (({"event_types": "default,workingLocation"}, 7),
                         ({"all_day": "false"}, 5),
                         ({"tentative": "false"}, 4),
                         ({"unanswered": "false"}, 5),
                         ({"all_day": "false", "tentative": "false", "unanswered": "false"}, 2)):
            self.set_rules(**rules)
            self.sync()
            self.assertEqual(len(self.emu.blocks(B)), n, rules)

    def test_declined_and_free_are_never_mirrored(self):
        self.set_rules(event_types="default,outOfOffice,focusTime,fromGmail,workingLocation",
                       include_title=".")
        self.emu.event(A, timed("Declined", monday(9), attendees=[
            {"email": A, "self": True, "responseStatus": "declined"}]))
        self.emu.event(A, timed("Free", monday(10), transparency="transparent"))
        self.sync()
        self.assertEqual(self.emu.blocks(B), [])

    def test_working_hours_in_a_zone(self):
        self.set_rules(working_hours="Mon-Fri 08:00-18:00", time_zone="America/New_York")
        self.emu.event(A, timed("NY morning", monday(14)))     # 09:00 EST/10:00 EDT: in
        self.emu.event(A, timed("Berlin morning", monday(8)))  # 03:00/04:00 in New York: out
        self.emu.event(A, timed("Saturday", monday(24 * 5 + 15)))
        sat = time.strftime("%Y-%m-%d", time.gmtime(monday(24 * 5)))
        sun = time.strftime("%Y-%m-%d", time.gmtime(monday(24 * 6)))
        self.emu.event(A, {"summary": "Saturday all day", "start": {"date": sat},
                           "end": {"date": sun}})
        out, _ = self.sync("--verbose")
        self.assertEqual(len(self.emu.blocks(B)), 2)  # the New York morning, the all-day one
        self.assertEqual(out.count("skip reason=working_hours calendar=%s" % A), 2, out)

    def test_buffers_timed_only_and_overlapping_blocks_both_stay(self):
        self.set_rules(buffer_before="15", buffer_after="30")
        self.emu.event(A, timed("First", monday(9), 60))
        self.emu.event(A, timed("Second", monday(10) + 900, 45))  # 15 min after First
        self.emu.event(A, {"summary": "Off", "start": {"date": day(20)},
                           "end": {"date": day(21)}})
        self.sync()
        blocks = self.emu.blocks(B)
        self.assertEqual(len(blocks), 3)
        spans = sorted((b["start"].get("dateTime"), b["end"].get("dateTime")) for b in blocks
                       if "dateTime" in b["start"])
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
        got = [(s[:19], e[:19]) for s, e in spans]
        self.assertEqual(got, [(iso(monday(9) - 900), iso(monday(10) + 1800)),
                               (iso(monday(10)), iso(monday(11) + 1800))])
        (allday,) = [b for b in blocks if "date" in b["start"]]
        self.assertEqual((allday["start"]["date"], allday["end"]["date"]), (day(20), day(21)))
        # steady state: a second and third sync write nothing
        self.sync()
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 0)

    def test_label_in_block_title_and_label_change_replans_that_calendar(self):
        self.set_rules(block_summary="Busy ({calendar})")
        self.emu.event(A, timed("Planning", monday(9)))
        self.emu.event(A, timed("Review", monday(11)))
        self.emu.event(B, timed("Standup", monday(10)))
        self.sync()
        self.assertEqual(self.titles(B), ["Busy (%s)" % A] * 2)  # the summary by default
        self.bm("calendar", "set", "--calendar-id", A, "--label", "Work ✓")
        out, _ = self.bm("calendar", "list", "--json")
        self.assertIn('"label":"Work ✓"', out.replace(" ", "").replace("Work✓", "Work ✓"))
        self.emu.reset_counters()
        self.sync()
        n = self.emu.counters()
        self.assertEqual(self.titles(B), ["Busy (Work ✓)"] * 2)
        self.assertEqual(self.titles(A), ["Busy (%s)" % B])
        self.assertEqual(n["writes"], 2)  # A's two blocks in B only
        self.assertEqual(n["list_full"], 1)  # only A is listed in full again
        out, _ = self.bm("calendar", "list")
        self.assertRegex(out.splitlines()[0], r"SUMMARY\s+LABEL\s+GROUP")
        self.assertIn("Work ✓", out)
        # bad labels are usage errors; '' goes back to the summary
        for bad in ("tab\there", "x" * 101, "\x7f"):
            self.bm("calendar", "set", "--calendar-id", A, "--label", bad, expect=2)
        self.bm("calendar", "set", "--calendar-id", A, expect=2)
        self.bm("calendar", "list", "--label", "x", expect=2)
        self.bm("calendar", "set", "--calendar-id", A, "--label", "")
        self.sync()
        self.assertEqual(self.titles(B), ["Busy (%s)" % A] * 2)

    def test_copy_title_follows_a_title_edit(self):
        self.set_rules(copy_title="true")
        ev = self.emu.event(A, timed("Planning", monday(9), description="agenda",
                                     location="Room 1", attendees=[{"email": "x@example.com"}]))
        self.sync()
        self.sync()
        (b,) = self.emu.blocks(B)
        self.assertEqual(b["summary"], "Planning")
        self.assertEqual(b["visibility"], "private")
        for field in ("description", "location", "attendees", "conferenceData"):
            self.assertNotIn(field, b)
        self.emu.patch_event(A, ev["id"], {"summary": "Planning v2", "description": "new"})
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 1)  # the one case a title edit costs
        (b,) = self.emu.blocks(B)
        self.assertEqual(b["summary"], "Planning v2")
        self.assertNotIn("description", b)

    # ---- combined ----

    def test_rules_combined(self):
        self.set_rules(exclude_title="private", working_hours="Mon-Fri 08:00-18:00",
                       all_day="false", buffer_before="10", block_summary="{calendar}: busy")
        self.bm("calendar", "set", "--calendar-id", A, "--label", "Alice")
        self.emu.event(A, timed("Client call", monday(9)))
        self.emu.event(A, timed("Private errand", monday(10)))
        self.emu.event(A, timed("Late call", monday(20)))
        self.emu.event(A, {"summary": "Trip", "start": {"date": day(20)},
                           "end": {"date": day(21)}})
        out, _ = self.sync("--dry-run", "--verbose")
        for reason in ("exclude_title", "working_hours", "all_day"):
            self.assertIn("skip reason=%s calendar=%s" % (reason, A), out)
        self.assertEqual(self.emu.counters()["writes"], 0)
        self.sync()
        (b,) = self.emu.blocks(B)
        self.assertEqual(b["summary"], "Alice: busy")
        self.assertEqual(b["start"]["dateTime"][:19],
                         time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(monday(9) - 600)))

    # ---- rule changes: exact, minimum writes, both directions ----

    def test_rule_changes_converge_with_the_minimum_writes(self):
        for i, title in enumerate(["Lunch", "Planning", "Lunch", "Review", "Standup", "1:1"]):
            self.emu.event(A, timed(title, monday(8 + i)))
        self.emu.event(B, timed("Bob's", monday(15)))
        self.sync()
        self.sync()
        self.assertEqual(len(self.emu.blocks(B)), 6)
        figures = []
        # exclude two: two deletes
        writes, changed, n = self.change(exclude_title="lunch")
        self.assertEqual((changed, n["delete"], n["insert"], n["update"]), (2, 2, 0, 0))
        self.assertEqual(writes, changed)
        figures.append(("exclude_title on", writes, changed))
        self.assertEqual(len(self.emu.blocks(B)), 4)
        # and back: two blocks again, each one update that revives the deleted
        # block (its id is remembered: an insert would answer 409 first)
        writes, changed, n = self.change()
        self.assertEqual(changed, 2)
        self.assertEqual((n["insert"], n["update"], n["delete"]), (0, 2, 0))
        self.assertEqual(writes, changed)
        figures.append(("exclude_title off", writes, changed))
        self.assertEqual(len(self.emu.blocks(B)), 6)
        self.assertEqual(len(self.emu.dump(B)), 7)  # 6 blocks + Bob's own event
        # buffers: every timed block of the group moves once
        writes, changed, n = self.change(buffer_after="15")
        self.assertEqual((writes, changed), (7, 7))  # 6 in B, 1 in A
        figures.append(("buffer_after 15", writes, changed))
        writes, changed, n = self.change()
        self.assertEqual((writes, changed), (7, 7))
        figures.append(("buffer_after off", writes, changed))
        # a rule that changes nothing costs a listing, no write
        writes, changed, n = self.change(exclude_title="nothing matches this")
        self.assertEqual((writes, changed), (0, 0))
        figures.append(("exclude_title matching nothing", writes, changed))
        # the steady state after each change: nothing more to do
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 0)
        for name, w, c in figures:
            print("figure: %-32s writes=%d minimum=%d" % (name, w, c))
        # a rule never touches an event busymirror did not create
        self.assertEqual([e["summary"] for e in self.emu.dump(B) if "busymirror" not in
                          e.get("extendedProperties", {}).get("private", {})], ["Bob's"])

    def test_a_rule_change_under_write_faults_converges_exactly(self):
        for i in range(6):
            self.emu.event(A, timed("Lunch %d" % i if i % 2 else "Meeting %d" % i, monday(8 + i)))
        self.sync()
        self.set_rules(exclude_title="lunch", block_summary="Occupied")
        # the first writes fail: what is left stays in the outbox, planned once
        self.emu.faults(writes_only=1, max_errors=2, error_503=1.0)
        self.sync(expect=None)
        self.emu.faults()
        self.sync()
        self.sync()
        self.assertEqual(self.titles(B), ["Occupied"] * 3)
        self.assertEqual(len(self.emu.dump(B)), 6)  # 3 live, 3 deleted: never a duplicate
        self.assertEqual(db_rows(self, "SELECT count(*) FROM outbox"), [(0,)])
        self.assertEqual(db_rows(self, "SELECT count(*) FROM dead_letters"), [(0,)])
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 0)

    # ---- series ----

    def test_series_with_buffers_moves_as_a_whole_with_its_overrides(self):
        self.set_rules(buffer_before="15", buffer_after="5")
        start = monday(8)
        s = self.emu.event(A, timed("Daily", start, 30, tz="Europe/Berlin",
                                    recurrence=["RRULE:FREQ=DAILY;COUNT=5"]))
        self.sync()
        self.sync()
        self.emu.patch_event(A, "%s_%s" % (s["id"], suffix(start + 2 * 86400)),
                             timed("Daily", start + 2 * 86400 + 3600, 30, tz="Europe/Berlin"))
        self.emu.delete_event(A, "%s_%s" % (s["id"], suffix(start + 3 * 86400)))
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 2)  # one override, one cancel
        items = self.emu.dump(B)
        (master,) = [e for e in items if e.get("recurrence")]
        self.assertEqual(epoch(master["start"]["dateTime"]), start - 900)
        self.assertEqual(epoch(master["end"]["dateTime"]), start + 1800 + 300)
        moved = [e for e in items if e.get("recurringEventId") and e.get("status") != "cancelled"]
        gone = [e for e in items if e.get("recurringEventId") and e.get("status") == "cancelled"]
        self.assertEqual([epoch(e["start"]["dateTime"]) for e in moved],
                         [start + 2 * 86400 + 3600 - 900])
        self.assertEqual([epoch(e["originalStartTime"]["dateTime"]) for e in gone],
                         [start + 3 * 86400 - 900])
        self.assertEqual(len(items), 3)
        self.sync()
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 0)

    def test_series_with_an_excluded_occurrence(self):
        self.set_rules(exclude_title="cancelled")
        start = monday(9)
        s = self.emu.event(A, timed("Standup", start, 15, tz="Europe/Berlin",
                                    recurrence=["RRULE:FREQ=DAILY;COUNT=10"]))
        self.sync()
        self.sync()
        self.emu.reset_counters()
        # one occurrence retitled so that the rule now skips it
        inst = "%s_%s" % (s["id"], suffix(start + 2 * 86400))
        self.emu.patch_event(A, inst, {"summary": "Standup cancelled (offsite)"})
        out, _ = self.sync("--verbose")
        self.assertIn("skip reason=exclude_title calendar=%s event=%s" % (A, inst), out)
        self.assertEqual(self.emu.counters()["writes"], 1)  # one cancelled occurrence
        items = self.emu.dump(B)
        masters = [e for e in items if e.get("recurrence")]
        self.assertEqual(len(masters), 1)
        gone = [e for e in items if e.get("recurringEventId") and e.get("status") == "cancelled"]
        self.assertEqual(len(gone), 1)
        self.assertEqual(epoch(gone[0]["originalStartTime"]["dateTime"]), start + 2 * 86400)

    def test_series_working_hours_per_occurrence_and_back(self):
        self.write_config(sync={"past_days": 0, "future_days": 30})
        start = monday(9)
        self.emu.event(A, timed("Daily", start, 30, tz="UTC",
                                recurrence=["RRULE:FREQ=DAILY;COUNT=14"]))
        self.sync()
        self.sync()
        weekend = [start + k * 86400 for k in range(14) if k % 7 in (5, 6)]
        before = self.wanted()
        self.emu.reset_counters()
        self.rules = {"working_hours": "Mon-Fri 08:00-18:00"}
        self.write_config(sync={"past_days": 0, "future_days": 30}, **{G: self.rules})
        self.sync()
        n = self.emu.counters()
        after = self.wanted()
        changed = sum(1 for k in set(before) | set(after) if before.get(k) != after.get(k))
        print("working_hours on a daily series: %d writes for %d changed occurrences"
              % (n["writes"], changed))
        self.assertEqual((n["writes"], changed), (len(weekend), len(weekend)))
        items = self.emu.dump(B)
        self.assertEqual(len([e for e in items if e.get("recurrence")]), 1)  # still one series
        gone = sorted(epoch(e["originalStartTime"]["dateTime"]) for e in items
                      if e.get("recurringEventId") and e.get("status") == "cancelled")
        self.assertEqual(gone, weekend)
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 0)
        # back: the cancelled occurrences return as the series has them
        self.write_config(sync={"past_days": 0, "future_days": 30})
        self.emu.reset_counters()
        self.sync()
        n = self.emu.counters()
        print("working_hours off again: %d writes" % n["writes"])
        self.assertEqual(n["writes"], len(weekend))
        items = self.emu.dump(B)
        self.assertEqual([e for e in items if e.get("status") == "cancelled"], [])
        self.emu.reset_counters()
        self.sync()
        self.assertEqual(self.emu.counters()["writes"], 0)

    # ---- rules check, bad rules ----

    def test_rules_check_counts_without_writing(self):
        self.set_rules(exclude_title="lunch", all_day="false")
        self.emu.event(A, timed("Lunch", monday(12)))
        self.emu.event(A, timed("Planning", monday(9)))
        self.emu.event(A, {"summary": "Trip", "start": {"date": day(20)},
                           "end": {"date": day(21)}})
        self.emu.reset_counters()
        out, _ = self.bm("rules", "check", "--calendar-id", A)
        self.assertIn("[group default]", out)
        self.assertIn("exclude_title = lunch", out)
        self.assertRegex(out, r"kept\s+1\n")
        self.assertRegex(out, r"skipped exclude_title\s+1\n")
        self.assertRegex(out, r"skipped all_day\s+1\n")
        n = self.emu.counters()
        self.assertEqual((n["writes"], n["list_sync"]), (0, 0))
        self.assertEqual(db_rows(self, "SELECT count(*) FROM blocks"), [(0,)])
        self.assertEqual(db_rows(self, "SELECT count(*) FROM sync_state WHERE sync_token IS NOT "
                                       "NULL"), [(0,)])

    def test_a_bad_rule_refuses_to_start(self):
        path = self.write_config(**{G: {"exclude_title": "(unclosed"}})
        for args in (("sync",), ("serve",), ("rules", "check")):
            _, err = self.bm(*args, expect=78)
            self.assertIn("%s:" % os.path.basename(path), err)
            self.assertRegex(err, r"bm\.ini:\d+: \[group default\] exclude_title: ")
        self.write_config(**{G: {"working_hours": "Mon-Fri 8-18"}})
        _, err = self.bm("serve", expect=78)
        self.assertRegex(err, r"bm\.ini:\d+: \[group default\] working_hours: ")
        self.write_config(**{G: {"event_types": "default,birthday"}})
        _, err = self.bm("sync", expect=78)
        self.assertIn("[group default] event_types: birthday", err)


if __name__ == "__main__":
    unittest.main()
