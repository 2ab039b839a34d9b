-- 100 reloads under keep-alive traffic leave memory flat: the proxy
-- alternates between two configurations (origin, headers plugin config)
-- and two versions of a Lua plugin, while two keep-alive connections and a
-- fresh one send requests. Afterwards:
--   - RSS after the 100th reload is within RSS_BOUND_KB of RSS after the
--     10th (allocator pools and LuaJIT's code areas are warm by then);
--   - the SIGUSR1 status line shows at most 1 + workers generations live
--     and at most plugins x workers Lua VMs open (the current generation's);
--   - at exit every generation and every Lua VM was freed.
-- What a leak would cost: a Lua VM holds the plugin host and the sandboxed
-- API, about 360 KiB of RSS (measured by not closing the validation VMs,
-- two per reload: RSS grew by 64 MiB from reload 10 to 100). Leaking one
-- VM per reload adds about 32 MiB over those 90 reloads; a correct build
-- grows by about 0.2 MiB.
--
-- Run: busted --lua=luajit spec/e2e/reload_soak_spec.lua (about 15 s)
local h = require "spec.helpers"
local R = require "spec.e2e.reload_support"

local PLUGINS = os.getenv("PWD") .. "/plugins-lua"
local WORKERS = 2
local NPLUGINS = 2
local RELOADS = 100
-- ASan's quarantine holds freed memory back for a while: its RSS rises
-- until the quarantine is full whatever the proxy does, so the ASan build
-- runs with a small quarantine (below) and a wider bound.
local ASAN = h.bin:find("asan", 1, true) ~= nil
local RSS_BOUND_KB = ASAN and 16 * 1024 or 6 * 1024

local TAGGER = [[
local sluice = require "sluice"
local VERSION = "%s"
return {
  name = "tagger", version = VERSION, priority = 10,
  schema = { type = "record", fields = { { tag = { type = "string", required = true } } } },
  response_headers = function(conf)
    sluice.response.set_header("X-Tag", conf.tag .. "/" .. VERSION)
  end,
}
]]

local function config(env, which)
  local origin = which == "A" and env.a or env.b
  return table.concat({
    "workers: " .. WORKERS,
    "listen: [127.0.0.1:" .. env.port .. "]",
    "log: {level: debug}",
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. origin.port .. "]",
    "plugin_paths: [" .. PLUGINS .. ", " .. env.pdir .. "]",
    "plugins:",
    "  - name: headers",
    "    config: {response: {set: {X-Cfg: " .. which .. "}}}",
    "  - name: tagger",
    "    config: {tag: t" .. which .. "}",
  }, "\n") .. "\n"
end

local VERSION_OF = { A = "v1", B = "v2" }

-- "A" or "B" when the response is consistently one of them.
local function served_by(resp)
  if resp.status ~= 200 then return nil, "status " .. tostring(resp.status) end
  local hd = resp.headers
  for _, which in ipairs { "A", "B" } do
    if hd["x-origin-name"] == which:lower() and hd["x-cfg"] == which
        and hd["x-tag"] == "t" .. which .. "/" .. VERSION_OF[which] then
      return which
    end
  end
  return nil, string.format("inconsistent response: origin %s, X-Cfg %s, X-Tag %s",
    tostring(hd["x-origin-name"]), tostring(hd["x-cfg"]), tostring(hd["x-tag"]))
end

describe("100 reloads under keep-alive traffic", function()
  local env, proxy

  lazy_setup(function()
    env = { a = h.start_origin { name = "a", log = false }, b = h.start_origin { name = "b", log = false } }
    env.pdir = R.tmpdir()
    env.port = h.free_port()
    R.write(env.pdir .. "/tagger.lua", TAGGER:format(VERSION_OF.A))
    local asan_env
    if ASAN then
      local opts = os.getenv("ASAN_OPTIONS")
      asan_env = { ASAN_OPTIONS = (opts and opts .. ":" or "") .. "quarantine_size_mb=4" }
    end
    proxy = h.start_proxy { config = config(env, "A"), port = env.port, env = asan_env }
  end)

  lazy_teardown(function()
    if proxy then proxy:stop() end
    if env.a then env.a:stop() end
    if env.b then env.b:stop() end
    R.rmdir(env.pdir)
  end)

  it("keep RSS flat and release every generation and Lua VM", function()
    local load = R.traffic(env.port, served_by)
    finally(load.close)
    local traffic, settle = load.round, load.settle

    local rss = {}
    for i = 1, RELOADS do
      local which = i % 2 == 1 and "B" or "A"
      local ok0 = R.outcomes(proxy)
      R.write(env.pdir .. "/tagger.lua", TAGGER:format(VERSION_OF[which]))
      R.write(proxy.config_path, config(env, which))
      proxy:signal("HUP")
      traffic()     -- while the reload runs
      assert(h.wait_until(function() return R.outcomes(proxy) > ok0 end, 10),
        "reload " .. i .. " did not complete:\n" .. proxy:log():sub(-3000))
      traffic()
      if i == 10 or i == 55 or i == RELOADS then
        settle()
        rss[i] = R.rss_kb(proxy.pid)
      end
    end

    local st = R.status(proxy)
    print(string.format("\nreload soak (%s): RSS after 10 reloads %d KiB, after 55 %d KiB, "
      .. "after %d %d KiB (growth %d KiB, bound %d KiB); %d requests; status: %d generations live, "
      .. "Lua VMs %d open, %d created, %d closed",
      ASAN and "asan" or "release", rss[10], rss[55], RELOADS, rss[RELOADS],
      rss[RELOADS] - rss[10], RSS_BOUND_KB, load.served, st.live, st.vms_open, st.vms_created,
      st.vms_closed))
    assert.same({ RELOADS, 0 }, { st.ok, st.failed })
    assert.is_true(st.live <= 1 + WORKERS, "generations live: " .. st.live)
    assert.is_true(st.vms_open <= NPLUGINS * WORKERS, "Lua VMs open: " .. st.vms_open)
    -- every reload validated both plugins in throwaway VMs and the workers
    -- opened theirs
    assert.is_true(st.vms_created >= RELOADS * NPLUGINS * 2, "Lua VMs created: " .. st.vms_created)
    assert.is_true(rss[RELOADS] - rss[10] <= RSS_BOUND_KB,
      string.format("RSS grew by %d KiB from reload 10 to %d", rss[RELOADS] - rss[10], RELOADS))

    load.close()
    local code, log = proxy:stop()
    proxy = nil
    assert.equals(0, code)
    local last = assert(R.last_status(log), "no status line at exit")
    assert.same({ 0, 0 }, { last.live, last.vms_open })
    assert.equals(last.vms_created, last.vms_closed)
  end)
end)
