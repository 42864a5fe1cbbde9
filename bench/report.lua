-- Shared by bench/checkin's wrk runs: after the run, one machine-readable line that the script
-- parses (wrk's own text output is printed too, for the record).
-- BENCH requests=N duration_us=N rps=F p50_us=N p90_us=N p99_us=N max_us=N
--       connect_errors=N read_errors=N write_errors=N timeouts=N non2xx=N

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d non2xx=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.timeout, e.status))
end
