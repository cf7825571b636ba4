#!/usr/bin/env python3
"""Memory soak of `busymirror serve`: RSS (VmRSS of /proc/<pid>/status) after a
warm-up and after --duration seconds (default 300) of steady load: --rate
authenticated notifications a second (default 2000) over 10 calendars, sent
straight to the gateway (the queue coalesces them), plus one real change a second
in the emulator (create, move or delete in a rotating calendar: real push, a sync,
nine block writes and their echoes), so syncs and drains really run.

Two accounts with five calendars each, all-to-all. Prints RSS before, after, its
growth (target < 5%), the samples' range, VmHWM, and what the load did.

usage: bench/serve/memory_soak.py [--build DIR] [--duration 300] [--rate 2000]
"""
import argparse
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
from common import harness  # noqa: E402


def changer(w, cals, stop, stats, seed=3):
    """One change a second until stop is set; at most 30 live events."""
    rng = random.Random(seed)
    live = []
    base = harness.hour(2)
    i = 0
    next_t = time.monotonic()
    while not stop.is_set():
        next_t += 1.0
        i += 1
        if len(live) < 5 or (len(live) < 30 and rng.random() < 0.4):
            cal = cals[i % len(cals)]
            ev = w.emu.event(cal, harness.timed("soak %d" % i, base + (i % 2000) * 1800,
                                                minutes=15))
            live.append((cal, ev["id"]))
            stats["create"] += 1
        elif rng.random() < 0.5:
            cal, eid = rng.choice(live)
            s = base + rng.randrange(2000) * 1800
            w.emu.patch_event(cal, eid, {"start": {"dateTime": harness.rfc3339(s)},
                                         "end": {"dateTime": harness.rfc3339(s + 900)}})
            stats["move"] += 1
        else:
            cal, eid = live.pop(rng.randrange(len(live)))
            w.emu.delete_event(cal, eid)
            stats["delete"] += 1
        stats["live"] = len(live)
        d = next_t - time.monotonic()
        if d > 0:
            stop.wait(d)


def load(w, heads, rate, seconds, cals, changes):
    """Notifications at rate and one change a second for seconds; returns the
    blast's (sent, bad, secs, per_cal)."""
    stop = threading.Event()
    t = threading.Thread(target=changer, args=(w, cals, stop, changes))
    t.start()
    try:
        return common.blast(w.port, heads, int(rate * seconds), 2, seconds + 5, rate=rate,
                            first_number=load.number)
    finally:
        load.number += int(rate * seconds) + 10
        stop.set()
        t.join()


load.number = 1000


def main():
    ap = argparse.ArgumentParser()
    common.add_build_arg(ap)
    ap.add_argument("--duration", type=float, default=300, help="soak seconds (default 300)")
    ap.add_argument("--warmup", type=float, default=20, help="seconds of the same load first")
    ap.add_argument("--rate", type=float, default=2000, help="notifications a second")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    w = common.World(args.build)
    try:
        w.config(engine={"debounce_ms": 20, "max_delay_ms": 250})
        cals = w.account("alice", ["alice-%d@group.calendar.google.com" % i for i in range(4)])
        cals += w.account("bob", ["bob-%d@group.calendar.google.com" % i for i in range(4)])
        pid = w.serve().pid
        w.channels_live(10)
        w.idle()
        heads = w.channel_heads()
        rss_start = common.rss_kib(pid)
        changes = {"create": 0, "move": 0, "delete": 0, "live": 0}
        load(w, heads, args.rate, args.warmup, cals, changes)
        w.idle()
        rss_before = common.rss_kib(pid)
        log0 = w.db("SELECT coalesce(max(id), 0) FROM sync_log")[0][0]
        cpu0 = common.cpu_s(pid)
        w.emu.reset_counters()
        samples = []
        stop = threading.Event()

        def sampler():
            while not stop.wait(5):
                samples.append(common.rss_kib(pid))

        st = threading.Thread(target=sampler)
        st.start()
        for k in changes:
            changes[k] = 0
        sent, bad, secs, _ = load(w, heads, args.rate, args.duration, cals, changes)
        stop.set()
        st.join()
        w.idle()
        cpu = common.cpu_s(pid) - cpu0
        rss_after = common.rss_kib(pid)
        hwm = common.rss_kib(pid, "VmHWM")
        c = w.emu.counters()
        syncs = w.db("SELECT count(*) FROM sync_log WHERE id > ?", log0)[0][0]
        dead = w.db("SELECT count(*) FROM dead_letters")[0][0]
        growth = 100.0 * (rss_after - rss_before) / rss_before
        print("memory soak: %.0f s at %.0f notifications/s asked (%d sent, %.0f/s, %d not 200) "
              "over 10 calendars + one change a second (%d create, %d move, %d delete)"
              % (secs, args.rate, sent, sent / secs, bad, changes["create"], changes["move"],
                 changes["delete"]))
        print("  serve RSS: at start %.1f MiB, after %.0f s warm-up %.1f MiB, after the soak "
              "%.1f MiB: growth %+.2f%% (target < 5%%)"
              % (rss_start / 1024, args.warmup, rss_before / 1024, rss_after / 1024, growth))
        if samples:
            print("  samples every 5 s: min %.1f MiB, max %.1f MiB; VmHWM %.1f MiB"
                  % (min(samples) / 1024, max(samples) / 1024, hwm / 1024))
        print("  syncs %d (%.1f/s), events.list %d, block writes %d in %d batches, dead letters "
              "%d; serve CPU %.1f s (%.0f%% of a core)"
              % (syncs, syncs / secs, c["list"], c["writes"], c["batch"], dead, cpu,
                 100 * cpu / secs))
        print("  growth target %s" % ("met" if growth < 5 else "MISSED"))
    finally:
        w.cleanup(keep=args.keep)


if __name__ == "__main__":
    main()
