"""The wrk script both public-side benchmarks load with: GET each verification id of the file
CERTSVC_BENCH_IDS in turn; the summary as one `JSON {...}` line."""

WRK_SCRIPT = """
ids = {}
for line in io.lines(os.getenv("CERTSVC_BENCH_IDS")) do ids[#ids + 1] = line end
n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/v1/verify/" .. ids[(n % #ids) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format('JSON {"rps": %f, "p50": %f, "p99": %f, "errors": %d}\\n',
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, summary.errors.status + summary.errors.connect
      + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""
