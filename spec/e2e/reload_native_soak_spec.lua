-- 100 reloads of a native plugin under keep-alive traffic release every
-- private copy: the proxy alternates between two builds of the native
-- plugin "vtag" (fixtures-native/vtag-1.so and vtag-2.so, one source), two
-- versions of a Lua plugin and two configurations, while two keep-alive
-- connections and a fresh one send requests. Afterwards, once the retired
-- generations are gone:
--   - the SIGUSR1 status line shows one native copy open (the current
--     generation's), and every copy loaded but that one unloaded, where
--     "unloaded" means dlclose really unmapped it (plugin_native.c checks
--     with RTLD_NOLOAD);
--   - /proc/PID/maps lists one copy, the current content's, and no unlinked
--     ("(deleted)") one; the copy directory holds that one file;
--   - RSS after the 100th reload is within RSS_BOUND_KB of RSS after the
--     10th, as in reload_soak_spec.lua;
--   - at exit every copy was unloaded and the copy directory is gone.
-- A copy that is never closed keeps its mappings (4 LOAD segments for this
-- small plugin, a few pages of RSS) and its file: the counts catch it long
-- before RSS would.
--
-- Run: busted --lua=luajit spec/e2e/reload_native_soak_spec.lua (about 20 s)
local h = require "spec.helpers"
local R = require "spec.e2e.reload_support"

local FIX = R.fixtures_native()
local WORKERS = 2
local RELOADS = 100
local ASAN = h.bin:find("asan", 1, true) ~= nil
local RSS_BOUND_KB = ASAN and 16 * 1024 or 6 * 1024
local VERSION = { A = 1, B = 2 }

local LTAG = [[
local sluice = require "sluice"
local VERSION = "v%d"
return {
  name = "ltag", version = VERSION, priority = 10,
  schema = { type = "record", fields = { { tag = { type = "string", required = true } } } },
  response_headers = function(conf)
    sluice.response.set_header("X-Lua", VERSION)
    sluice.response.set_header("X-Lua-Tag", conf.tag)
  end,
}
]]

local function config(env, which)
  return table.concat({
    "workers: " .. WORKERS,
    "listen: [127.0.0.1:" .. env.port .. "]",
    "log: {level: debug}",
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. env.origin.port .. "]",
    "plugin_paths: [" .. env.pdir .. "]",
    "plugins:",
    "  - name: vtag",
    "    config: {tag: " .. which .. "}",
    "  - name: ltag",
    "    config: {tag: " .. which .. "}",
  }, "\n") .. "\n"
end

local function served_by(resp)
  if resp.status ~= 200 then return nil, "status " .. tostring(resp.status) end
  local hd = resp.headers
  for which, v in pairs(VERSION) do
    if hd["x-native"] == "v" .. v and hd["x-lua"] == "v" .. v and hd["x-native-tag"] == which
        and hd["x-lua-tag"] == which then
      return which
    end
  end
  return nil, string.format("inconsistent response: X-Native %s, X-Native-Tag %s, X-Lua %s, "
    .. "X-Lua-Tag %s", tostring(hd["x-native"]), tostring(hd["x-native-tag"]),
    tostring(hd["x-lua"]), tostring(hd["x-lua-tag"]))
end

local function files_in(dir)
  local code, out = h.run("ls -A " .. h.quote(dir))
  if code ~= 0 then return nil end
  local names = {}
  for name in out:gmatch("[^\n]+") do names[#names + 1] = name end
  return names
end

describe("100 reloads of a native plugin under keep-alive traffic", function()
  local env, proxy

  lazy_setup(function()
    env = { origin = h.start_origin { name = "o", log = false } }
    env.pdir, env.rundir = R.tmpdir(), R.tmpdir()
    env.port = h.free_port()
    R.install(FIX .. "/vtag-1.so", env.pdir .. "/vtag.so")
    R.write(env.pdir .. "/ltag.lua", LTAG:format(1))
    -- the copies go to a directory of the spec's own ($XDG_RUNTIME_DIR wins)
    local penv = { XDG_RUNTIME_DIR = env.rundir }
    if ASAN then
      local opts = os.getenv("ASAN_OPTIONS")
      penv.ASAN_OPTIONS = (opts and opts .. ":" or "") .. "quarantine_size_mb=4"
    end
    proxy = h.start_proxy { config = config(env, "A"), port = env.port, env = penv }
  end)

  lazy_teardown(function()
    if proxy then proxy:stop() end
    if env.origin then env.origin:stop() end
    R.rmdir(env.pdir)
    R.rmdir(env.rundir)
  end)

  it("release every private copy and keep RSS flat", function()
    local dirs = assert(files_in(env.rundir))
    assert.equals(1, #dirs)
    assert.matches("^sluice%-" .. proxy.pid .. "%-%w+$", dirs[1])
    local copy_dir = env.rundir .. "/" .. dirs[1]
    local sha = { A = R.sha256(FIX .. "/vtag-1.so"), B = R.sha256(FIX .. "/vtag-2.so") }
    local load = R.traffic(env.port, served_by)
    finally(load.close)
    local traffic, settle = load.round, load.settle

    local rss, peak_copies = {}, 0
    local which
    for i = 1, RELOADS do
      which = i % 2 == 1 and "B" or "A"
      local ok0 = R.outcomes(proxy)
      R.install(FIX .. "/vtag-" .. VERSION[which] .. ".so", env.pdir .. "/vtag.so")
      R.write(env.pdir .. "/ltag.lua", LTAG:format(VERSION[which]))
      R.write(proxy.config_path, config(env, which))
      proxy:signal("HUP")
      traffic()     -- while the reload runs
      assert(h.wait_until(function() return R.outcomes(proxy) > ok0 end, 10),
        "reload " .. i .. " did not complete:\n" .. proxy:log():sub(-3000))
      traffic()
      peak_copies = math.max(peak_copies, #assert(files_in(copy_dir)))
      if i == 10 or i == 55 or i == RELOADS then
        settle()
        rss[i] = R.rss_kb(proxy.pid)
      end
    end

    local st = R.status(proxy)
    local nmapped, mapped = R.mapped(proxy.pid, copy_dir)
    local files = assert(files_in(copy_dir))
    local log = proxy:log()
    print(string.format("\nnative reload soak (%s): RSS after 10 reloads %d KiB, after 55 %d KiB, "
      .. "after %d %d KiB (growth %d KiB, bound %d KiB); %d requests; native copies open %d, "
      .. "loaded %d, unloaded %d (at most %d files at once); %d generations live",
      ASAN and "asan" or "release", rss[10], rss[55], RELOADS, rss[RELOADS],
      rss[RELOADS] - rss[10], RSS_BOUND_KB, load.served, st.native_open, st.native_loaded,
      st.native_unloaded, peak_copies, st.live))
    assert.same({ RELOADS, 0 }, { st.ok, st.failed })
    assert.is_true(st.live <= 1 + WORKERS, "generations live: " .. st.live)
    -- one copy open, the current one; all others closed and unmapped
    assert.equals(1, st.native_open)
    assert.equals(st.native_loaded - 1, st.native_unloaded)
    -- each of the two contents was loaded afresh at least once after the
    -- first, so copies really were dropped and loaded again
    assert.is_true(st.native_loaded >= 3, "native copies loaded: " .. st.native_loaded)
    -- (the first copy loads at start, before the debug level applies)
    assert.equals(st.native_loaded - 1, R.count(log, ".so: loaded\n"))
    assert.equals(st.native_unloaded, R.count(log, ".so: unloaded\n"))
    assert.same({ copy_dir .. "/" .. sha[which] .. ".so" }, mapped)
    assert.equals(1, nmapped)
    assert.same({ sha[which] .. ".so" }, files)
    assert.is_true(rss[RELOADS] - rss[10] <= RSS_BOUND_KB,
      string.format("RSS grew by %d KiB from reload 10 to %d", rss[RELOADS] - rss[10], RELOADS))

    load.close()
    local code, text = proxy:stop()
    proxy = nil
    assert.equals(0, code)
    local last = assert(R.last_status(text), "no status line at exit")
    assert.same({ 0, 0 }, { last.live, last.native_open })
    assert.equals(last.native_loaded, last.native_unloaded)
    assert.is_nil(files_in(copy_dir), "the copy directory outlived the process")
  end)
end)
