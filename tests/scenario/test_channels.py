"""Watch channels over time, end to end: the emulator grants channels of a few
seconds (--max-channel-ttl) so that serve renews them during the test. A
renewal leaves no moment without a live channel and loses no change at the
seam, and stops the old channel; a channel the database does not hold (a crash
between the watch and its commit) is stopped on its first notification; a
refused watch polls, says why in status and /metrics, and returns to push when
the refusal lifts; with every notification dropped the backstop poll still
mirrors each change; disabling a calendar stops its channel at Google."""
import json
import time
import unittest
import urllib.parse
import urllib.request

import test_serve
from harness import CLIENT_ID, CLIENT_SECRET, hour, timed
from test_serve import ServeCase

TTL = 30     # seconds the emulator grants a channel
RENEW = 14   # [renewer] renew_before: renewed with 7..14 s left (looked at every 5 s)


class ChannelCase(ServeCase):
    emulator_args = ("--max-channel-ttl", str(TTL))
    channel_token = test_serve.PushTest.channel_token

    def live_per_calendar(self):
        """Unstopped, granted, unexpired channels of each enabled calendar."""
        now = int(time.time() * 1000)
        return dict(self.db(
            "SELECT c.gcal_id, (SELECT count(*) FROM channels ch WHERE ch.calendar_id = c.id"
            " AND ch.stopped_at IS NULL AND ch.resource_id IS NOT NULL AND ch.expiration > ?)"
            " FROM calendars c WHERE c.enabled = 1", now))

    def status(self):
        out, _ = self.bm("status", "--json", expect=None)
        return {c["calendar"]: c for c in json.loads(out)["calendars"]}

    def access_token(self, refresh_token):
        body = urllib.parse.urlencode({"grant_type": "refresh_token",
                                       "refresh_token": refresh_token,
                                       "client_id": CLIENT_ID,
                                       "client_secret": CLIENT_SECRET}).encode()
        with urllib.request.urlopen(self.emu.base + "/token", data=body, timeout=10) as r:
            return json.loads(r.read())["access_token"]

    def emu_channels(self):
        return {c["id"] for c in self.emu.call("GET", "/_emulator/channels")["items"]}


class RenewalTest(ChannelCase):
    def test_renewal_leaves_no_gap_loses_no_change_and_stops_the_old_channel(self):
        a, b, c = self.three_calendars()
        self.configure(renewer={"renew_before": RENEW})
        self.serve()
        self.channels_live(3)
        first = {i for (i,) in self.db("SELECT id FROM channels WHERE resource_id IS NOT NULL")}
        self.emu.reset_counters()
        made, t0, next_event = 0, time.time(), 0
        # past two renewals of every channel; a change a second, so some land at the seams
        while time.time() - t0 < 2 * TTL - RENEW / 2 + 5:
            live = self.live_per_calendar()
            for cal, n in live.items():
                self.assertGreaterEqual(n, 1, "no live channel for %s at %.1f s: %r"
                                        % (cal, time.time() - t0, live))
            if time.time() >= next_event:
                self.emu.event(a, timed("Seam %d" % made, hour(1) + made * 900, minutes=10))
                made += 1
                next_event = time.time() + 1
            time.sleep(0.05)
        self.expect_blocks([b, c], {b: made, c: made})
        counters = self.emu.counters()
        self.assertGreaterEqual(counters["watch"], 6, counters)  # two renewals of 3 channels
        self.assertGreaterEqual(counters["stop"], 3, counters)   # ... each old one stopped
        self.assertFalse(first & self.emu_channels(), "an old channel still live at Google")
        stopped = self.db("SELECT count(*) FROM channels WHERE stopped_at IS NOT NULL")[0][0]
        self.assertGreaterEqual(stopped, 3)

    def test_a_channel_without_a_row_is_stopped_on_its_first_notification(self):
        a, b, c = self.three_calendars()
        self.configure()
        self.serve()
        self.channels_live(3)
        # serve crashed between the watch and its commit: Google has the channel,
        # the database does not
        stray = "bm" + "5" * 32
        token = self.access_token("refresh-alice")
        req = urllib.request.Request(
            self.emu.base + "/calendar/v3/calendars/%s/events/watch" % urllib.parse.quote(a),
            data=json.dumps({"id": stray, "type": "web_hook",
                             "address": "http://127.0.0.1:%d/google/notify" % self.port,
                             "token": self.channel_token(stray)}).encode(),
            headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
            method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(r.status, 200)
        stops = self.emu.counters()["stop"]
        self.emu.event(a, timed("After the crash", hour(9)))
        self.wait_for("the stray stopped at Google", lambda: stray not in self.emu_channels())
        self.assertGreater(self.emu.counters()["stop"], stops)
        # the stop is recorded just after Google answered it
        self.wait_for("the stray's row marked stopped", lambda: self.db(
            "SELECT stopped_at IS NOT NULL FROM channels WHERE id = ?", stray) == [(1,)])
        self.expect_blocks([b, c], {b: 1, c: 1})  # the change itself is mirrored
        self.channels_live(3)  # the real channels stay

    def test_disabling_a_calendar_stops_its_channel(self):
        a, b, c = self.three_calendars()
        self.configure()
        self.serve()
        self.channels_live(3)
        chan, = self.db("SELECT ch.id FROM channels ch JOIN calendars k ON k.id = ch.calendar_id"
                        " WHERE k.gcal_id = ? AND ch.stopped_at IS NULL", c)[0]
        stops = self.emu.counters()["stop"]
        self.bm("calendar", "disable", "--calendar-id", c)
        self.assertNotIn(chan, self.emu_channels())
        self.assertEqual(self.emu.counters()["stop"], stops + 1)
        self.channels_live(2)
        time.sleep(6)  # a renewer round: it gives the disabled calendar no new channel
        self.channels_live(2)
        self.assertEqual(len(self.emu_channels()), 2)


class RefusalTest(ChannelCase):
    def test_a_refused_watch_polls_says_why_and_returns_to_push(self):
        a, b, c = self.three_calendars()
        self.emu.faults(refuse_watch=403)
        self.configure(poll_interval=2, renewer={"watch_retry": 2})
        self.serve()
        self.wait_for("every calendar refused", lambda: all(
            s.get("push") == "refused" for s in self.status().values()))
        st = self.status()[a]
        self.assertEqual(st["mode"], "poll")
        self.assertEqual(st["push_refused"], "webhookUrlUnauthorized")
        self.assertIsNotNone(st["push_retry_at"])
        out, _ = self.bm("status", expect=None)
        self.assertIn("push=refused (webhookUrlUnauthorized) retry ", out)
        self.assertIn("busymirror_watch_refused 3", self.admin("/metrics")[1])
        self.assertIn('busymirror_calendars{mode="poll"} 3', self.admin("/metrics")[1])
        self.assertEqual(self.db("SELECT count(*) FROM accounts WHERE state <> 0")[0][0], 0,
                         "a refused address is not a login problem")
        # polled meanwhile
        self.emu.event(a, timed("Polled", hour(4)))
        self.expect_blocks([b, c], {b: 1, c: 1})
        # the refusal lifts: push comes back within the backoff
        self.emu.faults()
        self.channels_live(3)
        self.wait_for("push on again", lambda: all(
            s.get("push") == "on" and s.get("push_refused") is None
            for s in self.status().values()))
        self.wait_for("the gauge cleared",
                      lambda: "busymirror_watch_refused 0" in self.admin("/metrics")[1])

    def test_a_push_not_supported_calendar_says_so(self):
        self.three_calendars()
        self.emu.faults(refuse_watch=400)
        self.configure(poll_interval=2, renewer={"watch_retry": 60})
        self.serve()
        self.wait_for("refused", lambda: all(
            s.get("push_refused") == "pushNotSupportedForRequestedResource"
            for s in self.status().values()))
        out, _ = self.bm("status", expect=None)
        self.assertIn("push=refused (pushNotSupportedForRequestedResource) retry in 1 min", out)


class DroppedTest(ChannelCase):
    def test_every_notification_dropped_changes_still_mirrored_within_a_poll(self):
        a, b, c = self.three_calendars()
        self.configure(poll_interval=2)
        self.emu.faults(drop_notifications=1)  # only each channel's "sync" gets through
        self.serve()
        self.channels_live(3)
        time.sleep(1)
        notes = self.emu.counters()["notifications"]
        t0 = time.time()
        self.emu.event(c, timed("Unheard", hour(6)))
        self.expect_blocks([a, b], {a: 1, b: 1})
        self.assertLess(time.time() - t0, 2 * 2 + 3, "not within about one poll interval")
        self.assertEqual(self.emu.counters()["notifications"], notes, "a notification got through")


if __name__ == "__main__":
    unittest.main()
