#!/usr/bin/env python3
"""Push latency of `busymirror serve`: a change made in the emulator (create, move or
delete, mixed) until its block is written in EVERY target calendar, through real
push (emulator -> gateway -> queue -> worker -> batch write), polling far away.

Three calendars (alice primary, alice personal, bob primary), all-to-all: each change
in one of them is one block write in each of the two others. The changes are made
one after another, spaced (--gap-min/--gap-max ms, after the previous change is
mirrored) so they do not coalesce. Each latency is measured on the emulator's own
clock: the source event's `updated` (set by the write) to the latest `updated` of
its blocks in the targets (set when the block write is applied), so the bench's own
polling of the dumps only decides when to go on, not the figure.

usage: bench/serve/push_latency.py [--build DIR] [--changes 200] [--workers 2]
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
from common import harness  # noqa: E402

PERSONAL = "alice-personal@group.calendar.google.com"


def block_of(emu, target, src_event_id):
    """The block of a source event in target (any status), or None."""
    for ev in emu.dump(target):
        src = ev.get("extendedProperties", {}).get("private", {}).get("busymirror_src", "")
        if src_event_id in src:
            return ev
    return None


def main():
    ap = argparse.ArgumentParser()
    common.add_build_arg(ap)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--gap-min", type=int, default=100, help="ms between changes, at least")
    ap.add_argument("--gap-max", type=int, default=200, help="ms between changes, at most")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--log-level", default="warn")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (serve.log)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    w = common.World(args.build)
    try:
        w.config(engine={"debounce_ms": 20, "max_delay_ms": 250, "workers": args.workers},
                 log={"level": args.log_level})
        a = w.account("alice", [PERSONAL])
        c = w.account("bob")
        cals = a + c
        w.serve()
        w.channels_live(3)
        w.idle()
        base = harness.hour(2)
        live = []  # (calendar, event id)
        lat = {"create": [], "move": [], "delete": []}
        cpu0 = common.cpu_s(w.serve_proc.pid)
        emu_cpu0 = common.cpu_s(w.emu.proc.pid)
        t_start = time.monotonic()
        slot = 0
        for i in range(args.changes):
            if len(live) < 3:
                op = "create"
            else:
                op = rng.choice(["create", "move", "delete"])
            if op == "create":
                cal = cals[i % 3]
                slot += 1
                ev = w.emu.event(cal, harness.timed("bench %d" % i, base + slot * 1800, minutes=15))
                live.append((cal, ev["id"]))
                src_upd = common.parse_ms(ev["updated"])
                want = lambda b: b is not None and b.get("status") != "cancelled"
                eid = ev["id"]
            elif op == "move":
                cal, eid = rng.choice(live)
                slot += 1
                s = base + slot * 1800
                ev = w.emu.patch_event(cal, eid, {"start": {"dateTime": harness.rfc3339(s)},
                                                  "end": {"dateTime": harness.rfc3339(s + 900)}})
                src_upd = common.parse_ms(ev["updated"])
                start = ev["start"]["dateTime"]
                want = lambda b, u=src_upd, s0=start: b is not None \
                    and b.get("status") != "cancelled" and common.parse_ms(b["updated"]) >= u \
                    and common.parse_ms(b["start"]["dateTime"]) == common.parse_ms(s0)
            else:
                k = rng.randrange(len(live))
                cal, eid = live.pop(k)
                w.emu.delete_event(cal, eid)
                got = w.emu.call("GET", "/_emulator/calendars/%s/events/%s"
                                 % (harness.q(cal), harness.q(eid)))
                src_upd = common.parse_ms(got["updated"])
                want = lambda b: b is not None and b.get("status") == "cancelled"
            targets = [t for t in cals if t != cal]
            done = {}
            deadline = time.monotonic() + 30
            while len(done) < len(targets):
                if time.monotonic() > deadline:
                    raise SystemExit("change %d (%s in %s) not mirrored in 30 s" % (i, op, cal))
                time.sleep(0.01)
                for t in targets:
                    if t in done:
                        continue
                    b = block_of(w.emu, t, eid)
                    if want(b):
                        done[t] = common.parse_ms(b["updated"])
            lat[op].append(max(done.values()) - src_upd)
            time.sleep(rng.uniform(args.gap_min, args.gap_max) / 1000.0)
        wall = time.monotonic() - t_start
        cpu = common.cpu_s(w.serve_proc.pid) - cpu0
        emu_cpu = common.cpu_s(w.emu.proc.pid) - emu_cpu0
        all_ms = [x for v in lat.values() for x in v]
        print("push latency: %d changes (%s), 3 calendars all-to-all, 2 targets each, "
              "debounce 20 ms, max_delay 250 ms, %d workers"
              % (len(all_ms), ", ".join("%d %s" % (len(v), k) for k, v in lat.items()),
                 args.workers))
        p = lambda xs, q: common.percentile(xs, q)
        print("  all:    p50 %4d ms  p90 %4d ms  p99 %4d ms  max %4d ms   (target p50 <= 50, "
              "p99 <= 250)" % (p(all_ms, 50), p(all_ms, 90), p(all_ms, 99), max(all_ms)))
        for k, v in lat.items():
            if v:
                print("  %-7s p50 %4d ms  p90 %4d ms  p99 %4d ms  max %4d ms"
                      % (k + ":", p(v, 50), p(v, 90), p(v, 99), max(v)))
        print("  min %d ms; wall %.1f s; serve CPU %.1f s, emulator CPU %.1f s"
              % (min(all_ms), wall, cpu, emu_cpu))
        ok50, ok99 = p(all_ms, 50) <= 50, p(all_ms, 99) <= 250
        print("  p50 target %s, p99 target %s" % ("met" if ok50 else "MISSED",
                                                  "met" if ok99 else "MISSED"))
    finally:
        w.cleanup(keep=args.keep)


if __name__ == "__main__":
    main()
