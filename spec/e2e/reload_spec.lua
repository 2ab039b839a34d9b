-- Hot reload end to end: SIGHUP re-reads the configuration file, builds the
-- next generation on the side and publishes it; requests started before
-- keep their generation, keep-alive connections move at their next request,
-- a WebSocket tunnel outlives reloads, upstream keep-alive connections to
-- backends that stay are reused, identical inputs publish nothing, and
-- a broken configuration or plugin changes nothing (each cause: YAML
-- syntax, unknown key, Lua syntax, Lua error while loading, Lua error in
-- init, a config value the plugin's schema refuses).
-- The file watcher is in watch_spec.lua, 100 reloads in reload_soak_spec.lua.
--
-- Two configurations take turns: "A" sends everything to origin a and sets
-- X-Cfg: A on responses (headers plugin), "B" the same with b. A response
-- names its origin in X-Origin-Name, so each one shows which generation
-- served it.
--
-- Run: busted --lua=luajit spec/e2e/reload_spec.lua
local h = require "spec.helpers"
local R = require "spec.e2e.reload_support"

local PLUGINS = os.getenv("PWD") .. "/plugins-lua"
local write, count, outcomes, reload, esc = R.write, R.count, R.outcomes, R.reload, R.esc

-- A plugin of our own in a temp directory, to break its Lua on purpose.
local TAGGER = [[
local sluice = require "sluice"
return {
  name = "tagger", version = "1.0", priority = 10,
  schema = { type = "record", fields = { { tag = { type = "string", required = true } } } },
  response_headers = function(conf)
    sluice.response.set_header("X-Tag", conf.tag)
  end,
}
]]

local function config(env, which, extra)
  local origin = which == "A" and env.a or env.b
  return table.concat({
    "workers: 2",
    "listen: [127.0.0.1:" .. env.port .. "]",
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. origin.port .. "]",
    "plugin_paths: [" .. PLUGINS .. ", " .. env.pdir .. "]",
    "plugins:",
    "  - name: headers",
    "    config: {response: {set: {X-Cfg: " .. which .. "}}}",
    "  - name: tagger",
    "    config: {tag: t" .. which .. "}",
    extra or "",
  }, "\n") .. "\n"
end

local function field(resp, name)
  return resp.headers[name:lower()]
end

-- Which configuration served resp: "A", "B", or an error describing why
-- it is neither (or a mix of both).
local function served_by(resp)
  if resp.status ~= 200 then return nil, "status " .. tostring(resp.status) end
  local origin, cfg, tag = field(resp, "X-Origin-Name"), field(resp, "X-Cfg"), field(resp, "X-Tag")
  if origin == "a" and cfg == "A" and tag == "tA" then return "A" end
  if origin == "b" and cfg == "B" and tag == "tB" then return "B" end
  return nil, string.format("inconsistent response: origin %s, X-Cfg %s, X-Tag %s",
    tostring(origin), tostring(cfg), tostring(tag))
end

local function get_on(conn, path)
  assert(conn:send(h.build_request("GET", path)))
  return conn:read_response()
end

describe("reloading on SIGHUP", function()
  local env, proxy

  lazy_setup(function()
    env = { a = h.start_origin { name = "a" }, b = h.start_origin { name = "b" } }
    env.pdir = os.tmpname()
    os.remove(env.pdir)
    assert(os.execute("mkdir -p " .. h.quote(env.pdir)))
    write(env.pdir .. "/tagger.lua", TAGGER)
  end)

  lazy_teardown(function()
    if env.a then env.a:stop() end
    if env.b then env.b:stop() end
    os.remove(env.pdir .. "/tagger.lua")
    os.remove(env.pdir)
  end)

  before_each(function()
    write(env.pdir .. "/tagger.lua", TAGGER)
    env.port = h.free_port()
    proxy = h.start_proxy { config = config(env, "A"), port = env.port }
  end)

  after_each(function()
    if proxy then proxy:stop() end
    proxy = nil
  end)

  it("serves new requests with the new routes and plugin configuration", function()
    assert.equals("A", assert(served_by(assert(h.get(env.port, "/x")))))
    assert.equals("ok", reload(proxy, config(env, "B")))
    assert.matches("sluice: reloaded configuration " .. proxy.config_path:gsub("%p", "%%%0")
      .. " as generation %d+", proxy:log())
    for _ = 1, 4 do   -- both workers
      assert.equals("B", assert(served_by(assert(h.get(env.port, "/x")))))
    end
  end)

  it("keeps a keep-alive connection open and moves it to the new configuration", function()
    local conn = assert(h.connect(env.port))
    assert.equals("A", assert(served_by(assert(get_on(conn, "/one")))))
    assert.equals("ok", reload(proxy, config(env, "B")))
    local resp = assert(get_on(conn, "/two"))
    assert.equals("B", assert(served_by(resp)))
    assert.is_falsy(resp.closed)
    assert.equals("B", assert(served_by(assert(get_on(conn, "/three")))))
    conn:close()
  end)

  it("keeps the idle upstream connections of a backend the new configuration still has", function()
    local conn = assert(h.connect(env.port))
    assert.equals("A", assert(served_by(assert(get_on(conn, "/one")))))
    local opened = env.a:connections(1)
    assert.equals("ok", reload(proxy, config(env, "A", "log: {level: debug}")))
    -- the same client connection stays on its worker, whose pool for
    -- 127.0.0.1:a is keyed by address and outlives the generation
    for _, path in ipairs { "/two", "/three" } do
      assert.equals("A", assert(served_by(assert(get_on(conn, path)))))
    end
    assert.equals(opened, env.a:connections())
    conn:close()
  end)

  it("finishes a slow request started before the reload on the old configuration", function()
    local conn = assert(h.connect(env.port))
    assert(conn:send(h.build_request("GET", "/delay/1500")))
    h.sleep(0.3)    -- the request is at the origin
    assert.equals("ok", reload(proxy, config(env, "B")))
    assert.equals("B", assert(served_by(assert(h.get(env.port, "/x")))))
    local resp = assert(conn:read_response { timeout = 5 })
    assert.equals("A", assert(served_by(resp)))
    -- the same connection's next request is on the new one
    assert.equals("B", assert(served_by(assert(get_on(conn, "/after")))))
    conn:close()
  end)

  describe("with a broken configuration keeps the running one", function()
    local function expect_kept(pattern)
      assert.equals("failed", reload(proxy, nil))
      local log = proxy:log()
      assert.matches(pattern, log)
      assert.matches("sluice: reload failed: %d+ errors?; keeping generation %d+", log)
      for _ = 1, 4 do
        assert.equals("A", assert(served_by(assert(h.get(env.port, "/x")))))
      end
      -- and a good configuration still loads afterwards
      write(env.pdir .. "/tagger.lua", TAGGER)
      assert.equals("ok", reload(proxy, config(env, "B")))
      assert.equals("B", assert(served_by(assert(h.get(env.port, "/x")))))
    end

    it("on a YAML syntax error, naming file, line and column", function()
      write(proxy.config_path, config(env, "A") .. "routes: [unclosed\n")
      expect_kept("%[error%] " .. esc(proxy.config_path) .. ":%d+:%d+: ")
    end)

    it("on an unknown key, naming file, line and column", function()
      write(proxy.config_path, config(env, "A", "colour: blue"))
      expect_kept("%[error%] " .. esc(proxy.config_path) .. ":12:1: unknown key 'colour'")
    end)

    it("on a Lua plugin with a syntax error, naming file and line", function()
      write(env.pdir .. "/tagger.lua", TAGGER:gsub("conf%.tag%)", "conf.tag"))
      expect_kept("%[error%] [^\n]*" .. esc(env.pdir .. "/tagger.lua") .. ":7: ")
    end)

    it("on a Lua error while the plugin file runs, naming file and line", function()
      write(env.pdir .. "/tagger.lua", TAGGER:gsub("return {", "error(\"no tagging today\")\nreturn {"))
      expect_kept("%[error%] [^\n]*" .. esc(env.pdir .. "/tagger.lua")
        .. ":2: no tagging today %(while loading%)")
    end)

    it("on a Lua error in the plugin's init, naming file and line", function()
      write(env.pdir .. "/tagger.lua", TAGGER:gsub("priority = 10,",
        "priority = 10,\n  init = function(conf) error(\"refusing \" .. conf.tag) end,"))
      expect_kept("%[error%] [^\n]*" .. esc(env.pdir .. "/tagger.lua")
        .. ":4: refusing tA %(in init%)")
    end)

    it("on a config value the plugin's schema refuses, naming file, line and column", function()
      write(proxy.config_path, config(env, "A"):gsub("tag: tA", "tag: 5"))
      expect_kept("%[error%] " .. esc(proxy.config_path)
        .. ":11:%d+: plugin tagger: config%.tag: expected a string, got 5")
    end)

    it("and counts the failure in the status line", function()
      write(proxy.config_path, config(env, "A", "colour: blue"))
      assert.equals("failed", reload(proxy, nil))
      local st = R.status(proxy)
      assert.same({ 0, 1, 0 }, { st.ok, st.failed, st.unchanged })
      assert.equals("A", assert(served_by(assert(h.get(env.port, "/x")))))
    end)
  end)

  describe("with nothing changed", function()
    it("publishes nothing and says so, until the configuration or a plugin changes", function()
      local g0 = R.status(proxy).generation
      -- the same bytes rewritten: files touched, content the same
      write(proxy.config_path, config(env, "A"))
      write(env.pdir .. "/tagger.lua", TAGGER)
      assert.equals("unchanged", reload(proxy, nil))
      assert.matches("%[info%] sluice: SIGHUP: " .. esc(proxy.config_path)
        .. " and its plugins are unchanged; keeping generation " .. g0, proxy:log())
      assert.equals(0, count(proxy:log(), "sluice: SIGHUP: reloading "))
      local st = R.status(proxy)
      assert.same({ g0, 0, 0, 1 }, { st.generation, st.ok, st.failed, st.unchanged })
      assert.equals("A", assert(served_by(assert(h.get(env.port, "/x")))))

      -- a plugin file alone changes: that is a reload
      write(env.pdir .. "/tagger.lua", TAGGER:gsub("conf%.tag%)", "conf.tag .. \"!\")"))
      assert.equals("ok", reload(proxy, nil))
      local resp = assert(h.get(env.port, "/x"))
      assert.equals("tA!", field(resp, "X-Tag"))
      assert.is_true(R.status(proxy).generation > g0)
    end)

    it("reloads when a plugin of the same name would now be found earlier in plugin_paths", function()
      -- tagger comes from env.pdir, the second path; a tagger.lua in the
      -- first one takes precedence from the next reload on
      local dir = R.tmpdir()
      finally(function() R.rmdir(dir) end)
      write(dir .. "/tagger.lua", TAGGER)
      local cfg = config(env, "A"):gsub("plugin_paths: %[", "plugin_paths: [" .. dir .. ", ")
      assert.equals("ok", reload(proxy, cfg))
      write(dir .. "/other.lua", "return nil")     -- noise
      assert.equals("unchanged", reload(proxy, nil))
      os.remove(dir .. "/tagger.lua")               -- found in env.pdir again
      assert.equals("ok", reload(proxy, nil))
      assert.equals("A", assert(served_by(assert(h.get(env.port, "/x")))))
    end)
  end)

  it("keeps a WebSocket tunnel open across reloads and retires its generation when it closes", function()
    assert.equals("ok", reload(proxy, config(env, "A", "log: {level: debug}")))
    local g0 = R.status(proxy).generation
    h.sleep(1.2)    -- both workers adopt g0 (a request or their tick)
    local ws = assert(h.connect(env.port))
    finally(function() ws:close() end)
    assert(ws:send(h.build_request("GET", "/ws", {
      { "Connection", "Upgrade" }, { "Upgrade", "websocket" },
      { "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==" }, { "Sec-WebSocket-Version", "13" },
    })))
    local resp = assert(ws:read_response())
    assert.equals(101, resp.status)
    local function echo(payload)
      assert(ws:send(payload))
      local got = {}
      while #table.concat(got) < #payload do
        got[#got + 1] = assert(ws:read_some())
      end
      assert.equals(payload, table.concat(got))
    end
    echo("before")
    for i = 1, 4 do
      local which = i % 2 == 1 and "B" or "A"
      assert.equals("ok", reload(proxy, config(env, which, "log: {level: debug}")))
      assert.equals(which, assert(served_by(assert(h.get(env.port, "/x")))))
      echo("after reload " .. i .. " " .. string.rep("x", 1000 * i))
    end
    -- every worker's tick has adopted the newest generation by now; only
    -- the tunnel's worker still holds g0, for the tunnel
    h.sleep(1.5)
    local released = "generation " .. g0 .. " released"
    assert.equals(1, count(proxy:log(), released))
    echo("still here")
    ws:close()
    assert(h.wait_until(function() return count(proxy:log(), released) == 2 end, 5),
      "generation " .. g0 .. " was not released on both workers:\n" .. proxy:log())
    local st = R.status(proxy)
    assert.is_true(st.live <= 1 + 2, "live generations: " .. st.live)
  end)

  it("survives 20 reloads between two configurations under keep-alive traffic", function()
    local conns = { assert(h.connect(env.port)), assert(h.connect(env.port)) }
    local seen, total = { A = 0, B = 0 }, 0
    local function traffic(n)
      for i = 1, n do
        local c = conns[i % #conns + 1]
        local resp, err = get_on(c, "/loop/" .. i)
        assert(resp, "request failed: " .. tostring(err))
        local which, why = served_by(resp)
        assert(which, why)
        assert.is_falsy(resp.closed)
        seen[which] = seen[which] + 1
        total = total + 1
      end
      -- a fresh connection too
      local which, why = served_by(assert(h.get(env.port, "/fresh")))
      assert(which, why)
    end
    for i = 1, 20 do
      local which = i % 2 == 1 and "B" or "A"
      local ok0 = outcomes(proxy)
      write(proxy.config_path, config(env, which))
      proxy:signal("HUP")
      traffic(10)   -- while the reload is under way
      assert(h.wait_until(function() return outcomes(proxy) > ok0 end, 10), "reload " .. i)
      traffic(4)
      -- after the reload, every new request is on the new configuration
      assert.equals(which, assert(served_by(assert(get_on(conns[1], "/now")))))
    end
    local ok, bad = outcomes(proxy)
    assert.equals(20, ok)
    assert.equals(0, bad)
    assert.is_true(seen.A > 0 and seen.B > 0)
    for _, c in ipairs(conns) do c:close() end
  end)
end)
