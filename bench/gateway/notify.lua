-- bench/gateway/notify.lua: a Google push notification for wrk (keep-alive).
-- BM_TOKEN: the channel token of "bench-channel" (bench_gateway writes it).
wrk.method = "POST"
wrk.body = ""
wrk.headers["User-Agent"] = "APIs-Google"
wrk.headers["Content-Length"] = "0"
wrk.headers["X-Goog-Channel-ID"] = "bench-channel"
wrk.headers["X-Goog-Channel-Token"] = os.getenv("BM_TOKEN")
wrk.headers["X-Goog-Resource-ID"] = "bench-resource"
wrk.headers["X-Goog-Resource-URI"] = "https://www.googleapis.com/calendar/v3/calendars/x/events"
wrk.headers["X-Goog-Resource-State"] = "exists"
wrk.headers["X-Goog-Message-Number"] = "2"

done = function(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.timeout
    io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d non2xx=%d errors=%d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, summary.requests, summary.errors.status, errors))
end
