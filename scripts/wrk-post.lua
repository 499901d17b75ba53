-- wrk: POST the body in $BODY_FILE with X-Hub-Signature $SIGNATURE, and
-- print one machine-readable line at the end (latencies in microseconds).
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "intercom-parrot-service-rb"
wrk.headers["X-Hub-Signature"] = os.getenv("SIGNATURE")

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT rps=%.1f p50=%.1f p99=%.1f requests=%d non2xx=%d errors=%d\n",
    summary.requests / seconds,
    latency:percentile(50), latency:percentile(99),
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
