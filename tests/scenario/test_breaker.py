"""The circuit breaker of an account whose writes all fail while its listings work.

bob's block writes all fail (the emulator's per-user writes_only faults, at
100%), his calendar is listed every few seconds (poll_interval) and alice's
changes keep giving him writes to do, under serve. His breaker opens; when its
open period is over, the listing that comes first works, but that says nothing
of the writes: the breaker stays half-open, the drain's probe is one batch part,
it fails, and the breaker opens again for twice as long (before, the listing
closed it and reset it: it opened again for a minute, after whole batches of
failing writes, about 38 calls a minute for ever). While it is open no call is
made as bob (the emulator counts calls per user)."""
import sys
import time
import unittest

from harness import hour, q, timed
from test_serve import ServeCase

POLL_S = 5          # [sync] poll_interval: bob's calendar is listed this often
FIRST_OPEN_S = 60   # the breaker's first open period
QUIET_S = 45        # watched of the second open period (120 s)


class Breaker(ServeCase):
    def breaker(self):
        return self.db("SELECT breaker_failures, breaker_until FROM accounts WHERE name = 'bob'")[0]

    def calls(self):
        return self.emu.call("GET", "/_emulator/users/%s/counters" % q("bob@example.com"))["calls"]

    def test_failing_writes_double_the_open_period_and_calls_stay_few(self):
        a, b, c = self.three_calendars()
        self.bm("sync")
        self.configure(poll_interval=POLL_S)
        self.emu.call("POST", "/_emulator/users/%s/faults" % q("bob@example.com"),
                      {"error_500": 1, "writes_only": 1})
        self.serve()
        n = [0]

        def more_writes():  # alice's changes: writes for bob's calendar (and hers)
            self.emu.event(a, timed("A %d" % n[0], hour(2) + n[0] * 900, minutes=10))
            n[0] += 1
            return False

        self.wait_for("bob's breaker open",
                      lambda: more_writes() or self.breaker()[0] >= 1, timeout=60)
        failures, until = self.breaker()
        self.assertEqual(failures, 1)
        opened = time.time()
        calls0 = self.calls()
        deadline = opened + FIRST_OPEN_S + 60
        while time.time() < deadline and self.breaker()[0] < 2:
            more_writes()
            time.sleep(1)
        failures, until2 = self.breaker()
        half_open_calls = self.calls() - calls0
        self.assertEqual(failures, 2, "the breaker did not open again for longer after the"
                         " half-open probe (a listing closed it?)")
        self.assertGreater(until2 - until, 100, "the second open period is not twice the first")
        calls1 = self.calls()
        quiet_until = min(time.time() + QUIET_S, until2 - 2)
        while time.time() < quiet_until:
            more_writes()
            time.sleep(1)
        quiet_calls = self.calls() - calls1
        self.assertEqual(self.breaker(), (2, until2))
        per_min = (self.calls() - calls0) * 60.0 / (time.time() - opened)
        print("\nbreaker against failing writes: open %d s, then %d calls as bob around the"
              " half-open probe, open %d s, %d calls in %d s of it; %.1f calls a minute since"
              " it first opened" % (until - opened, half_open_calls,
                                    until2 - until, quiet_calls, QUIET_S, per_min),
              file=sys.stderr)
        self.assertEqual(quiet_calls, 0, "calls made as bob while his breaker is open")
        self.assertLess(per_min, 10)


if __name__ == "__main__":
    unittest.main()
