-- The admin API end to end (docs/ADMIN.md): every endpoint over real HTTP,
-- the bearer token, the JSON errors, switching plugins on and off through
-- generation swaps and how that override meets later reloads, admin
-- reloads that fail while the old generation keeps serving, and the
-- generations a slow request keeps alive.
--
-- One proxy (2 workers, admin on loopback with a token) serves most cases;
-- after each case its configuration file and plugin files are written
-- back, the overrides reset and the configuration reloaded, so cases do
-- not depend on each other.
--
-- Run: busted --lua=luajit spec/e2e/admin_spec.lua
local h = require "spec.helpers"
local json = require "dkjson"
local prom = require "spec.support.prometheus"

local PLUGINS = os.getenv("PWD") .. "/plugins-lua"
local TOKEN = "spec-admin-token-0123456789"

-- A plugin of our own in a temp directory, to break its Lua on purpose.
local TAGGER = [[
local sluice = require "sluice"
return {
  name = "tagger", version = "2.1", priority = 10,
  schema = { type = "record", fields = { { tag = { type = "string", required = true } } } },
  response_headers = function(conf)
    sluice.response.set_header("X-Tag", conf.tag)
  end,
}
]]

local BROKEN_TAGGER = [[
local sluice = require "sluice"
return {
  name = "tagger", version = "2.1",
  response_headers = function(conf)
    sluice.response.set_header("X-Tag", conf.tag
  end,
}
]]

local function write(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
end

local function tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. h.quote(dir)))
  return dir
end

-- The configuration; opts: cfg (X-Cfg value, "A"), headers_enabled
-- (true), admin (the admin: section, default loopback with the token).
local function config(env, opts)
  opts = opts or {}
  local enabled = opts.headers_enabled == nil and "true" or tostring(opts.headers_enabled)
  return table.concat({
    "workers: 2",
    "listen: [127.0.0.1:" .. env.port .. "]",
    opts.admin or ("admin:\n  listen: 127.0.0.1:" .. env.aport .. "\n  token: " .. TOKEN),
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. env.origin.port .. "]",
    "  dead:",
    "    backends: [127.0.0.1:" .. env.dead_port .. "]",
    "    fail_cooldown: 60s",
    "plugin_paths: [" .. PLUGINS .. ", " .. env.pdir .. "]",
    "plugins:",
    "  - name: headers",
    "    enabled: " .. enabled,
    "    config: {response: {set: {X-Cfg: " .. (opts.cfg or "A") .. "}}}",
    "routes:",
    "  - path: /",
    "    upstream: app",
    "  - path: /tagged",
    "    upstream: app",
    "    plugins:",
    "      - name: tagger",
    "        config: {tag: t1}",
    "  - path: /dead",
    "    upstream: dead",
    "",
  }, "\n")
end

-- An admin call: method, path, and opts body, token (default TOKEN; false
-- for none), headers (extra {name, value} pairs). The response gets .json
-- (nulls as json.null) when its body is JSON.
local function call(env, method, path, opts)
  opts = opts or {}
  local hdrs = { { "Host", "localhost" } }
  local token = opts.token == nil and TOKEN or opts.token
  if token then hdrs[#hdrs + 1] = { "Authorization", "Bearer " .. token } end
  for _, p in ipairs(opts.headers or {}) do hdrs[#hdrs + 1] = p end
  local resp, err = h.request(opts.port or env.aport,
    h.build_request(method, path, hdrs, opts.body))
  assert(resp, "admin " .. method .. " " .. path .. ": " .. tostring(err))
  if (resp.headers["content-type"] or ""):find("application/json", 1, true) then
    resp.json = json.decode(resp.body, 1, json.null)
    assert(type(resp.json) == "table", "not JSON: " .. resp.body)
  end
  return resp
end

-- Runs the binary with args (a list); returns exit code and output, and
-- fails on a sanitizer report.
local function run_bin(args)
  local words = { h.quote(h.bin) }
  for _, a in ipairs(args) do words[#words + 1] = h.quote(a) end
  local code, out = h.run(table.concat(words, " ") .. " 2>&1")
  for _, m in ipairs { "AddressSanitizer", "LeakSanitizer", "runtime error:" } do
    assert(not out:find(m, 1, true), "sanitizer report:\n" .. out)
  end
  return code, out
end

local function get_proxy(env, path)
  return assert(h.get(env.port, path or "/"))
end

local function sha256_of(path)
  local code, out = h.run("sha256sum " .. h.quote(path))
  assert(code == 0, out)
  return out:match("^(%x+)")
end

local function instances(resp, scope)
  local out = {}
  for _, p in ipairs(resp.json.plugins or resp.json.instances) do
    if not scope or p.scope == scope then out[#out + 1] = p end
  end
  return out
end

describe("the admin API", function()
  local env, proxy

  local function restore()
    write(env.pdir .. "/tagger.lua", TAGGER)
    write(proxy.config_path, config(env))
    for _, name in ipairs { "headers", "tagger" } do
      local r = call(env, "POST", "/admin/plugins/" .. name .. "/reset")
      assert(r.status == 200 or r.status == 409 or r.status == 404, r.body)
    end
    local r = call(env, "POST", "/admin/reload")
    assert.equals(200, r.status, r.body)
  end

  lazy_setup(function()
    env = { origin = h.start_origin { name = "o1" }, pdir = tmpdir() }
    env.port, env.aport, env.dead_port = h.free_port(), h.free_port(), h.free_port()
    write(env.pdir .. "/tagger.lua", TAGGER)
    proxy = h.start_proxy { config = config(env), port = env.port }
    assert(h.wait_until(function() return h.is_listening(env.aport) end),
      "the admin listener did not come up:\n" .. proxy:log())
  end)

  lazy_teardown(function()
    if proxy then proxy:stop() end
    if env.origin then env.origin:stop() end
    os.execute("rm -rf " .. h.quote(env.pdir))
  end)

  after_each(function()
    if proxy and proxy:alive() then restore() end
  end)

  describe("liveness and readiness", function()
    it("answers /healthz with 200 and no token", function()
      local r = call(env, "GET", "/healthz", { token = false })
      assert.equals(200, r.status)
      assert.same({ status = "ok" }, r.json)
      assert.equals("no-store", r.headers["cache-control"])
    end)

    it("answers /readyz with 200 once the first generation is live, no token needed", function()
      local r = call(env, "GET", "/readyz", { token = false })
      assert.equals(200, r.status)
      assert.same({ status = "ready" }, r.json)
    end)
  end)

  describe("the bearer token", function()
    local cases = {
      { why = "no Authorization header", token = false, err = "missing bearer token" },
      { why = "a wrong token", token = "spec-admin-token-WRONG-0000", err = "invalid token" },
      { why = "a prefix of the token", token = TOKEN:sub(1, 20), err = "invalid token" },
      { why = "another scheme", token = false, headers = { { "Authorization", "Basic " .. TOKEN } },
        err = "missing bearer token" },
    }
    for _, case in ipairs(cases) do
      it("refuses " .. case.why .. " with 401 and WWW-Authenticate", function()
        for _, path in ipairs { "/admin/status", "/admin/plugins", "/metrics", "/admin/no-such" } do
          local r = call(env, "GET", path, { token = case.token, headers = case.headers })
          assert.equals(401, r.status, path)
          assert.equals(case.err, r.json.error, path)
          assert.matches('^Bearer realm="sluice%-admin"', r.headers["www-authenticate"])
        end
      end)
    end

    it("accepts the scheme in any case", function()
      local r = call(env, "GET", "/admin/status",
        { token = false, headers = { { "Authorization", "bEaReR " .. TOKEN } } })
      assert.equals(200, r.status, r.body)
    end)

    it("refuses a non-loopback admin listener without a token, with file:line:col", function()
      local path = h.write_tmp(config(env, { admin = "admin:\n  listen: 0.0.0.0:" .. env.aport }))
      for _, args in ipairs { { "-t", "-c", path }, { "-c", path } } do
        local code, out = run_bin(args)
        assert.equals(1, code, out)
        assert.matches(path:gsub("%p", "%%%0") .. ":4:11: admin: a token is required when the "
          .. "admin listener is not on a loopback address %(listen: 0%.0%.0%.0:%d+%)", out)
      end
    end)

    it("refuses a token shorter than 16 characters", function()
      local path = h.write_tmp(config(env,
        { admin = "admin:\n  listen: 127.0.0.1:" .. env.aport .. "\n  token: short" }))
      local code, out = run_bin { "-t", "-c", path }
      assert.equals(1, code, out)
      assert.matches(":5:10: admin.token: expected 16 to 256 characters, got 5", out, 1, true)
    end)

    it("refuses a reload that leaves a non-loopback listener without a token", function()
      write(proxy.config_path, config(env, { admin = "admin:\n  listen: 0.0.0.0:" .. env.aport }))
      local r = call(env, "POST", "/admin/reload")
      assert.equals(500, r.status)
      assert.matches(":4:11: admin: a token is required", r.json.error, 1, true)
      assert.equals(1, #r.json.errors)
      assert.equals(200, get_proxy(env).status)
    end)

    it("serves every endpoint without a token on a loopback listener configured without one",
      function()
        local e2 = { origin = env.origin, pdir = env.pdir, port = h.free_port(),
                     aport = h.free_port(), dead_port = env.dead_port }
        local p2 = h.start_proxy {
          config = config(e2, { admin = "admin:\n  listen: 127.0.0.1:" .. e2.aport }), port = e2.port }
        assert(h.wait_until(function() return h.is_listening(e2.aport) end))
        for _, path in ipairs { "/admin/status", "/admin/plugins", "/admin/generations",
                                "/admin/upstreams", "/metrics" } do
          assert.equals(200, call(e2, "GET", path, { token = false }).status, path)
        end
        p2:stop()
      end)

    it("listens on 127.0.0.1:9901 when admin: is given without settings", function()
      local path = h.write_tmp(config(env, { admin = "admin:" }))
      local code, out = run_bin { "-t", "-c", path }
      assert.equals(0, code, out)
    end)
  end)

  describe("HTTP handling", function()
    it("answers an unknown path with 404 JSON", function()
      local r = call(env, "GET", "/nope")
      assert.equals(404, r.status)
      assert.equals("no such endpoint: /nope", r.json.error)
    end)

    it("answers a wrong method with 405 and Allow", function()
      local r = call(env, "DELETE", "/admin/plugins/headers")
      assert.equals(405, r.status)
      assert.equals("GET, PATCH", r.headers.allow)
      assert.matches("method DELETE not allowed", r.json.error, 1, true)
      r = call(env, "GET", "/admin/reload")
      assert.equals(405, r.status)
      assert.equals("POST", r.headers.allow)
    end)

    it("keeps the connection alive across requests and ignores the query", function()
      local conn = assert(h.connect(env.aport))
      for _, path in ipairs { "/healthz", "/readyz?x=1", "/healthz" } do
        assert(conn:send(h.build_request("GET", path)))
        local r = assert(conn:read_response())
        assert.equals(200, r.status)
      end
      conn:close()
    end)

    it("closes after a request with Connection: close", function()
      local conn = assert(h.connect(env.aport))
      assert(conn:send(h.build_request("GET", "/healthz", { { "Connection", "close" } })))
      local r = assert(conn:read_response())
      assert.equals("close", r.headers.connection)
      assert.is_true(conn:is_closed(2))
      conn:close()
    end)

    it("refuses a body over 64 KiB with 413", function()
      local r = call(env, "POST", "/admin/reload", { body = string.rep(" ", 65537) })
      assert.equals(413, r.status)
      assert.matches("too large", r.json.error)
    end)

    it("refuses header fields over 16 KiB with 431", function()
      local r = call(env, "GET", "/healthz", { headers = { { "X-Big", string.rep("a", 17000) } } })
      assert.equals(431, r.status)
      assert.is_string(r.json.error)
    end)

    local bodies = {
      { why = "malformed JSON", body = '{"enabled": tru}', err = "malformed JSON body: line 1, column 13" },
      { why = "a trailing comma", body = '{"enabled": true,}', err = "malformed JSON body" },
      { why = "a JSON array", body = "[true]", err = "the body must be a JSON object" },
      { why = "an unknown member", body = '{"enabled": true, "x": 1}', err = "unknown member 'x'" },
      { why = "a string for a boolean", body = '{"enabled": "yes"}', err = '{"enabled": true}' },
      { why = "a repeated member", body = '{"enabled": true, "enabled": false}',
        err = "duplicate member 'enabled'" },
      { why = "a lone surrogate escape", body = '{"\\ud800": 1}',
        err = "high surrogate without its low half" },
      { why = "invalid UTF-8", body = '{"\xff": 1}', err = "invalid UTF-8" },
      { why = "text after the value", body = '{} {}', err = "unexpected text after the value" },
      { why = "nesting 60 levels deep", body = string.rep("[", 60) .. string.rep("]", 60),
        err = "nested deeper than 48 levels" },
      { why = "an escaped member name it does not know", body = '{"\\u00e9t\\u00e9": true}',
        err = "unknown member '\xc3\xa9t\xc3\xa9'" },
    }
    for _, case in ipairs(bodies) do
      it("answers " .. case.why .. " in a body with 400", function()
        local r = call(env, "PATCH", "/admin/plugins/headers", { body = case.body })
        assert.equals(400, r.status, r.body)
        assert.matches(case.err, r.json.error, 1, true)
      end)
    end

    it("refuses parameters on the action endpoints", function()
      local r = call(env, "POST", "/admin/plugins/headers/disable", { body = '{"now": true}' })
      assert.equals(400, r.status)
      assert.equals("unknown member 'now' in the body", r.json.error)
    end)
  end)

  describe("GET /admin/status", function()
    it("shows the version, uptime, workers, generation and the last reload", function()
      local before = call(env, "GET", "/admin/status").json
      local rr = call(env, "POST", "/admin/reload", { body = '{"force": true}' })
      assert.equals(200, rr.status)
      local r = call(env, "GET", "/admin/status")
      assert.equals(200, r.status)
      local s = r.json
      assert.matches("^%d+%.%d+%.%d+$", s.version)
      assert.equals(proxy.pid, s.pid)
      assert.is_true(s.uptime_ms >= 0)
      assert.equals(2, s.workers)
      assert.equals(proxy.config_path, s.config)
      assert.equals(rr.json.generation, s.generation)
      assert.equals(before.reloads.ok + 1, s.reloads.ok)
      assert.equals("admin", s.reloads.last.reason)
      assert.is_true(s.reloads.last.ok)
      assert.equals(json.null, s.reloads.last.error)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", s.reloads.last.at)
    end)

    it("counts the Lua VMs and native copies open, made and released", function()
      assert.equals(200, get_proxy(env).status)   -- a worker opens its VM for the plugin
      local s = call(env, "GET", "/admin/status").json
      assert.is_true(s.lua_vms.created >= 1)
      assert.is_true(s.lua_vms.open >= 1)
      assert.equals(s.lua_vms.created - s.lua_vms.closed, s.lua_vms.open)
      -- This configuration has no native plugin.
      assert.same({ open = 0, loaded = 0, unloaded = 0 }, s.native_copies)
    end)
  end)

  describe("GET /admin/plugins", function()
    it("lists every instance with kind, version, phases, scope, source, sha256 and counters",
      function()
        for _ = 1, 3 do assert.equals(200, get_proxy(env).status) end
        local r = call(env, "GET", "/admin/plugins")
        assert.equals(200, r.status)
        local hd = instances(r, "global")[1]
        assert.equals("headers", hd.name)
        assert.equals("lua", hd.kind)
        assert.equals(800, hd.priority)
        assert.same({ "request_headers", "response_headers" }, hd.phases)
        assert.is_true(hd.enabled)
        assert.equals(json.null, hd.override)
        assert.equals(PLUGINS .. "/headers.lua", hd.source)
        assert.equals(sha256_of(PLUGINS .. "/headers.lua"), hd.sha256)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT", hd.loaded_at)
        assert.is_true(hd.stats.phases.response_headers.calls >= 3)
        assert.is_true(hd.stats.calls >= 6)
        assert.equals(0, hd.stats.errors)
        assert.equals(0, hd.stats.budget_kills)
        local tg = instances(r, "routes[1]")[1]
        assert.equals("tagger", tg.name)
        assert.equals("2.1", tg.version)
        assert.same({ path = "/tagged", upstream = "app", host = json.null }, tg.route)
        assert.same({ "response_headers" }, tg.phases)
        assert.equals(sha256_of(env.pdir .. "/tagger.lua"), tg.sha256)
        assert.is_nil(hd.config)
      end)

    it("shows one plugin with its effective config", function()
      local r = call(env, "GET", "/admin/plugins/headers")
      assert.equals(200, r.status)
      assert.equals("headers", r.json.name)
      local inst = r.json.instances[1]
      assert.same({ response = { set = { ["X-Cfg"] = "A" } } }, inst.config)
      assert.equals("fail", inst.on_error)
      assert.equals(50, inst.timeout_ms)
      assert.matches(":14:5$", inst.defined_at)
    end)

    it("answers an unknown plugin with 404 on every plugin endpoint", function()
      for _, c in ipairs {
        { "GET", "/admin/plugins/nope" }, { "POST", "/admin/plugins/nope/enable" },
        { "POST", "/admin/plugins/nope/disable" }, { "POST", "/admin/plugins/nope/reset" },
        { "POST", "/admin/plugins/nope/reload" }, { "PATCH", "/admin/plugins/nope", '{"enabled": false}' },
      } do
        local r = call(env, c[1], c[2], { body = c[3] })
        assert.equals(404, r.status, c[1] .. " " .. c[2])
        assert.equals("no plugin named 'nope' in the running configuration", r.json.error)
      end
    end)
  end)

  describe("switching a plugin", function()
    it("disables and enables it through new generations, 409 when already so", function()
      assert.equals("A", get_proxy(env).headers["x-cfg"])
      local g0 = call(env, "GET", "/admin/status").json.generation
      local r = call(env, "POST", "/admin/plugins/headers/disable")
      assert.equals(200, r.status, r.body)
      assert.is_true(r.json.generation > g0)
      assert.equals("disabled", r.json.override)
      assert.is_false(r.json.instances[1].enabled)
      assert.is_nil(get_proxy(env).headers["x-cfg"])

      r = call(env, "POST", "/admin/plugins/headers/disable")
      assert.equals(409, r.status)
      assert.equals("plugin 'headers' is already disabled", r.json.error)

      r = call(env, "POST", "/admin/plugins/headers/enable")
      assert.equals(200, r.status, r.body)
      -- The file enables it: enabling again needs no override.
      assert.equals(json.null, r.json.override)
      assert.equals("A", get_proxy(env).headers["x-cfg"])
      assert.equals(409, call(env, "POST", "/admin/plugins/headers/enable").status)
    end)

    it("does the same with PATCH {\"enabled\": false}", function()
      local r = call(env, "PATCH", "/admin/plugins/headers", { body = '{"enabled": false}' })
      assert.equals(200, r.status, r.body)
      assert.is_nil(get_proxy(env).headers["x-cfg"])
      r = call(env, "PATCH", "/admin/plugins/headers", { body = '{"enabled": true}' })
      assert.equals(200, r.status, r.body)
      assert.equals("A", get_proxy(env).headers["x-cfg"])
    end)

    it("enables a plugin the file disables, until reset", function()
      write(proxy.config_path, config(env, { headers_enabled = false }))
      assert.equals(200, call(env, "POST", "/admin/reload").status)
      assert.is_nil(get_proxy(env).headers["x-cfg"])
      local r = call(env, "POST", "/admin/plugins/headers/enable")
      assert.equals(200, r.status, r.body)
      assert.equals("enabled", r.json.override)
      assert.equals("A", get_proxy(env).headers["x-cfg"])
      r = call(env, "POST", "/admin/plugins/headers/reset")
      assert.equals(200, r.status, r.body)
      assert.equals(json.null, r.json.override)
      assert.is_nil(get_proxy(env).headers["x-cfg"])
      r = call(env, "POST", "/admin/plugins/headers/reset")
      assert.equals(409, r.status)
      assert.equals("plugin 'headers' has no admin override", r.json.error)
    end)

    it("keeps a disable across SIGHUP reloads until the file changes that plugin's enabled setting",
      function()
        local function reload_by_signal()
          local g0 = call(env, "GET", "/admin/status").json.reloads
          proxy:signal("HUP")
          assert(h.wait_until(function()
            local s = call(env, "GET", "/admin/status").json.reloads
            return s.ok + s.failed + s.unchanged > g0.ok + g0.failed + g0.unchanged
          end), "no reload after SIGHUP:\n" .. proxy:log())
        end
        assert.equals(200, call(env, "POST", "/admin/plugins/headers/disable").status)
        -- Nothing changed: nothing to do.
        reload_by_signal()
        assert.is_nil(get_proxy(env).headers["x-cfg"])
        -- Another setting of the plugin changed: the override holds.
        write(proxy.config_path, config(env, { cfg = "B" }))
        reload_by_signal()
        assert.is_nil(get_proxy(env).headers["x-cfg"])
        assert.equals("disabled", call(env, "GET", "/admin/plugins/headers").json.override)
        -- The file now disables it itself: the override ends...
        write(proxy.config_path, config(env, { cfg = "B", headers_enabled = false }))
        reload_by_signal()
        assert.equals(json.null, call(env, "GET", "/admin/plugins/headers").json.override)
        assert.matches("the admin override of plugin headers %(disabled%) ends", proxy:log())
        -- ... so the file alone decides from now on.
        write(proxy.config_path, config(env, { cfg = "B", headers_enabled = true }))
        reload_by_signal()
        assert.equals("B", get_proxy(env).headers["x-cfg"])
      end)
  end)

  describe("reloading through the admin API", function()
    it("answers the new generation, or unchanged when nothing changed", function()
      local r = call(env, "POST", "/admin/reload")
      assert.equals(200, r.status)
      assert.is_false(r.json.changed)
      local g = r.json.generation
      write(proxy.config_path, config(env, { cfg = "C" }))
      r = call(env, "POST", "/admin/reload")
      assert.equals(200, r.status)
      assert.is_true(r.json.changed)
      assert.is_true(r.json.generation > g)
      assert.equals("C", get_proxy(env).headers["x-cfg"])
    end)

    it("reloads one plugin: a broken one answers 500 with file:line, the old generation serves",
      function()
        local g0 = call(env, "GET", "/admin/status").json.generation
        assert.equals("t1", get_proxy(env, "/tagged").headers["x-tag"])
        write(env.pdir .. "/tagger.lua", BROKEN_TAGGER)
        for _, path in ipairs { "/admin/plugins/tagger/reload", "/admin/reload" } do
          local r = call(env, "POST", path)
          assert.equals(500, r.status, path)
          assert.matches(env.pdir .. "/tagger.lua:6: ", r.json.error, 1, true)
          assert.matches("tagger.lua:6: ", r.json.errors[1], 1, true)
          assert.equals(g0, r.json.generation)
          local resp = get_proxy(env, "/tagged")
          assert.equals("t1", resp.headers["x-tag"])
          assert.equals("A", resp.headers["x-cfg"])
        end
        local s = call(env, "GET", "/admin/status").json
        assert.equals(g0, s.generation)
        assert.is_false(s.reloads.last.ok)
        assert.matches("tagger.lua:6:", s.reloads.last.error, 1, true)
        -- Fixed: the plugin reload goes through.
        write(env.pdir .. "/tagger.lua", TAGGER)
        local r = call(env, "POST", "/admin/plugins/tagger/reload")
        assert.equals(200, r.status, r.body)
        assert.is_true(r.json.generation > g0)
      end)

    it("leaves an override untouched when the reload it needs fails", function()
      write(env.pdir .. "/tagger.lua", BROKEN_TAGGER)
      local r = call(env, "POST", "/admin/plugins/headers/disable")
      assert.equals(500, r.status)
      assert.matches("tagger.lua:6:", r.json.error, 1, true)
      assert.equals(json.null, call(env, "GET", "/admin/plugins/headers").json.override)
      assert.equals("A", get_proxy(env).headers["x-cfg"])
    end)
  end)

  describe("GET /admin/generations", function()
    it("shows a slow request in flight on the old generation after a reload", function()
      local conn = assert(h.connect(env.port))
      assert(conn:send(h.build_request("GET", "/delay/1500")))
      local old = call(env, "GET", "/admin/status").json.generation
      -- Wait until the request is pinned (in flight on the current generation).
      assert(h.wait_until(function()
        for _, g in ipairs(call(env, "GET", "/admin/generations").json.generations) do
          if g.id == old and g.in_flight == 1 then return true end
        end
      end), "the slow request never showed as in flight")
      local r = call(env, "POST", "/admin/reload", { body = '{"force": true}' })
      assert.equals(200, r.status)
      local new = r.json.generation
      local gens = call(env, "GET", "/admin/generations").json.generations
      local by_id = {}
      for _, g in ipairs(gens) do by_id[g.id] = g end
      assert.is_truthy(by_id[old], "old generation missing: " .. json.encode(gens))
      assert.equals(1, by_id[old].in_flight)
      assert.is_false(by_id[old].current)
      assert.is_true(by_id[new].current)
      assert.equals(0, by_id[new].in_flight)
      assert.is_true(by_id[old].age_ms >= by_id[new].age_ms)
      local mods = {}
      for _, m in ipairs(by_id[new].modules) do mods[m.name] = m end
      assert.equals(PLUGINS .. "/headers.lua", mods.headers.source)
      assert.equals("lua", mods.tagger.kind)
      -- The slow request ends on its generation; then that one goes.
      local resp = assert(conn:read_response { timeout = 5 })
      assert.equals(200, resp.status)
      assert.equals("A", resp.headers["x-cfg"])
      conn:close()
      assert(h.wait_until(function()
        local list = call(env, "GET", "/admin/generations").json.generations
        return #list == 1 and list[1].id == new and list[1].in_flight == 0
      end), "the old generation was not released")
    end)
  end)

  describe("GET /admin/upstreams", function()
    it("shows backends with health and pooled connections", function()
      for _ = 1, 3 do assert.equals(200, get_proxy(env).status) end
      assert.equals(502, get_proxy(env, "/dead").status)
      local r = call(env, "GET", "/admin/upstreams")
      assert.equals(200, r.status)
      local ups = {}
      for _, u in ipairs(r.json.upstreams) do ups[u.name] = u end
      local app = ups.app.backends[1]
      assert.equals("127.0.0.1:" .. env.origin.port, app.address)
      assert.equals("up", app.health)
      assert.equals(0, app.cooldown_left_ms)
      assert.is_true(app.idle >= 1, "no idle pooled connection: " .. r.body)
      assert.equals(0, app.active)
      local dead = ups.dead.backends[1]
      assert.equals("cooling_down", dead.health)
      assert.is_true(dead.cooldown_left_ms > 50000)
      assert.equals(0, dead.idle)
    end)
  end)

  describe("GET /metrics", function()
    it("answers the Prometheus text format with the token", function()
      assert.equals(200, get_proxy(env).status)
      local r = call(env, "GET", "/metrics")
      assert.equals(200, r.status)
      assert.equals("text/plain; version=0.0.4; charset=utf-8", r.headers["content-type"])
      local fams = prom.parse(r.body)
      assert.is_true(prom.sum(fams, "sluice_requests_total", {}) >= 1)
    end)
  end)
end)
