"""Isolation under serve with push: one failing account never delays the others.

Three accounts a, b, c (each a primary and a second calendar, all six in one
group, so every change of one account is also written to the other two). The
test measures c's push latency (the emulator write of an event in c's primary
to its block in c's second calendar) first with no faults, then while every
call authenticated as a fails (500) and every call as b is slow (latency below
the request timeout); c's median stays within BOUND_MS of the baseline. It
checks that a's circuit breaker opens (in /metrics and `status`), that while it
is open no call is made as a (the emulator counts calls per user), and that
once the faults clear a half-open probe closes it and a converges.

A second test makes b's calls hang past [google] request_timeout: a worker is
freed once the timeout passes (b's sync fails in bounded time instead of
holding its worker) and c's changes keep flowing meanwhile."""
import json
import statistics
import sys
import time
import unittest

from harness import hour, q, timed
from test_serve import ServeCase

ROUNDS = 8          # c events measured per phase
BOUND_MS = 250      # c's median may grow by this much under a's and b's faults
SLOW_MS = 1500      # b's latency: well past nothing, below the request timeout
BREAKER_WAIT = 120  # s: the breaker's first open period is a minute
# One worker at a time works on an account, so a's failing calls and b's slow
# ones hold one worker each: c has the others.
WORKERS = 4
TIMEOUT_S = 2       # the hung-API test's [google] request_timeout
HANG_MS = 60000     # its hung calls: far past the timeout


def p50(xs):
    return statistics.median(xs)


class Isolation(ServeCase):
    def accounts(self):
        """Accounts a, b, c with a primary and a second calendar each, all enabled
        in one group; returns {name: (primary, second)}."""
        cals = {}
        for n in ("a", "b", "c"):
            email = "%s@example.com" % n
            self.add_account(n, email)
            second = "%s-2@group.calendar.google.com" % n
            self.emu.calendar(email, second, "%s second" % n)
            self.bm("calendar", "discover", "--account-id", n)
            for cal in (email, second):
                self.bm("calendar", "enable", "--calendar-id", cal)
            cals[n] = (email, second)
        return cals

    def user_faults(self, email, **kw):
        self.emu.call("POST", "/_emulator/users/%s/faults" % q(email), kw)

    def user_calls(self, email):
        return self.emu.call("GET", "/_emulator/users/%s/counters" % q(email))["calls"]

    def block_at(self, cal, start):
        want = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start))
        return any(b["start"].get("dateTime", "").startswith(want) for b in self.emu.blocks(cal))

    def c_latency(self, src, dst, start, summary):
        """Seconds from the emulator write of an event in src to its block in dst."""
        self.emu.event(src, timed(summary, start, minutes=10))
        t0 = time.monotonic()
        deadline = t0 + 30
        while time.monotonic() < deadline:
            if self.block_at(dst, start):
                return time.monotonic() - t0
            time.sleep(0.005)
        self.fail("no block for %s in %s within 30 s" % (summary, dst))

    def metric(self, name, labels):
        for line in self.admin("/metrics")[1].splitlines():
            if line.startswith("%s{%s} " % (name, labels)):
                return float(line.split()[-1])
        return None

    def breaker_open(self, account):
        return self.metric("busymirror_breaker_open", 'account="%s"' % account)

    def status_account(self, name):
        out, _ = self.bm("status", "--json", expect=None)
        for acct in json.loads(out)["accounts"]:
            if acct["name"] == name:
                return acct
        self.fail("no account %s in status" % name)

    def test_a_failing_and_b_slow_leave_c_latency_unchanged(self):
        cals = self.accounts()
        (a, a2), (b, b2), (c, c2) = cals["a"], cals["b"], cals["c"]
        self.configure(google={"request_timeout": 10}, engine={"workers": WORKERS})
        server = self.serve()
        self.channels_live(6)
        self.wait_for("idle", lambda: self.db("SELECT count(*) FROM jobs")[0][0] == 0)
        slot = [hour(2)]

        def next_start():
            slot[0] += 900
            return slot[0]

        base = [self.c_latency(c, c2, next_start(), "Base %d" % i) for i in range(ROUNDS)]

        self.user_faults(a, error_500=1)
        self.user_faults(b, latency_ms=SLOW_MS)
        faulted = []
        for i in range(ROUNDS):
            # a and b have work of their own all along: jobs that fail or crawl
            self.emu.event(a, timed("A %d" % i, next_start(), minutes=10))
            self.emu.event(b, timed("B %d" % i, next_start(), minutes=10))
            faulted.append(self.c_latency(c, c2, next_start(), "Faulted %d" % i))
        print("\nisolation: c's push latency p50 %.0f ms (max %.0f) with no faults, "
              "%.0f ms (max %.0f) while a fails and b takes %d ms a call"
              % (p50(base) * 1000, max(base) * 1000, p50(faulted) * 1000, max(faulted) * 1000,
                 SLOW_MS), file=sys.stderr)
        self.assertLessEqual(p50(faulted), p50(base) + BOUND_MS / 1000.0,
                             "c slowed down by a's failures or b's slowness")

        # a's breaker is open: in /metrics, in status, and no call is made as a
        self.wait_for("a's breaker open in /metrics", lambda: self.breaker_open("a") == 1)
        self.assertEqual(self.breaker_open("c"), 0)
        self.assertEqual(self.status_account("a")["breaker"], "open")
        self.assertEqual(self.status_account("c")["breaker"], "closed")
        until = self.db("SELECT breaker_until FROM accounts WHERE name = 'a'")[0][0]
        calls0 = self.user_calls(a)
        quiet_until = min(time.time() + 4, until - 1)
        n = 0
        while time.time() < quiet_until:  # a's calendars get changes and blocks to write
            self.emu.event(a, timed("A while open %d" % n, next_start(), minutes=10))
            self.emu.event(c, timed("C while open %d" % n, next_start(), minutes=10))
            n += 1
            time.sleep(0.5)
        self.assertEqual(self.user_calls(a), calls0, "calls made as a while its breaker is open")

        # the faults clear: a half-open probe closes the breaker and a converges
        self.user_faults(a)
        self.user_faults(b)
        self.wait_for("a's breaker closed (status)",
                      lambda: self.status_account("a")["breaker"] == "closed",
                      timeout=BREAKER_WAIT)
        self.assertEqual(self.breaker_open("a"), 0)
        self.assertGreater(self.user_calls(a), calls0, "no half-open probe")
        mine = {cal: [e for e in self.emu.dump(cal)
                      if "busymirror" not in e.get("extendedProperties", {}).get("private", {})]
                for pair in cals.values() for cal in pair}
        want = {cal: sum(len(v) for k, v in mine.items() if k != cal) for cal in mine}
        self.expect_blocks(list(want), want)
        self.assertEqual(self.db("SELECT count(*) FROM dead_letters")[0][0], 0)
        self.assertIsNone(server.p.poll())

    def test_a_hung_api_frees_its_worker_after_the_timeout(self):
        """b's every call hangs far past [google] request_timeout (2 s): each
        attempt ends at the timeout, b's sync fails after the client's retries
        (its breaker opens) and the worker goes back to work; meanwhile c's
        changes keep flowing on the other worker (the default two)."""
        cals = self.accounts()
        (b, b2), (c, c2) = cals["b"], cals["c"]
        self.configure(google={"request_timeout": TIMEOUT_S})
        server = self.serve()
        self.channels_live(6)
        self.wait_for("idle", lambda: self.db("SELECT count(*) FROM jobs")[0][0] == 0)
        before = self.db("SELECT COALESCE(max(id), 0) FROM sync_log")[0][0]
        self.user_faults(b, latency_ms=HANG_MS)
        t0 = time.monotonic()
        self.emu.event(b, timed("Hung", hour(3), minutes=10))
        start = hour(4)
        lat = []
        while time.monotonic() - t0 < 2 * TIMEOUT_S:  # while b's first calls hang
            start += 900
            lat.append(self.c_latency(c, c2, start, "During the hang"))
        print("\nhung api: c's push latency p50 %.0f ms (max %.0f, %d changes) while b's calls "
              "hang past the %d s timeout" % (p50(lat) * 1000, max(lat) * 1000, len(lat),
                                              TIMEOUT_S), file=sys.stderr)
        self.assertLess(max(lat), TIMEOUT_S, "c waited for b's hung calls")

        def b_failed():
            return self.db("SELECT duration_ms, error FROM sync_log l JOIN calendars c"
                           " ON c.id = l.calendar_id WHERE c.gcal_id = ? AND l.id > ?"
                           " AND l.result != 'ok' ORDER BY l.id LIMIT 1", b, before)
        # 6 attempts of at most the timeout each, plus the client's backoff
        # between them (full jitter, 0.5 s doubling: under 16 s in all)
        bound_s = 6 * TIMEOUT_S + 16 + 10
        self.wait_for("b's sync to fail", lambda: b_failed(), timeout=bound_s)
        ms, error = b_failed()[0]
        print("hung api: b's sync gave up after %.1f s: %s" % (ms / 1000, error), file=sys.stderr)
        self.assertLess(ms, bound_s * 1000)
        self.assertIn("gave up after 6 attempts", error)
        # the worker is free again: it takes c's next change (b's breaker keeps b away)
        self.wait_for("b's breaker open", lambda: self.breaker_open("b") == 1)
        self.assertLess(self.c_latency(c, c2, start + 900, "After the hang"), TIMEOUT_S)
        self.assertEqual(self.admin("/readyz")[0], 200)
        self.assertIsNone(server.p.poll())


if __name__ == "__main__":
    unittest.main()
