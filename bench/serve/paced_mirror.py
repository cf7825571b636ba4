#!/usr/bin/env python3
"""Paced first mirror into 3 accounts: `busymirror sync` under [google] user_quota
(--quota, default 600 a minute) with the emulator's per-user quota set to the same
(POST /_emulator/users/{email}/quota {"rpm": Q}), so every account is paced.

- three: 3 accounts, one calendar each (role both), --events N each, all-to-all:
  each account needs 2N block writes. Run with [engine] workers = 3 (the drain runs
  accounts side by side) and with workers = 1 (one account after another).
- reference: ONE account takes the same 2N writes: its calendar is a target, the
  two others (N events each, other accounts) are sources only.

Prints each run's wall time, block writes and calls, and the ratio three / reference
(target <= 1.2). Pacing: busymirror's bucket holds quota/6 calls and refills at
5/6 of the quota a minute, so 2N = 1200 writes at 600/min take about
(1200 - 100) / 500 min = 132 s; expect ~2.3 min per paced run.

usage: bench/serve/paced_mirror.py [--build DIR] [--events 600] [--quota 600]
                                  [--runs three,reference,three-w1]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
from common import harness  # noqa: E402


def one_run(build, kind, n, quota, workers):
    w = common.World(build)
    try:
        w.config(push=False, google={"user_quota": quota}, engine={"workers": workers})
        names = ["acct0", "acct1", "acct2"]
        cals = []
        for k, name in enumerate(names):
            role = None if kind == "three" else ("target" if k == 0 else "source")
            cals += w.account(name, role=role)
        base = harness.hour(1)
        t0 = time.monotonic()
        seeded = cals if kind == "three" else cals[1:]
        for ci, cal in enumerate(seeded):
            for i in range(n):  # 15-minute events over 60 days, offset per calendar
                s = base + i * 86400 * 60 // n + ci * 300
                w.emu.event(cal, harness.timed("event %d" % i, s, minutes=15))
        seed_s = time.monotonic() - t0
        for name in names:
            w.emu.call("POST", "/_emulator/users/%s@example.com/quota" % name,
                       {"rpm": quota, "status": 429})
        w.emu.reset_counters()
        t0 = time.monotonic()
        out = w.bm("sync", timeout=3600)
        secs = time.monotonic() - t0
        c = w.emu.counters()
        blocks = {cal: len(w.emu.blocks(cal)) for cal in cals}
        return {"secs": secs, "seed": seed_s, "counters": c, "blocks": blocks,
                "out": out.strip().splitlines()[-1] if out.strip() else ""}
    finally:
        w.cleanup()


def main():
    ap = argparse.ArgumentParser()
    common.add_build_arg(ap)
    ap.add_argument("--events", type=int, default=600)
    ap.add_argument("--quota", type=int, default=600)
    ap.add_argument("--workers", type=int, default=3, help="workers of the side-by-side run")
    ap.add_argument("--runs", default="three,reference,three-w1")
    args = ap.parse_args()
    n, q = args.events, args.quota
    print("paced first mirror: %d events a calendar, user_quota = emulator rpm = %d/min"
          % (n, q))
    res = {}
    for run in args.runs.split(","):
        kind = "reference" if run == "reference" else "three"
        workers = 1 if run.endswith("-w1") else args.workers
        r = one_run(args.build, kind, n, q, workers)
        res[run] = r
        c = r["counters"]
        want = 2 * n
        got = sorted(r["blocks"].values())
        print("  %-10s workers %d: wall %6.1f s; writes %d in %d batches, list %d, token %d; "
              "blocks %s (want %s); %s"
              % (run, workers, r["secs"], c["writes"], c["batch"], c["list"], c["token"], got,
                 [want] * 3 if kind == "three" else [0, 0, want], r["out"]))
        sys.stdout.flush()
    if "three" in res and "reference" in res:
        ratio = res["three"]["secs"] / res["reference"]["secs"]
        print("  ratio three (workers %d) / reference: %.2f  (target <= 1.2: %s)"
              % (args.workers, ratio, "met" if ratio <= 1.2 else "MISSED"))
    if "three-w1" in res and "reference" in res:
        print("  ratio three (workers 1) / reference: %.2f"
              % (res["three-w1"]["secs"] / res["reference"]["secs"]))


if __name__ == "__main__":
    main()
