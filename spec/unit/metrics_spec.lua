-- spec/unit/metrics_spec.lua: the metrics registry and its rendering
-- (src/metrics.c), through build/libsluice.so: plugins' own counters and
-- histograms (C and sluice.metrics), a generation's route, backend and
-- request counters, counters that continue across generations, and the
-- text format, checked by the strict parser of spec/support/prometheus.lua.
--
-- The registry is process-wide and other spec files may have used it, so
-- every check compares before and after, with names of its own.

local ffi = require "ffi"
local harness = require "spec.plugin_harness"   -- loads the library globally
local prom = require "spec.support.prometheus"

pcall(ffi.cdef, [[
  struct sl_buf { char *data; size_t start, end, cap; };
  struct sl_config;
  struct sl_gen;
  struct sl_config_errors { char **msgs; size_t n; };
  int sl_metrics_init(int nworkers);
  int sl_metrics_define(const char *plugin, const char *name, const char *help, int type,
                        const double *buckets, size_t nbuckets, char *err, size_t errlen);
  int sl_metrics_add(int worker, int handle, double n);
  int sl_metrics_observe(int worker, int handle, double v);
  int sl_metrics_render(struct sl_buf *out);
  void sl_metrics_count_request(const struct sl_gen *g, int worker, size_t route, int method,
                                int status, int64_t us);
  void sl_metrics_count_upstream(const struct sl_gen *g, int worker, size_t gidx, bool reused,
                                 int64_t first_byte_us);
  void sl_metrics_upstream_connected(const struct sl_gen *g, int worker, size_t gidx, int64_t us);
  void sl_metrics_upstream_error(const struct sl_gen *g, int worker, size_t gidx, int kind);
  void sl_buf_fini(struct sl_buf *b);
  struct sl_config *sl_config_load(const char *path, struct sl_config_errors *errs);
  void sl_config_errors_fini(struct sl_config_errors *errs);
  struct sl_gen *sl_gen_new(struct sl_config *cfg, char *err, size_t errlen);
  void sl_gen_unref(struct sl_gen *g);
]])

local C = ffi.C
local COUNTER, HISTOGRAM = 0, 1
local GET, POST, DELETE, PROPFIND = 1, 3, 0, 20     -- llhttp method numbers
local errbuf = ffi.new("char[512]")

local function render()
  local b = ffi.new("struct sl_buf")
  assert.equals(0, C.sl_metrics_render(b))
  local text = b.data ~= nil and ffi.string(b.data + b.start, b["end"] - b.start) or ""
  C.sl_buf_fini(b)
  return text, prom.parse(text)
end

local function define(plugin, name, help, kind, buckets)
  local arr, n = nil, 0
  if buckets then
    n = #buckets
    arr = ffi.new("double[?]", n, buckets)
  end
  local h = C.sl_metrics_define(plugin, name, help, kind, arr, n, errbuf, 512)
  if h < 0 then return nil, ffi.string(errbuf) end
  return h
end

local function tmp_config(yaml)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(yaml)
  f:close()
  return path
end

-- A generation built from yaml as the proxy builds one (no workers run).
local function new_gen(yaml)
  local path = tmp_config(yaml)
  local errs = ffi.new("struct sl_config_errors")
  local cfg = C.sl_config_load(path, errs)
  local msgs = {}
  for i = 0, tonumber(errs.n) - 1 do msgs[#msgs + 1] = ffi.string(errs.msgs[i]) end
  C.sl_config_errors_fini(errs)
  os.remove(path)
  assert(cfg ~= nil, table.concat(msgs, "\n"))
  local g = C.sl_gen_new(cfg, errbuf, 512)
  assert(g ~= nil, ffi.string(errbuf))
  return ffi.gc(g, C.sl_gen_unref)
end

describe("the metrics registry", function()
  setup(function() C.sl_metrics_init(1) end)

  it("renders text that the strict parser accepts, with the built-in families", function()
    local _, fams = render()
    for _, name in ipairs {
      "sluice_requests_total", "sluice_request_duration_seconds", "sluice_connections_active",
      "sluice_upstream_connections_active", "sluice_upstream_requests_total",
      "sluice_upstream_connect_duration_seconds", "sluice_upstream_response_duration_seconds",
      "sluice_upstream_errors_total", "sluice_plugin_calls_total", "sluice_plugin_errors_total",
      "sluice_plugin_budget_kills_total", "sluice_plugin_duration_seconds",
      "sluice_reloads_total", "sluice_config_generation", "sluice_generations_live",
      "sluice_config_last_reload_successful",
    } do
      assert.is_table(fams[name], name .. " is missing")
      assert.is_string(fams[name].help, name .. " has no HELP")
      assert.is_string(fams[name].type, name .. " has no TYPE")
    end
    assert.equals("histogram", fams.sluice_request_duration_seconds.type)
    assert.equals("gauge", fams.sluice_connections_active.type)
  end)

  it("sums a plugin counter's increments and appends _total to its name", function()
    local h = assert(define("unit-a", "hits", "Hits of unit-a.", COUNTER))
    local before = prom.value(select(2, render()), "sluice_plugin_unit_a_hits_total", {}) or 0
    assert.equals(0, C.sl_metrics_add(0, h, 1))
    assert.equals(0, C.sl_metrics_add(0, h, 2.5))
    local _, fams = render()
    assert.equals("counter", fams.sluice_plugin_unit_a_hits_total.type)
    assert.equals("Hits of unit-a.", fams.sluice_plugin_unit_a_hits_total.help)
    assert.equals(before + 3.5, prom.value(fams, "sluice_plugin_unit_a_hits_total", {}))
  end)

  it("gives the same handle to the same definition, as every VM of a plugin makes it", function()
    local a = assert(define("unit-b", "seen_total", "one", COUNTER))
    local b = assert(define("unit-b", "seen_total", "two", COUNTER))
    assert.equals(a, b)
    local _, fams = render()
    assert.equals("two", fams.sluice_plugin_unit_b_seen_total.help)
  end)

  it("fills a plugin histogram's cumulative buckets, sum and count", function()
    local h = assert(define("unit-c", "size", "Sizes.", HISTOGRAM, { 10, 100, 1000 }))
    for _, v in ipairs { 5, 10, 50, 5000, 0.5 } do assert.equals(0, C.sl_metrics_observe(0, h, v)) end
    local _, fams = render()
    local n = "sluice_plugin_unit_c_size"
    assert.equals("histogram", fams[n].type)
    assert.equals(3, prom.value(fams, n .. "_bucket", { le = "10" }))
    assert.equals(4, prom.value(fams, n .. "_bucket", { le = "100" }))
    assert.equals(4, prom.value(fams, n .. "_bucket", { le = "1000" }))
    assert.equals(5, prom.value(fams, n .. "_bucket", { le = "+Inf" }))
    assert.equals(5, prom.value(fams, n .. "_count", {}))
    assert.equals(5065.5, prom.value(fams, n .. "_sum", {}))
  end)

  it("uses the default buckets for a histogram defined without any", function()
    assert(define("unit-c", "latency", "Latency.", HISTOGRAM))
    local _, fams = render()
    local les = {}
    for _, s in ipairs(fams.sluice_plugin_unit_c_latency.samples) do
      if s.labels.le then les[#les + 1] = s.labels.le end
    end
    assert.same({ "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf" }, les)
  end)

  it("escapes a help text's backslash in HELP", function()
    assert(define("unit-d", "paths", [[Paths like C:\temp.]], COUNTER))
    local text, fams = render()
    assert.truthy(text:find([[# HELP sluice_plugin_unit_d_paths_total Paths like C:\\temp.]], 1, true))
    assert.equals([[Paths like C:\temp.]], fams.sluice_plugin_unit_d_paths_total.help)
  end)

  local refused = {
    { why = "an empty name", name = "", msg = "invalid metric name" },
    { why = "a name with a dash", name = "a-b", msg = "invalid metric name" },
    { why = "a name starting with a digit", name = "1x", msg = "invalid metric name" },
    { why = "a name ending in _bucket", name = "x_bucket", msg = "invalid metric name" },
    { why = "a name ending in _count", name = "x_count", msg = "invalid metric name" },
    { why = "a 65-byte name", name = ("x"):rep(65), msg = "invalid metric name" },
    { why = "a help text with a line feed", name = "h1", help = "a\nb", msg = "help" },
    { why = "a help text that is not UTF-8", name = "h2", help = "a\255b", msg = "help" },
    { why = "unsorted buckets", name = "b1", kind = HISTOGRAM, buckets = { 1, 3, 2 }, msg = "increasing" },
    { why = "equal buckets", name = "b2", kind = HISTOGRAM, buckets = { 1, 1 }, msg = "increasing" },
    { why = "an infinite bucket", name = "b3", kind = HISTOGRAM, buckets = { 1, math.huge }, msg = "finite" },
    { why = "33 buckets", name = "b4", kind = HISTOGRAM, buckets = (function()
        local t = {} for i = 1, 33 do t[i] = i end return t end)(), msg = "1 to 32 buckets" },
    { why = "a built-in metric's name", plugin = "duration", name = "seconds",
      kind = HISTOGRAM, msg = "built-in" },
  }
  for _, case in ipairs(refused) do
    it("refuses a definition with " .. case.why, function()
      local h, err = define(case.plugin or "unit-e", case.name, case.help or "", case.kind or COUNTER,
                            case.buckets)
      assert.is_nil(h)
      assert.truthy(err:find(case.msg, 1, true), err)
    end)
  end

  it("refuses to change a metric's type or buckets, or to take another plugin's name", function()
    assert(define("unit-f", "m", "", COUNTER))
    local h, err = define("unit-f", "m_total", "", HISTOGRAM)
    assert.is_nil(h)
    assert.truthy(err:find("invalid metric name", 1, true) or err:find("already", 1, true), err)
    assert(define("unit-f", "hist", "", HISTOGRAM, { 1, 2 }))
    h, err = define("unit-f", "hist", "", HISTOGRAM, { 1, 3 })
    assert.is_nil(h)
    assert.truthy(err:find("restart", 1, true), err)
    -- "unit_f" and "unit-f" spell the same metric name
    h, err = define("unit_f", "hist", "", HISTOGRAM, { 1, 2 })
    assert.is_nil(h)
    assert.truthy(err:find("already plugin unit-f's", 1, true), err)
  end)

  it("caps the metrics of one plugin at 64", function()
    for i = 1, 64 do assert(define("unit-g", "m" .. i, "", COUNTER)) end
    local h, err = define("unit-g", "m65", "", COUNTER)
    assert.is_nil(h)
    assert.truthy(err:find("too many", 1, true), err)
  end)

  it("refuses bad values, a wrong handle, the wrong kind and an unknown worker", function()
    local c = assert(define("unit-h", "c", "", COUNTER))
    local hi = assert(define("unit-h", "h", "", HISTOGRAM))
    assert.equals(-1, C.sl_metrics_add(0, c, -1))
    assert.equals(-1, C.sl_metrics_add(0, c, 0 / 0))
    assert.equals(-1, C.sl_metrics_add(0, c, math.huge))
    assert.equals(-1, C.sl_metrics_observe(0, hi, 0 / 0))
    assert.equals(-1, C.sl_metrics_add(0, hi, 1))
    assert.equals(-1, C.sl_metrics_observe(0, c, 1))
    assert.equals(-1, C.sl_metrics_add(0, 99999, 1))
    assert.equals(-1, C.sl_metrics_add(0, -1, 1))
    assert.equals(-1, C.sl_metrics_add(4096, c, 1))
    assert.equals(0, C.sl_metrics_observe(0, hi, -3))   -- negative observations are fine
  end)
end)

describe("a generation's metrics", function()
  local yaml = [[
listen: ["127.0.0.1:1"]
upstreams:
  unit_app:
    backends: ["127.0.0.1:9", "127.0.0.1:10"]
routes:
  - path: '/q"uote\back'
    upstream: unit_app
  - host: unit.example.com
    path: /v1
    upstream: unit_app
]]

  it("counts requests by route, method class and status class, with escaped labels", function()
    local g = new_gen(yaml)
    local _, before = render()
    local r0 = { route = [[/q"uote\back]] }
    local function count(fams, method, status)
      return prom.value(fams, "sluice_requests_total",
        { route = r0.route, method = method, status = status }) or 0
    end
    C.sl_metrics_count_request(g, 0, 0, GET, 200, 500)
    C.sl_metrics_count_request(g, 0, 0, GET, 204, 3000)
    C.sl_metrics_count_request(g, 0, 0, POST, 503, 2000000)
    C.sl_metrics_count_request(g, 0, 0, PROPFIND, 404, 0)
    C.sl_metrics_count_request(g, 0, 0, DELETE, 0, 0)
    C.sl_metrics_count_request(g, 0, 0, GET, 999, 0)
    C.sl_metrics_count_request(g, 0, 7, GET, 404, 100)      -- no route
    C.sl_metrics_count_request(g, 0, 1, GET, 301, 100)
    local text, fams = render()
    assert.truthy(text:find([[route="/q\"uote\\back"]], 1, true), "route label not escaped")
    assert.equals(2, count(fams, "GET", "2xx") - count(before, "GET", "2xx"))
    assert.equals(1, count(fams, "POST", "5xx") - count(before, "POST", "5xx"))
    assert.equals(1, count(fams, "other", "4xx") - count(before, "other", "4xx"))
    assert.equals(1, count(fams, "DELETE", "none") - count(before, "DELETE", "none"))
    assert.equals(1, count(fams, "GET", "other") - count(before, "GET", "other"))
    local function v(f, labels) return prom.value(f, "sluice_requests_total", labels) or 0 end
    local none = { route = "none", method = "GET", status = "4xx" }
    assert.equals(1, v(fams, none) - v(before, none))
    local host = { route = "unit.example.com/v1", method = "GET", status = "3xx" }
    assert.equals(1, v(fams, host) - v(before, host))
    -- the latency histogram of route 0: 500 us, 3 ms, 2 s, 0, 0, 0
    local function bucket(f, le)
      return prom.value(f, "sluice_request_duration_seconds_bucket", { route = r0.route, le = le }) or 0
    end
    assert.equals(4, bucket(fams, "0.001") - bucket(before, "0.001"))
    assert.equals(5, bucket(fams, "0.005") - bucket(before, "0.005"))
    assert.equals(5, bucket(fams, "1") - bucket(before, "1"))
    assert.equals(6, bucket(fams, "2.5") - bucket(before, "2.5"))
    local function sum(f)
      return prom.value(f, "sluice_request_duration_seconds_sum", { route = r0.route }) or 0
    end
    assert.near(2.0035, sum(fams) - sum(before), 1e-9)
  end)

  it("counts backend attempts, connects, first bytes and errors by upstream and backend", function()
    local g = new_gen(yaml)
    local _, before = render()
    local b1 = { upstream = "unit_app", backend = "127.0.0.1:10" }
    C.sl_metrics_count_upstream(g, 0, 1, false, 40000)
    C.sl_metrics_count_upstream(g, 0, 1, true, -1)
    C.sl_metrics_count_upstream(g, 0, 1, true, -1)
    C.sl_metrics_upstream_connected(g, 0, 1, 1200)
    C.sl_metrics_upstream_error(g, 0, 1, 0)
    C.sl_metrics_upstream_error(g, 0, 1, 5)
    C.sl_metrics_upstream_error(g, 0, 1, 5)
    local _, fams = render()
    local function d(name, extra)
      local l = { upstream = b1.upstream, backend = b1.backend }
      for k, val in pairs(extra or {}) do l[k] = val end
      return (prom.value(fams, name, l) or 0) - (prom.value(before, name, l) or 0)
    end
    assert.equals(1, d("sluice_upstream_requests_total", { connection = "new" }))
    assert.equals(2, d("sluice_upstream_requests_total", { connection = "reused" }))
    assert.equals(1, d("sluice_upstream_connect_duration_seconds_bucket", { le = "0.0025" }))
    assert.equals(0, d("sluice_upstream_connect_duration_seconds_bucket", { le = "0.001" }))
    assert.equals(1, d("sluice_upstream_response_duration_seconds_bucket", { le = "0.05" }))
    assert.equals(0, d("sluice_upstream_response_duration_seconds_bucket", { le = "0.025" }))
    assert.equals(1, d("sluice_upstream_errors_total", { kind = "connect_refused" }))
    assert.equals(2, d("sluice_upstream_errors_total", { kind = "bad_response" }))
    -- the other backend saw nothing
    local b0 = { upstream = "unit_app", backend = "127.0.0.1:9", connection = "new" }
    assert.equals(prom.value(before, "sluice_upstream_requests_total", b0) or 0,
                  prom.value(fams, "sluice_upstream_requests_total", b0))
  end)

  it("continues the counters of routes and backends a later generation names again", function()
    local g1 = new_gen(yaml)
    local l = { route = "unit.example.com/v1", method = "PUT", status = "2xx" }
    local _, before = render()
    C.sl_metrics_count_request(g1, 0, 1, 4, 201, 10)
    -- the next generation lists the routes the other way round
    local g2 = new_gen([[
listen: ["127.0.0.1:1"]
upstreams:
  unit_app:
    backends: ["127.0.0.1:10"]
routes:
  - host: unit.example.com
    path: /v1
    upstream: unit_app
]])
    C.sl_metrics_count_request(g2, 0, 0, 4, 202, 10)
    C.sl_metrics_count_request(g1, 0, 1, 4, 200, 10)    -- a request still on the old one
    local _, fams = render()
    assert.equals(3, (prom.value(fams, "sluice_requests_total", l) or 0)
                     - (prom.value(before, "sluice_requests_total", l) or 0))
  end)
end)

describe("sluice.metrics in a Lua plugin", function()
  local source = [[
local hits = sluice.metrics.counter("hits", "Requests seen by the plugin.")
local sizes = sluice.metrics.histogram("sizes", "Sizes.", { 1, 10 })
local p = { name = "unit-lua", version = "1", priority = 10 }
function p.init()
  sluice.metrics.counter("from_init", "Defined in init.")
end
function p.request_headers()
  hits:inc()
  hits:inc(2)
  sizes:observe(5)
  local ok, err = pcall(sluice.metrics.counter, "late", "")
  if ok or not err:find("only while the plugin loads", 1, true) then
    error("a definition during a request: " .. tostring(err))
  end
  ok, err = pcall(hits.inc, hits, 1, { path = "/" })
  if ok or not err:find("labels are not supported", 1, true) then
    error("labels: " .. tostring(err))
  end
  sluice.log.set_field("n", 42)
  sluice.log.set_field("n", nil)
  ok, err = pcall(sluice.log.set_field, "bad key", "v")
  if ok or not err:find("invalid field", 1, true) then
    error("set_field: " .. tostring(err))
  end
end
return p
]]

  it("defines at load, counts in hooks and refuses definitions during a request", function()
    local p, err = harness.load_source("unit-lua", source)
    assert(p, err)
    local _, before = render()
    local req = assert(harness.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert.equals("continue", p:call("request_headers", req))
    local _, fams = render()
    local function d(name)
      return (prom.value(fams, name, {}) or 0) - (prom.value(before, name, {}) or 0)
    end
    assert.equals(3, d("sluice_plugin_unit_lua_hits_total"))
    local function b(f, le)
      return prom.value(f, "sluice_plugin_unit_lua_sizes_bucket", { le = le }) or 0
    end
    assert.equals(0, b(fams, "1") - b(before, "1"))
    assert.equals(1, b(fams, "10") - b(before, "10"))
    assert.equals(5, d("sluice_plugin_unit_lua_sizes_sum"))
    assert.is_table(fams.sluice_plugin_unit_lua_from_init_total)
    assert.equals("Requests seen by the plugin.", fams.sluice_plugin_unit_lua_hits_total.help)
    req:free()
    p:free()
  end)

  local misuse = {
    { code = [[sluice.metrics.counter(1)]], msg = "bad argument #1" },
    { code = [[sluice.metrics.counter("bad-name")]], msg = "invalid metric name" },
    { code = [[sluice.metrics.histogram("h", "", { 2, 1 })]], msg = "increasing" },
    { code = [[sluice.metrics.histogram("h", "", {})]], msg = "1 to 32 buckets" },
    { code = [[sluice.metrics.counter("c"):inc(-1)]], msg = "a finite number >= 0 expected" },
    { code = [[sluice.metrics.counter("c"):inc(1)]], msg = "not available outside a request" },
  }
  for _, case in ipairs(misuse) do
    it("fails to load a plugin that runs " .. case.code, function()
      local p, err = harness.load_source("unit-bad", case.code .. "\nreturn { name = 'unit-bad', priority = 1 }")
      assert.is_nil(p)
      assert.truthy(err:find(case.msg, 1, true), err)
      -- Definition errors point at the plugin's own line, not into the API.
      if case.code:find("^sluice%.metrics%.[a-z]+%(") and not case.code:find("):", 1, true) then
        assert.is_nil(err:find("metrics.lua", 1, true), err)
        assert.truthy(err:find(":1:", 1, true), err)
      end
    end)
  end
end)
