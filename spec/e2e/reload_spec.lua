-- Hot reload end to end: SIGHUP re-reads the configuration file, builds the
-- next generation on the side and publishes it; requests started before
-- keep their generation, keep-alive connections move at their next request,
-- and a broken configuration changes nothing.
--
-- Two configurations take turns: "A" sends everything to origin a and sets
-- X-Cfg: A on responses (headers plugin), "B" the same with b. A response
-- names its origin in X-Origin-Name, so each one shows which generation
-- served it.
--
-- Run: busted --lua=luajit spec/e2e/reload_spec.lua
local h = require "spec.helpers"

local PLUGINS = os.getenv("PWD") .. "/plugins-lua"

local function write(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
end

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

local function count(text, plain)
  local n, i = 0, 1
  while true do
    local s, e = text:find(plain, i, true)
    if not s then return n end
    n, i = n + 1, e + 1
  end
end

local function outcomes(proxy)
  local log = proxy:log()
  return count(log, "sluice: reloaded configuration "), count(log, "sluice: reload failed: ")
end

-- Rewrites the proxy's configuration file, sends SIGHUP and waits for the
-- outcome; returns "ok" or "failed".
local function reload(proxy, content)
  local ok0, bad0 = outcomes(proxy)
  if content then write(proxy.config_path, content) end
  proxy:signal("HUP")
  local res = h.wait_until(function()
    local ok, bad = outcomes(proxy)
    if ok > ok0 then return "ok" end
    if bad > bad0 then return "failed" end
  end, 10)
  assert(res, "no reload outcome in the log:\n" .. proxy:log())
  return res
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

    local function esc(s) return (s:gsub("%p", "%%%0")) end

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
