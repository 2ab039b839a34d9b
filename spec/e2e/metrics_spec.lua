-- GET /metrics on the admin listener: the text parses strictly (spec/support/
-- prometheus.lua) and its numbers move with traffic: N requests count N
-- (summed over two workers), a 404 counts on route "none", a 502 from a dead
-- backend counts on its route and as a connect error of that backend, the
-- plugin chain's calls and a plugin's own counter count once per request,
-- connections show in the gauges, and a reload keeps every counter going.
--
-- Run: busted --lua=luajit spec/e2e/metrics_spec.lua
local h = require "spec.helpers"
local prom = require "spec.support.prometheus"

-- Counts every request in all its phases, with a counter of its own.
local METERED = [[
local sluice = require "sluice"
local seen = sluice.metrics.counter("seen", "Requests the metered plugin saw.")
local store = sluice.shared.dict("store")
local sizes = sluice.metrics.histogram("path_length", "Length of request paths.", { 2, 8, 32 })
return {
  name = "metered", version = "1.0", priority = 10,
  request_headers = function()
    seen:inc()
    sizes:observe(#sluice.request.get_path())
    local n = sluice.request.get_header("X-Store")
    if n then assert(store:set("k" .. n, ("x"):rep(1000))) end
  end,
  log = function() end,
}
]]

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

describe("GET /metrics", function()
  local origin, proxy, port, aport, dead_port, cfg_path

  local function config()
    return table.concat({
      "workers: 2",
      "listen: [127.0.0.1:" .. port .. "]",
      "admin: {listen: 127.0.0.1:" .. aport .. "}",
      "upstreams:",
      "  app:",
      "    backends: [127.0.0.1:" .. origin.port .. "]",
      "  dead:",
      "    backends: [127.0.0.1:" .. dead_port .. "]",
      "    fail_cooldown: 0",
      "routes:",
      "  - {path: /app, upstream: app}",
      "  - {path: /dead, upstream: dead}",
      "plugin_paths: [" .. cfg_path:match("^(.*)/") .. "]",
      "shared_dicts: {store: {size: 8k}}",
      "plugins: [metered]",
    }, "\n") .. "\n"
  end

  lazy_setup(function()
    origin = h.start_origin { name = "m" }
    port, aport, dead_port = h.free_port(), h.free_port(), h.free_port()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. h.quote(dir)))
    write(dir .. "/metered.lua", METERED)
    cfg_path = dir .. "/sluice.yaml"
    write(cfg_path, config())
    proxy = h.start_proxy { args = { "-c", cfg_path }, port = port }
    assert(h.wait_until(function() return h.is_listening(aport) end), "no admin listener")
  end)

  lazy_teardown(function()
    if proxy then proxy:stop() end
    if origin then origin:stop() end
    if cfg_path then
      os.remove(cfg_path)
      os.remove(cfg_path:match("^(.*)/") .. "/metered.lua")
      os.remove(cfg_path:match("^(.*)/"))
    end
  end)

  local function scrape()
    local resp = assert(h.get(aport, "/metrics"))
    assert.equals(200, resp.status, resp.body)
    return prom.parse(resp.body), resp
  end

  -- A worker counts a request once its response is out, so a scrape made
  -- right after reading a response can come a moment early: scrape until
  -- ready(fams) holds, for up to 3 s (the last scrape is returned anyway,
  -- for the assertions to report).
  local function scrape_when(ready)
    local last
    h.wait_until(function()
      last = scrape()
      return ready(last)
    end, 3)
    return last
  end

  -- The delta of a sample between two scrapes (absent counts as 0).
  local function delta(after, before, name, labels)
    return (prom.value(after, name, labels) or 0) - (prom.value(before, name, labels) or 0)
  end

  local function get(path, conn, headers)
    if conn then
      assert(conn:send(h.build_request("GET", path, headers)))
      return assert(conn:read_response())
    end
    return assert(h.get(port, path, headers))
  end

  it("answers text/plain in format 0.0.4 that a strict parser accepts", function()
    local fams, resp = scrape()
    assert.equals("text/plain; version=0.0.4; charset=utf-8", resp.headers["content-type"])
    assert.is_table(fams.sluice_requests_total)
    assert.equals("counter", fams.sluice_requests_total.type)
    assert.equals("histogram", fams.sluice_plugin_duration_seconds.type)
  end)

  it("counts N requests on their route, both workers summed, with their latency", function()
    local before = scrape()
    local N = 40
    local conns = {}
    for i = 1, 4 do conns[i] = assert(h.connect(port)) end
    finally(function() for _, c in ipairs(conns) do c:close() end end)
    for i = 1, N do
      assert.equals(200, get("/app/name", conns[i % 4 + 1]).status)
    end
    local l = { route = "/app", method = "GET", status = "2xx" }
    local b = { upstream = "app", backend = "127.0.0.1:" .. origin.port }
    local after = scrape_when(function(f)
      return delta(f, before, "sluice_requests_total", l) >= N
         and delta(f, before, "sluice_upstream_response_duration_seconds_count", b) >= N
    end)
    assert.equals(N, delta(after, before, "sluice_requests_total", l))
    local function count(f)
      return prom.value(f, "sluice_request_duration_seconds_count", { route = "/app" }) or 0
    end
    assert.equals(N, count(after) - count(before))
    local function attempts(f) return prom.sum(f, "sluice_upstream_requests_total", b) end
    assert.equals(N, attempts(after) - attempts(before))
    local function first(f)
      return prom.value(f, "sluice_upstream_response_duration_seconds_count", b) or 0
    end
    assert.equals(N, first(after) - first(before))
    -- four keep-alive connections: the pool serves the rest
    local reused = prom.value(after, "sluice_upstream_requests_total",
      { upstream = "app", backend = b.backend, connection = "reused" })
    assert.is_true(reused >= N - 8, "reused " .. tostring(reused))
  end)

  it("counts a request no route matches on route none, and its 404", function()
    local before = scrape()
    assert.equals(404, get("/nowhere").status)
    local l = { route = "none", method = "GET", status = "4xx" }
    local after = scrape_when(function(f) return delta(f, before, "sluice_requests_total", l) >= 1 end)
    assert.equals(1, delta(after, before, "sluice_requests_total", l))
  end)

  it("counts a request refused before its head was whole on route none, method other", function()
    local before = scrape()
    local resp = assert(h.request(port, "GET / HTTP/1.1\r\nHost: x\r\nNo Colon Here\r\n\r\n"))
    assert.equals(400, resp.status)
    local l = { route = "none", method = "other", status = "4xx" }
    local after = scrape_when(function(f) return delta(f, before, "sluice_requests_total", l) >= 1 end)
    assert.equals(1, delta(after, before, "sluice_requests_total", l))
  end)

  it("counts a 502 from a dead backend on its route and as a connect error", function()
    local before = scrape()
    assert.equals(502, get("/dead/x").status)
    local l = { route = "/dead", method = "GET", status = "5xx" }
    local e = { upstream = "dead", backend = "127.0.0.1:" .. dead_port, kind = "connect_refused" }
    local after = scrape_when(function(f) return delta(f, before, "sluice_requests_total", l) >= 1 end)
    assert.equals(1, delta(after, before, "sluice_requests_total", l))
    assert.equals(1, delta(after, before, "sluice_upstream_errors_total", e))
  end)

  it("counts each plugin phase call and the plugin's own metrics once per request", function()
    local before = scrape()
    for _ = 1, 5 do get("/app/name") end
    get("/nowhere")
    local after = scrape_when(function(f)
      return delta(f, before, "sluice_plugin_calls_total", { plugin = "metered", phase = "log" }) >= 6
    end)
    local function d(name, labels) return delta(after, before, name, labels) end
    -- a request no route takes skips the request phases; log runs for all
    for phase, n in pairs { request_headers = 5, log = 6 } do
      local l = { plugin = "metered", phase = phase }
      assert.equals(n, d("sluice_plugin_calls_total", l), phase)
      assert.equals(0, d("sluice_plugin_errors_total", l), phase)
      assert.equals(n, d("sluice_plugin_duration_seconds_count", l), phase)
    end
    assert.is_nil(prom.value(after, "sluice_plugin_calls_total",
      { plugin = "metered", phase = "response_headers" }), "a phase the plugin lacks")
    assert.equals(5, d("sluice_plugin_metered_seen_total", {}))
    assert.equals("Requests the metered plugin saw.", after.sluice_plugin_metered_seen_total.help)
    -- "/app/name" is 9 bytes long
    assert.equals(0, d("sluice_plugin_metered_path_length_bucket", { le = "8" }))
    assert.equals(5, d("sluice_plugin_metered_path_length_bucket", { le = "32" }))
    assert.equals(45, d("sluice_plugin_metered_path_length_sum", {}))
  end)

  it("shows a shared dict's bytes, entries and evictions", function()
    local before = scrape()
    local d = { dict = "store" }
    assert.equals(8192, prom.value(before, "sluice_shared_dict_capacity_bytes", d))
    assert.equals("gauge", before.sluice_shared_dict_used_bytes.type)
    assert.equals("counter", before.sluice_shared_dict_evictions_total.type)
    -- 100 entries of over 1000 bytes cannot all stay in 8 KiB
    for i = 1, 100 do
      assert.equals(200, get("/app/name", nil, { { "X-Store", tostring(i) } }).status)
    end
    local after = scrape()
    local used = prom.value(after, "sluice_shared_dict_used_bytes", d)
    assert.is_true(used > 0 and used <= 8192, "used " .. tostring(used))
    local entries = prom.value(after, "sluice_shared_dict_entries", d)
    assert.is_true(entries > 0 and entries < 100, "entries " .. tostring(entries))
    assert.equals(100 - entries, prom.value(after, "sluice_shared_dict_evictions_total", d)
                                 - prom.value(before, "sluice_shared_dict_evictions_total", d)
                                 - (prom.value(before, "sluice_shared_dict_entries", d) or 0))
  end)

  it("shows open client connections in sluice_connections_active", function()
    local base = h.wait_until(function()
      local f = scrape()
      return prom.value(f, "sluice_connections_active", {}) == 0 and f
    end)
    assert.is_truthy(base, "client connections still counted from earlier tests")
    local conns = {}
    for i = 1, 3 do
      conns[i] = assert(h.connect(port))
      get("/app/name", conns[i])
    end
    local f = scrape()
    assert.equals(3, prom.value(f, "sluice_connections_active", {}))
    assert.is_true(prom.value(f, "sluice_upstream_connections_active", {}) >= 1)
    for _, c in ipairs(conns) do c:close() end
    assert.is_truthy(h.wait_until(function()
      return prom.value(scrape(), "sluice_connections_active", {}) == 0
    end), "closed connections still counted")
  end)

  it("keeps counting across a reload, and counts the reload", function()
    local l = { route = "/app", method = "GET", status = "2xx" }
    local start = scrape()
    for _ = 1, 3 do get("/app/name") end
    local before = scrape_when(function(f) return delta(f, start, "sluice_requests_total", l) >= 3 end)
    local gen = prom.value(before, "sluice_config_generation", {})
    -- a change, so the reload builds a new generation
    write(cfg_path, config() .. "timeouts: {keepalive: 59s}\n")
    proxy:signal("HUP")
    assert.is_truthy(h.wait_until(function()
      return prom.value(scrape(), "sluice_config_generation", {}) ~= gen
    end), "the reload did not publish a generation")
    for _ = 1, 3 do get("/app/name") end
    local after = scrape_when(function(f) return delta(f, before, "sluice_requests_total", l) >= 3 end)
    assert.equals(3, delta(after, before, "sluice_requests_total", l))
    assert.equals(3, prom.value(after, "sluice_plugin_metered_seen_total", {})
                     - prom.value(before, "sluice_plugin_metered_seen_total", {}))
    assert.equals(3, prom.value(after, "sluice_plugin_calls_total",
                                { plugin = "metered", phase = "request_headers" })
                     - prom.value(before, "sluice_plugin_calls_total",
                                  { plugin = "metered", phase = "request_headers" }))
    assert.equals(1, prom.value(after, "sluice_reloads_total", { result = "success" })
                     - prom.value(before, "sluice_reloads_total", { result = "success" }))
    assert.equals(1, prom.value(after, "sluice_config_last_reload_successful", {}))
    assert.is_true(prom.value(after, "sluice_generations_live", {}) >= 1)
  end)

  it("counts a failed reload and leaves every counter as it was", function()
    local before = scrape()
    write(cfg_path, config() .. "bogus_key: 1\n")
    proxy:signal("HUP")
    assert.is_truthy(h.wait_until(function()
      return prom.value(scrape(), "sluice_reloads_total", { result = "failure" })
             > prom.value(before, "sluice_reloads_total", { result = "failure" })
    end), "the failed reload was not counted")
    local after = scrape()
    assert.equals(0, prom.value(after, "sluice_config_last_reload_successful", {}))
    local l = { route = "/app", method = "GET", status = "2xx" }
    assert.equals(prom.value(before, "sluice_requests_total", l),
                  prom.value(after, "sluice_requests_total", l))
    write(cfg_path, config())
  end)
end)
