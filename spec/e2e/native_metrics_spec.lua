-- A native plugin's own metrics (ABI 1.3: metric_counter, metric_histogram
-- in config_create; metric_add, metric_observe in hooks) on GET /metrics of
-- the admin listener, parsed by the strict parser (spec/support/
-- prometheus.lua): named after the plugin as Lua plugins' are, N requests
-- count N (summed over two workers), a reload that defines them again keeps
-- their values, a reload that changes a histogram's buckets is refused
-- while the old configuration keeps counting, and a bad definition fails
-- `sluice -t` and a start with its file:line:col.
--
-- The fixture is spec/fixtures/native/native-metered.c, built by `make`
-- next to the library ($SLUICE_LIB's directory, fixtures-native/).
--
-- Run: busted --lua=luajit spec/e2e/native_metrics_spec.lua
local h = require "spec.helpers"
local json = require "dkjson"
local prom = require "spec.support.prometheus"

local ROOT = os.getenv("PWD")
local BUILD = (os.getenv("SLUICE_LIB") or "build/libsluice.so"):match("^(.*)/[^/]+$") or "build"
if BUILD:sub(1, 1) ~= "/" then BUILD = ROOT .. "/" .. BUILD end
local FIX = BUILD .. "/fixtures-native"

local SEEN = "sluice_plugin_native_metered_seen_total"
local LEN = "sluice_plugin_native_metered_path_length"

-- The plugin's entry is on line 11, column 5; plugin_config (nil: none)
-- is its `config` map in flow style.
local function config(port, aport, origin_port, plugin_config)
  return table.concat({
    "workers: 2",
    "listen: [127.0.0.1:" .. port .. "]",
    "admin: {listen: 127.0.0.1:" .. aport .. "}",
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. origin_port .. "]",
    "routes:",
    "  - {path: /app, upstream: app}",
    "plugin_paths: [" .. FIX .. "]",
    "plugins:",
    "  - name: native-metered",
    plugin_config and "    config: " .. plugin_config or "",
  }, "\n") .. "\n"
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function escape(s)
  return (s:gsub("%p", "%%%0"))
end

-- Fails on a sanitizer report in text (the ASan build's output).
local function assert_clean(text)
  for _, m in ipairs { "AddressSanitizer", "LeakSanitizer", "runtime error:" } do
    assert(not text:find(m, 1, true), "sanitizer report:\n" .. text)
  end
end

describe("a native plugin's own metrics", function()
  local origin, proxy, port, aport, cfg_path

  lazy_setup(function()
    origin = h.start_origin { name = "nm" }
    port, aport = h.free_port(), h.free_port()
    cfg_path = h.write_tmp(config(port, aport, origin.port))
    proxy = h.start_proxy { args = { "-c", cfg_path }, port = port }
    assert(h.wait_until(function() return h.is_listening(aport) end), "no admin listener")
  end)

  lazy_teardown(function()
    if proxy then
      local _, text = proxy:stop()
      assert_clean(text or "")
    end
    if origin then origin:stop() end
  end)

  local function scrape()
    local resp = assert(h.get(aport, "/metrics"))
    assert.equals(200, resp.status, resp.body)
    return prom.parse(resp.body)
  end

  -- A worker counts once the hook ran, which may be a moment after the
  -- response is read: scrape until ready(fams) holds, for up to 3 s.
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
    labels = labels or {}
    return (prom.value(after, name, labels) or 0) - (prom.value(before, name, labels) or 0)
  end

  local function get_n(n, path)
    for _ = 1, n do
      assert.equals(200, assert(h.get(port, path)).status)
    end
  end

  local function reload()
    local resp = assert(h.request(aport, h.build_request("POST", "/admin/reload",
      { { "Host", "localhost" } }, '{"force": true}')))
    return resp.status, json.decode(resp.body)
  end

  it("are exposed under the plugin's name with their type and help", function()
    local fams = scrape()
    assert.equals("counter", fams[SEEN].type)
    assert.equals("Requests the native metered plugin saw.", fams[SEEN].help)
    assert.equals("histogram", fams[LEN].type)
    assert.equals("Length of request paths.", fams[LEN].help)
  end)

  it("count N requests as N over both workers, and observe each path's length", function()
    local before = scrape()
    local N = 7
    get_n(N, "/app/name")
    local after = scrape_when(function(f) return delta(f, before, SEEN) >= N end)
    assert.equals(N, delta(after, before, SEEN))
    -- "/app/name" is 9 bytes long: above 8, within 32
    assert.equals(0, delta(after, before, LEN .. "_bucket", { le = "2" }))
    assert.equals(0, delta(after, before, LEN .. "_bucket", { le = "8" }))
    assert.equals(N, delta(after, before, LEN .. "_bucket", { le = "32" }))
    assert.equals(N, delta(after, before, LEN .. "_bucket", { le = "+Inf" }))
    assert.equals(N, delta(after, before, LEN .. "_count"))
    assert.equals(9 * N, delta(after, before, LEN .. "_sum"))
    -- the hook's own checks (metric_observe refuses a counter's handle) held
    local l = { plugin = "native-metered", phase = "request_headers" }
    assert.equals(N, delta(after, before, "sluice_plugin_calls_total", l))
    assert.equals(0, delta(after, before, "sluice_plugin_errors_total", l))
  end)

  it("keep their values across a reload that defines them again", function()
    get_n(2, "/app/name")
    local before = scrape_when(function(f) return (prom.value(f, SEEN, {}) or 0) >= 2 end)
    local status, body = reload()
    assert.equals(200, status, json.encode(body))
    get_n(3, "/app/x")
    local after = scrape_when(function(f) return delta(f, before, SEEN) >= 3 end)
    -- not reset by the new generation's config_create: +3 on the old value
    assert.equals(3, delta(after, before, SEEN))
    assert.equals(3, delta(after, before, LEN .. "_count"))
    assert.equals(3, delta(after, before, LEN .. "_bucket", { le = "8" }))
    assert.equals(1, delta(after, before, "sluice_reloads_total", { result = "success" }))
  end)

  it("refuse a reload that changes a histogram's buckets; the old one counts on", function()
    local before = scrape()
    write(cfg_path, config(port, aport, origin.port, "{buckets: [1, 2]}"))
    local status, body = reload()
    write(cfg_path, config(port, aport, origin.port))
    assert.equals(500, status)
    assert.equals(cfg_path .. ":11:5: plugin native-metered: metric_histogram: "
                  .. "metric path_length: already defined as a histogram with other buckets "
                  .. "(changing its type or buckets needs a restart)", body.error)
    get_n(2, "/app/name")
    local after = scrape_when(function(f) return delta(f, before, SEEN) >= 2 end)
    assert.equals(2, delta(after, before, SEEN))
    assert.equals(2, delta(after, before, LEN .. "_bucket", { le = "32" }))
    assert.is_nil(prom.value(after, LEN .. "_bucket", { le = "1" }), "the refused buckets")
    assert.equals(1, delta(after, before, "sluice_reloads_total", { result = "failure" }))
  end)

  describe("with a bad definition fail -t and a start, at the plugin's position", function()
    local cases = {
      { why = "a counter name with a dash", config = "{counter: bad-name}",
        msg = "metric_counter: invalid metric name 'bad-name': use 1 to 64 letters, "
              .. "digits or '_', not starting with a digit nor ending in _bucket, _sum "
              .. "or _count" },
      { why = "a counter name ending in _count", config = "{counter: seen_count}",
        msg = "metric_counter: invalid metric name 'seen_count'" },
      { why = "histogram bounds that decrease", config = "{buckets: [3, 1]}",
        msg = "metric_histogram: metric path_length: bucket bounds must be finite and "
              .. "strictly increasing" },
      { why = "a histogram with no bucket", config = "{buckets: []}",
        msg = "metric_histogram: metric path_length: a histogram has 1 to 32 buckets" },
    }
    for _, c in ipairs(cases) do
      it(c.why, function()
        local path = h.write_tmp(config(h.free_port(), h.free_port(), 9, c.config))
        local want = escape(path) .. ":11:5: plugin native%-metered: " .. escape(c.msg)
        for _, cmd in ipairs { " -t -c ", " -c " } do
          local code, out = h.run("timeout 10 " .. h.quote(h.bin) .. cmd .. h.quote(path))
          assert.are_not.equal(0, code, out)
          assert.are_not.equal(124, code, out)
          assert.truthy(out:find(want), out)
          assert_clean(out)
        end
      end)
    end
  end)
end)
