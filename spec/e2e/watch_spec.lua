-- The file watcher (watch: true): a saved plugin or configuration file is
-- live within about a second without a signal, whichever way the editor
-- saves it (in place, rename-on-save, delete and recreate); a burst of
-- writes makes one reload; a broken save keeps the running version; other
-- files in the watched directories are ignored; turning watch off (or on)
-- by a reload takes effect; a directory that disappears and comes back is
-- watched again.
--
-- The plugin "tagger" sets X-Ver to its VERSION and X-Tag to its config's
-- tag; "nested" (nested/handler.lua) sets X-Nested.
--
-- Run: busted --lua=luajit spec/e2e/watch_spec.lua
local h = require "spec.helpers"
local R = require "spec.e2e.reload_support"

local write, count = R.write, R.count

local TAGGER = [[
local sluice = require "sluice"
local VERSION = "%s"
return {
  name = "tagger", version = "1.0", priority = 10,
  schema = { type = "record", fields = { { tag = { type = "string", default = "-" } } } },
  response_headers = function(conf)
    sluice.response.set_header("X-Ver", VERSION)
    sluice.response.set_header("X-Tag", conf.tag)
  end,
}
]]

local NESTED = [[
local sluice = require "sluice"
return {
  name = "nested", version = "1.0", priority = 5,
  response_headers = function()
    sluice.response.set_header("X-Nested", "%s")
  end,
}
]]

local function config(env, opts)
  opts = opts or {}
  local paths = { env.pdir }
  if opts.extra_dir then table.insert(paths, 1, opts.extra_dir) end
  local lines = {
    "workers: 2",
    "listen: [127.0.0.1:" .. env.port .. "]",
    "watch: " .. tostring(opts.watch ~= false),
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. env.origin.port .. "]",
    "plugin_paths: [" .. table.concat(paths, ", ") .. "]",
    "plugins:",
    "  - name: tagger",
    "    config: {tag: " .. (opts.tag or "A") .. "}",
    "  - nested",
  }
  if opts.extra then lines[#lines + 1] = "  - " .. opts.extra end
  return table.concat(lines, "\n") .. "\n"
end

local function headers(port)
  local resp = assert(h.get(port, "/x"))
  assert.equals(200, resp.status)
  return resp.headers
end

-- Waits until a response carries `value` in header `name`; returns the
-- seconds it took, or fails with the log.
local function wait_served(proxy, name, value, timeout)
  local t0 = h.now()
  local ok = h.wait_until(function() return headers(proxy.port)[name] == value end, timeout or 5)
  assert(ok, name .. " never became " .. value .. "; log:\n" .. proxy:log())
  return h.now() - t0
end

local function reloads(proxy)
  return count(proxy:log(), "sluice: watch: reloading ")
end

describe("the file watcher", function()
  local env, proxy

  lazy_setup(function()
    env = { origin = h.start_origin { name = "o", log = false } }
  end)

  lazy_teardown(function()
    if env.origin then env.origin:stop() end
  end)

  before_each(function()
    env.pdir = R.tmpdir()
    assert(os.execute("mkdir " .. h.quote(env.pdir .. "/nested")))
    write(env.pdir .. "/tagger.lua", TAGGER:format("v1"))
    write(env.pdir .. "/nested/handler.lua", NESTED:format("n1"))
    env.port = h.free_port()
    proxy = h.start_proxy { config = config(env), port = env.port }
    assert(proxy:wait_log("sluice: watch: watching %d+ directories"), proxy:log())
    assert.equals("v1", headers(env.port)["x-ver"])
  end)

  after_each(function()
    if proxy then proxy:stop() end
    proxy = nil
    R.rmdir(env.pdir)
  end)

  it("applies a Lua plugin saved in place within about a second, with one reload", function()
    write(env.pdir .. "/tagger.lua", TAGGER:format("v2"))
    local took = wait_served(proxy, "x-ver", "v2")
    assert.is_true(took < 1.5, "took " .. took .. " s")
    h.sleep(0.5)
    assert.equals(1, reloads(proxy))
    assert.equals(1, (R.outcomes(proxy)))
    assert.matches("sluice: watch: " .. R.esc(env.pdir) .. "/tagger%.lua changed", proxy:log())
  end)

  it("applies a rename-on-save (a temporary file renamed over the plugin)", function()
    local tmp = env.pdir .. "/.tagger.lua.swx"
    write(tmp, TAGGER:format("v3"))
    assert(os.rename(tmp, env.pdir .. "/tagger.lua"))
    assert.is_true(wait_served(proxy, "x-ver", "v3") < 1.5)
    h.sleep(0.5)
    assert.same({ 1, 0, 0 }, { R.outcomes(proxy) })
  end)

  it("applies a plugin deleted and written again", function()
    os.remove(env.pdir .. "/tagger.lua")
    h.sleep(0.05)
    write(env.pdir .. "/tagger.lua", TAGGER:format("v4"))
    assert.is_true(wait_served(proxy, "x-ver", "v4") < 1.5)
    h.sleep(0.5)
    assert.same({ 1, 0, 0 }, { R.outcomes(proxy) })
  end)

  it("applies an edit of a plugin in its own directory (NAME/handler.lua)", function()
    write(env.pdir .. "/nested/handler.lua", NESTED:format("n2"))
    assert.is_true(wait_served(proxy, "x-nested", "n2") < 1.5)
  end)

  it("applies a change to the configuration file", function()
    write(proxy.config_path, config(env, { tag = "B" }))
    assert.is_true(wait_served(proxy, "x-tag", "B") < 1.5)
    assert.equals(1, reloads(proxy))
  end)

  it("makes one reload of a burst of 20 writes in 100 ms", function()
    for i = 1, 20 do
      write(env.pdir .. "/tagger.lua", TAGGER:format("burst" .. i))
      h.sleep(0.005)
    end
    wait_served(proxy, "x-ver", "burst20")
    h.sleep(0.6)
    assert.equals(1, reloads(proxy))
    assert.same({ 1, 0, 0 }, { R.outcomes(proxy) })
  end)

  it("keeps the running version on a broken save and applies the next good one", function()
    write(env.pdir .. "/tagger.lua", TAGGER:format("v5"):gsub("conf%.tag%)", "conf.tag"))
    assert(h.wait_until(function() return select(2, R.outcomes(proxy)) == 1 end),
      "no failed reload:\n" .. proxy:log())
    assert.matches("%[error%] [^\n]*" .. R.esc(env.pdir .. "/tagger.lua") .. ":9: ", proxy:log())
    for _ = 1, 4 do assert.equals("v1", headers(env.port)["x-ver"]) end
    write(env.pdir .. "/tagger.lua", TAGGER:format("v5"))
    wait_served(proxy, "x-ver", "v5")
    assert.same({ 1, 1, 0 }, { R.outcomes(proxy) })
  end)

  it("ignores other files in the watched directories", function()
    write(env.pdir .. "/notes.txt", "x")
    write(env.pdir .. "/tagger.lua~", "backup")
    write(env.pdir .. "/.tagger.lua.swp", "swap")
    write(env.pdir .. "/nested/README", "x")
    write(proxy.config_path .. ".bak", "x")
    finally(function() os.remove(proxy.config_path .. ".bak") end)
    h.sleep(0.8)
    assert.equals(0, reloads(proxy))
  end)

  it("stops when a reload turns watch off and starts again when one turns it on", function()
    write(proxy.config_path, config(env, { watch = false, tag = "off" }))
    wait_served(proxy, "x-tag", "off")
    assert(proxy:wait_log("sluice: watch: off"))
    write(env.pdir .. "/tagger.lua", TAGGER:format("v6"))
    h.sleep(0.8)
    assert.equals("v1", headers(env.port)["x-ver"])
    assert.equals(1, reloads(proxy))
    -- SIGHUP still works, and turns it back on
    assert.equals("ok", R.reload(proxy, config(env, { tag = "on" })))
    assert.equals("v6", headers(env.port)["x-ver"])
    assert(h.wait_until(function()
      return count(proxy:log(), "sluice: watch: watching ") >= 2
    end), proxy:log())
    write(env.pdir .. "/tagger.lua", TAGGER:format("v7"))
    wait_served(proxy, "x-ver", "v7")
  end)

  it("follows a plugin directory the new configuration adds, even when that reload fails", function()
    local dir = R.tmpdir()
    finally(function() R.rmdir(dir) end)
    write(dir .. "/extra.lua", "return {")     -- broken
    write(proxy.config_path, config(env, { extra_dir = dir, extra = "extra" }))
    assert(h.wait_until(function() return select(2, R.outcomes(proxy)) == 1 end),
      "no failed reload:\n" .. proxy:log())
    assert(h.wait_until(function() return proxy:log():find(dir, 1, true) ~= nil
      and proxy:log():match("watching %d+ directories[^\n]*" .. R.esc(dir)) end), proxy:log())
    write(dir .. "/extra.lua", [[
local sluice = require "sluice"
return { name = "extra", version = "1.0", priority = 1,
  response_headers = function() sluice.response.set_header("X-Extra", "yes") end }
]])
    wait_served(proxy, "x-extra", "yes")
  end)

  it("watches a plugin directory again after it was removed and created anew", function()
    R.rmdir(env.pdir)
    h.sleep(0.6)    -- the watcher sees it go; the reload it makes fails
    assert(os.execute("mkdir -p " .. h.quote(env.pdir .. "/nested")))
    write(env.pdir .. "/nested/handler.lua", NESTED:format("n1"))
    write(env.pdir .. "/tagger.lua", TAGGER:format("v8"))
    wait_served(proxy, "x-ver", "v8", 4)
    write(env.pdir .. "/tagger.lua", TAGGER:format("v9"))
    wait_served(proxy, "x-ver", "v9")
  end)

  it("stops cleanly on SIGTERM", function()
    write(env.pdir .. "/tagger.lua", TAGGER:format("v10"))
    wait_served(proxy, "x-ver", "v10")
    local code, log = proxy:stop()
    proxy = nil
    assert.equals(0, code)
    assert.matches("sluice: stopped", log)
  end)
end)
