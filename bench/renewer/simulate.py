#!/usr/bin/env python3
"""Google requests per minute of serve's renewer and backstop poller in steady
state, for N accounts x M calendars: a pure computation from the code's rules.

Rules (renewer/renewer.c, engine/channels.c):
- every enabled calendar is listed at least every [sync] poll_interval, push or
  not (one events.list call when nothing changed: the steady state);
- a channel of granted life L is renewed once less than its renew margin is
  left: margin = [renewer] renew_before, or (0) L/5 capped at a day; each
  channel at its own point in the last half of the margin (FNV-1a of its id),
  so on average at 3/4 of the margin; a renewal is one events.watch and, once
  the new channel answered, one channels.stop of the old one;
- token refreshes go to the OAuth endpoint, not the Calendar API quota, and
  change-driven syncs are not the backstop's: neither is counted.

Also simulated: the busiest minute of renewals when every channel was opened
in the same minute (a restart with fresh channels, a fleet enabled at once).

  bench/renewer/simulate.py [--accounts N] [--calendars M] [--poll-interval S]
                            [--ttl S] [--renew-before S] [--quota RPM]
"""
import argparse
import collections
import random

DAY = 86400


def margin_s(ttl, renew_before):
    if renew_before > 0:
        return renew_before
    return min(ttl / 5, DAY)


def fnv1a(s):
    h = 1469598103934665603
    for b in s.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def point_ms(channel_id, ttl, renew_before):
    """bm_engine_renew_margin_ms: when (ms before expiry) the channel is renewed."""
    m = int(margin_s(ttl, renew_before) * 1000)
    half = m // 2
    return half + (fnv1a(channel_id) % (half + 1) if half > 0 else 0)


def steady(calendars, poll_interval, ttl, renew_before):
    """(list, watch, stop) requests per minute."""
    period = ttl - 0.75 * margin_s(ttl, renew_before)  # seconds a channel serves
    lists = calendars * 60.0 / poll_interval
    watches = calendars * 60.0 / period
    return lists, watches, watches


def largest_fleet(per_calendar_rpm, quota, m):
    cals = int(quota / per_calendar_rpm)
    return cals // m, cals


def busiest_minute(calendars, ttl, renew_before):
    """Renewals (watch + stop) in the busiest minute, every channel opened at once."""
    per = collections.Counter()
    rng = random.Random(1)  # channel ids are random: a fixed seed, the same figure
    for _ in range(calendars):
        cid = "bm%032x" % rng.getrandbits(128)
        per[int((ttl * 1000 - point_ms(cid, ttl, renew_before)) // 60000)] += 1
    return 2 * max(per.values()), len(per)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=10000)
    ap.add_argument("--calendars", type=int, default=3, help="per account")
    ap.add_argument("--poll-interval", type=int, default=300)
    ap.add_argument("--ttl", type=int, default=604800, help="granted channel life, s")
    ap.add_argument("--renew-before", type=int, default=0)
    ap.add_argument("--quota", type=int, default=10000, help="Google requests/minute/project")
    a = ap.parse_args()
    n = a.accounts * a.calendars
    lists, watches, stops = steady(n, a.poll_interval, a.ttl, a.renew_before)
    total = lists + watches + stops
    print("fleet: %d accounts x %d calendars = %d calendars; poll_interval %d s, ttl %d s,"
          " renew margin %d s" % (a.accounts, a.calendars, n, a.poll_interval, a.ttl,
                                  margin_s(a.ttl, a.renew_before)))
    print("steady state, requests/minute: list %.1f + watch %.2f + stop %.2f = %.1f"
          " (%.1f%% of %d)" % (lists, watches, stops, total, 100 * total / a.quota, a.quota))
    print("per account: %.3f requests/minute (Google's per-user limit: 600)"
          % (total / a.accounts))
    accts, cals = largest_fleet(total / n, a.quota, a.calendars)
    print("largest fleet under %d/minute: %d calendars = %d accounts x %d"
          % (a.quota, cals, accts, a.calendars))
    peak, minutes = busiest_minute(n, a.ttl, a.renew_before)
    print("all channels opened in one minute: their renewals spread over %d minutes,"
          " busiest minute %d requests (watch + stop)" % (minutes, peak))
    print("poll_interval sweep (ttl %d s):" % a.ttl)
    for pi in (60, 120, 300, 600, 900):
        l, w, s = steady(n, pi, a.ttl, a.renew_before)
        print("  poll_interval %4d s: %8.1f requests/minute, largest fleet %d accounts"
              % (pi, l + w + s, largest_fleet((l + w + s) / n, a.quota, a.calendars)[0]))
    print("ttl sweep (poll_interval %d s):" % a.poll_interval)
    for ttl in (3600, 86400, 604800):
        l, w, s = steady(n, a.poll_interval, ttl, a.renew_before)
        print("  ttl %6d s: watch+stop %7.1f/minute, total %8.1f/minute"
              % (ttl, w + s, l + w + s))


if __name__ == "__main__":
    main()
