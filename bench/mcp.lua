-- wrk script of `make bench`: POST one JSON-RPC message to an MCP endpoint.
--   WRK_BODY_FILE  the request body
--   MCP_SID        the Mcp-Session-Id to send (from an initialize done before)
--   WRK_CYCLE=N    replace "b0__" in the body by "b<i>__", i = 0..N-1 in turn
--                  per thread, and count replies without "result" (the
--                  "every server is callable" check)
-- done() prints one line: WRKJSON {...} (rps, p50/p99 in us, errors)
--   WRK_METHOD=GET a GET without a body (the static-file baseline)
--   WRK_DELAY_MS=D each connection waits D ms before its next request (the
--                  soak's steady load, bench/soak.py)
local body = nil
if os.getenv("WRK_BODY_FILE") then
  local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
  body = f:read("*a")
  f:close()
end
wrk.method = os.getenv("WRK_METHOD") or "POST"
if wrk.method ~= "GET" then wrk.body = body end
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
local sid = os.getenv("MCP_SID")
if sid and sid ~= "" then wrk.headers["Mcp-Session-Id"] = sid end

local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
if delay_ms > 0 then
  function delay() return delay_ms end
end

local cycle = tonumber(os.getenv("WRK_CYCLE") or "0")
local threads = {}
local tid = 0

function setup(thread)
  thread:set("id", tid)
  tid = tid + 1
  table.insert(threads, thread)
end

if cycle > 0 then
  -- thread k of T calls b<k>, b<k+T>, b<k+2T>, ... in turn
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  local i = 0
  bad, seen = 0, 0   -- globals: done() reads them with thread:get
  function init(args)
    i = id
    bad = 0
    seen = 0
  end
  function request()
    local b = string.gsub(body, "b0__", "b" .. (i % cycle) .. "__", 1)
    i = i + nthreads
    return wrk.format(nil, nil, nil, b)
  end
  function response(status, headers, rbody)
    seen = seen + 1
    if status ~= 200 or not string.find(rbody, '"result"', 1, true) then
      bad = bad + 1
    end
  end
end

function done(summary, latency, requests)
  local bad, seen, seen_min = 0, 0, nil
  for _, t in ipairs(threads) do
    local s = tonumber(t:get("seen")) or 0
    bad = bad + (tonumber(t:get("bad")) or 0)
    seen = seen + s
    if seen_min == nil or s < seen_min then seen_min = s end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p99_us":%d,' ..
    '"bytes":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,' ..
    '"err_timeout":%d,"bad_bodies":%d,"checked":%d,"checked_min_thread":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, bad, seen, seen_min or 0))
end
