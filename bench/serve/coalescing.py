#!/usr/bin/env python3
"""Coalescing of a notification burst by `busymirror serve`: --notifications
authenticated notifications (default 10,000) over 10 calendars, sent straight to
the gateway with the channel tokens busymirror derives, from --senders processes
(each owns a share of the channels, so message numbers rise per channel), bounded
by --max-seconds. Then the listings each calendar cost (sync_log rows, and the
emulator's events.list counter) against the bound ceil(burst s / max_delay) + 2.

Two accounts with five calendars each, all-to-all in one group, no events: a
sync is one incremental listing and writes nothing.

usage: bench/serve/coalescing.py [--build DIR] [--notifications 10000] [--senders 5]
"""
import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    common.add_build_arg(ap)
    ap.add_argument("--notifications", type=int, default=10000)
    ap.add_argument("--senders", type=int, default=5, help="processes; 5: two channels each")
    ap.add_argument("--max-seconds", type=float, default=30)
    ap.add_argument("--debounce-ms", type=int, default=20)
    ap.add_argument("--max-delay-ms", type=int, default=250)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    w = common.World(args.build)
    try:
        w.config(engine={"debounce_ms": args.debounce_ms, "max_delay_ms": args.max_delay_ms})
        cals = w.account("alice", ["alice-%d@group.calendar.google.com" % i for i in range(4)])
        cals += w.account("bob", ["bob-%d@group.calendar.google.com" % i for i in range(4)])
        w.serve()
        w.channels_live(10)
        w.idle()
        time.sleep(0.5)
        w.idle()
        heads = w.channel_heads()
        assert len(heads) == 10, heads
        log0 = w.db("SELECT coalesce(max(id), 0) FROM sync_log")[0][0]
        w.emu.reset_counters()
        sent, bad, burst, per_cal = common.blast(w.port, heads, args.notifications, args.senders,
                                                 args.max_seconds)
        t_end = time.monotonic()
        w.idle()
        drained = time.monotonic() - t_end
        counters = w.emu.counters()
        rows = dict(w.db("SELECT c.gcal_id, count(l.id) FROM calendars c LEFT JOIN sync_log l"
                         " ON l.calendar_id = c.id AND l.id > ? WHERE c.enabled = 1"
                         " GROUP BY c.gcal_id", log0))
        bound = math.ceil(burst / (args.max_delay_ms / 1000.0)) + 2
        print("coalescing: %d authenticated notifications (%d not answered 200) over %d "
              "calendars from %d processes in %.2f s (%.0f/s); queue drained %.2f s after"
              % (sent, bad, len(heads), args.senders, burst, sent / burst, drained))
        print("  debounce %d ms, max_delay %d ms -> bound ceil(%.2f / %.3f) + 2 = %d listings "
              "per calendar" % (args.debounce_ms, args.max_delay_ms, burst,
                                args.max_delay_ms / 1000.0, bound))
        worst = 0
        for cal in sorted(rows):
            n = rows[cal]
            worst = max(worst, n)
            print("  %-40s %5d notifications -> %3d listings%s"
                  % (cal, per_cal.get(cal, 0), n, "" if n <= bound else "   OVER THE BOUND"))
        total = sum(rows.values())
        print("  total: %d listings (sync_log) for %d notifications (%.1f notifications per "
              "listing); emulator events.list calls %d (incremental %d, full %d); bound %d x %d "
              "= %d" % (total, sent, sent / max(total, 1), counters["list"],
                        counters["list_sync"], counters["list_full"], bound, len(rows),
                        bound * len(rows)))
        print("  worst calendar %d <= bound %d: %s" % (worst, bound,
                                                      "met" if worst <= bound else "MISSED"))
    finally:
        w.cleanup(keep=args.keep)


if __name__ == "__main__":
    main()
