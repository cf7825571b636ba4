#!/usr/bin/env python3
"""Initial mirror benchmark (issue 4): N events in each of three calendars
(alice primary, alice personal, bob primary) mirrored all-to-all, so 6N blocks.

Prints wall time, peak RSS, API calls made against the minimum (list pages +
ceil(writes / batch_size) batch requests), then the steady-state no-op sync's
API calls. Everything runs on 127.0.0.1; every loop is bounded.

usage: bench/sync/bench_sync.py [--build DIR] [--events N]
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "scenario"))
import harness  # noqa: E402

CALS = ["alice@example.com", "alice-personal@group.calendar.google.com", "bob@example.com"]


def token(emu, refresh):
    data = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": refresh,
                                   "client_id": harness.CLIENT_ID,
                                   "client_secret": harness.CLIENT_SECRET}).encode()
    with urllib.request.urlopen(emu.base + "/token", data, timeout=30) as r:
        return json.load(r)["access_token"]


def batch_insert(emu, access, cal, bodies):
    """Inserts events through the real batch endpoint, 1000 parts per call."""
    for lo in range(0, len(bodies), 1000):
        parts = []
        for i, b in enumerate(bodies[lo:lo + 1000]):
            body = json.dumps(b)
            parts.append("--bnd\r\nContent-Type: application/http\r\nContent-ID: <%d>\r\n\r\n"
                         "POST /calendar/v3/calendars/%s/events HTTP/1.1\r\n"
                         "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s\r\n"
                         % (i, harness.q(cal), len(body), body))
        payload = ("".join(parts) + "--bnd--\r\n").encode()
        req = urllib.request.Request(emu.base + "/batch/calendar/v3", payload, method="POST")
        req.add_header("Content-Type", "multipart/mixed; boundary=bnd")
        req.add_header("Authorization", "Bearer " + access)
        with urllib.request.urlopen(req, timeout=120) as r:
            text = r.read().decode()
        if text.count("HTTP/1.1 200") != len(bodies[lo:lo + 1000]):
            raise SystemExit("seeding failed: " + text[:500])


def hwm_mib(pid):
    """The process's own peak RSS (VmHWM), or 0 once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def run(cmd, cwd):
    """Runs cmd; returns (seconds, its peak RSS in MiB, stdout, user+sys CPU seconds).
    ru_maxrss would include this Python's RSS at fork time, so VmHWM is polled."""
    out_path, err_path = os.path.join(cwd, "run.out"), os.path.join(cwd, "run.err")
    peak = 0.0
    with open(out_path, "w") as out, open(err_path, "w") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err)
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid != 0:
                break
            peak = max(peak, hwm_mib(p.pid))
            time.sleep(0.02)
        secs = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    text = open(out_path).read()
    if code != 0:
        raise SystemExit("%s -> %d\n%s\n%s" % (cmd, code, text, open(err_path).read()[-2000:]))
    return secs, peak, text, usage.ru_utime + usage.ru_stime


def emu_cpu(emu):
    """CPU seconds the emulator has used so far."""
    with open("/proc/%d/stat" % emu.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--events", type=int, default=10000)
    args = ap.parse_args()
    harness.EMULATOR = os.path.abspath(os.path.join(args.build, "emulator", "gcal-emulator"))
    bm = os.path.abspath(os.path.join(args.build, "cli", "busymirror"))
    work = tempfile.mkdtemp(prefix="bm_bench_")
    emu = harness.Emulator(work)
    try:
        n = args.events
        base = (int(time.time()) // 86400 + 1) * 86400
        for email in ("alice@example.com", "bob@example.com"):
            emu.user(email, refresh_token="refresh-" + email.split("@")[0])
        emu.calendar("alice@example.com", CALS[1], "Alice personal")
        t0 = time.monotonic()
        for ci, cal in enumerate(CALS):
            who = "bob" if cal.startswith("bob") else "alice"
            access = token(emu, "refresh-" + who)
            bodies = []
            for i in range(n):  # 15-minute events spread over 60 days, offset per calendar
                s = base + (i * 60 * 60 * 24 * 60 // n) + ci * 300
                bodies.append({"summary": "event %d" % i,
                               "start": {"dateTime": harness.rfc3339(s)},
                               "end": {"dateTime": harness.rfc3339(s + 900)}})
            batch_insert(emu, access, cal, bodies)
        seed_s = time.monotonic() - t0

        cfg = os.path.join(work, "bm.ini")
        with open(cfg, "w") as f:
            f.write("[store]\npath = bm.db\nkey_file = bm.key\n[google]\n"
                    "client_id = %s\nclient_secret = %s\napi_base_url = %s/calendar/v3\n"
                    "batch_url = %s/batch/calendar/v3\ntoken_url = %s/token\n"
                    "user_quota = 0\n[sync]\nfuture_days = 90\n[log]\nlevel = warn\n"
                    % (harness.CLIENT_ID, harness.CLIENT_SECRET, emu.base, emu.base, emu.base))
        for who in ("alice", "bob"):
            with open(os.path.join(work, who + ".tok"), "w") as f:
                f.write("refresh-" + who)
            subprocess.run([bm, "-c", cfg, "account", "add", "--name", who,
                            "--refresh-token-file", who + ".tok"], cwd=work, check=True,
                           capture_output=True)
            subprocess.run([bm, "-c", cfg, "calendar", "discover", "--account-id", who],
                           cwd=work, check=True, capture_output=True)
        for cal in CALS:
            subprocess.run([bm, "-c", cfg, "calendar", "enable", "--calendar-id", cal], cwd=work,
                           check=True, capture_output=True)
        emu.reset_counters()
        emu_cpu0 = emu_cpu(emu)
        secs, rss, out, cpu = run([bm, "-c", cfg, "sync"], work)
        ecpu = emu_cpu(emu) - emu_cpu0
        c = emu.counters()
        blocks = sum(len(emu.blocks(cal)) for cal in CALS)
        writes = c["writes"]
        list_min = 3 * math.ceil(n / 2500)
        batch_min = math.ceil(writes / 50)
        print("initial mirror: %d events x 3 calendars -> %d blocks" % (n, blocks))
        print("  seeding through the batch API: %.1f s" % seed_s)
        print("  wall time:          %.1f s   (target <= 60 s)" % secs)
        print("  peak RSS:           %.1f MiB (target <= 64 MiB)" % rss)
        print("  CPU:                busymirror %.1f s, emulator %.1f s" % (cpu, ecpu))
        print("  list calls:         %d      (minimum %d)" % (c["list"], list_min))
        print("  batch requests:     %d      (minimum ceil(%d writes / 50) = %d; ratio %.3f, "
              "target <= 1.05)" % (c["batch"], writes, batch_min, c["batch"] / max(batch_min, 1)))
        print("  token requests:     %d" % c["token"])
        print("  all API requests:   %d" % c["requests"])
        print("  busymirror says:    " + out.strip().splitlines()[-1])
        # the next sync reads its own blocks back once; the one after is the steady state
        run([bm, "-c", cfg, "sync"], work)
        emu.reset_counters()
        secs2, rss2, _, _ = run([bm, "-c", cfg, "sync"], work)
        c = emu.counters()
        print("steady-state no-op sync: %d list calls for 3 calendars, %d writes, %d API requests,"
              " %.2f s, %s" % (c["list"], c["writes"], c["requests"], secs2,
                               "%.1f MiB" % rss2 if rss2 > 0 else "too short to sample RSS"))
        if blocks != 6 * n:
            raise SystemExit("WRONG: expected %d blocks" % (6 * n))
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
