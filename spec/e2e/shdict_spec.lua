-- Shared dictionaries across reloads, end to end: a plugin counts requests
-- in a dict (answering each with the count), and SIGHUP reloads a changed
-- configuration. A dict declared again keeps its contents (the count goes
-- on, also through a size change); one no generation declares any more is
-- freed, so declaring it later starts it empty; a reload that fails
-- changes nothing. Then `sluice -t` on bad shared_dicts sections, each
-- error with its file:line:col.
--
-- Run: busted --lua=luajit spec/e2e/shdict_spec.lua
local h = require "spec.helpers"
local R = require "spec.e2e.reload_support"

local write, reload = R.write, R.reload

local COUNTER = [[
local sluice = require "sluice"
local d
return {
  name = "counter", version = "1", priority = 1,
  schema = { type = "record", fields = {
    { dict = { type = "string", default = "counts" } },
    { tag = { type = "string", default = "" } },
  } },
  init = function(conf) d = sluice.shared.dict(conf.dict) end,
  request_headers = function()
    return sluice.response.exit(200, tostring(d:incr("requests", 1, 0)))
  end,
}
]]

-- The configuration: two workers, the counter plugin on dict `counts` of
-- `size` (nil: no shared_dicts and no counter, so nothing declares it).
-- tag changes the text, so that a reload is not "unchanged".
local function config(env, size, tag)
  local lines = {
    "workers: 2",
    "listen: [127.0.0.1:" .. env.port .. "]",
    "log: {level: debug}",
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. env.origin.port .. "]",
    "plugin_paths: [" .. env.pdir .. "]",
  }
  if size then
    lines[#lines + 1] = "shared_dicts:"
    lines[#lines + 1] = "  counts: {size: " .. size .. "}"
    lines[#lines + 1] = "plugins:"
    lines[#lines + 1] = "  - name: counter"
    lines[#lines + 1] = "    config: {tag: \"" .. (tag or "") .. "\"}"
  end
  return table.concat(lines, "\n") .. "\n"
end

local function count(env)
  local resp = assert(h.get(env.port, "/"))
  assert.equal(200, resp.status)
  return tonumber(resp.body)
end

describe("shared dicts across reloads", function()
  local env = {}
  local proxy

  lazy_setup(function()
    env.origin = h.start_origin()
    env.pdir = R.tmpdir()
    write(env.pdir .. "/counter.lua", COUNTER)
  end)

  lazy_teardown(function()
    if env.origin then env.origin:stop() end
    R.rmdir(env.pdir)
  end)

  before_each(function()
    env.port = h.free_port()
    proxy = h.start_proxy { config = config(env, "1m"), port = env.port }
  end)

  after_each(function()
    if proxy then proxy:stop() end
    proxy = nil
  end)

  it("keeps counting through SIGHUP", function()
    for i = 1, 6 do assert.equal(i, count(env)) end
    assert.equal("ok", reload(proxy, config(env, "1m", "second")))
    -- new connections: both workers, on the new generation
    for i = 7, 12 do assert.equal(i, count(env)) end
    assert.equal("ok", reload(proxy, config(env, "1m", "third")))
    assert.equal(13, count(env))
  end)

  it("keeps the contents through a size change, and says so", function()
    for i = 1, 3 do assert.equal(i, count(env)) end
    assert.equal("ok", reload(proxy, config(env, "2m")))
    assert.matches("%[warn%] shared dict counts: size 1m %-> 2m: resized, contents kept",
                   proxy:log())
    assert.equal(4, count(env))
  end)

  it("frees a dict nothing declares, so declaring it again starts it empty", function()
    for i = 1, 3 do assert.equal(i, count(env)) end
    assert.equal("ok", reload(proxy, config(env, nil)))
    -- each worker lets its old generation go at its next request or tick
    assert(h.get(env.port, "/"))
    assert.truthy(proxy:wait_log("shared dict counts: freed", 10), proxy:log())
    assert.equal("ok", reload(proxy, config(env, "1m")))
    assert.equal(1, count(env))
  end)

  it("keeps counting when a reload fails", function()
    for i = 1, 2 do assert.equal(i, count(env)) end
    -- the counter names a dict that is not declared: its init raises
    local bad = config(env, "1m", "x"):gsub('{tag: "x"}', '{dict: nope}')
    assert.equal("failed", reload(proxy, bad))
    assert.matches("no shared dict named 'nope'", proxy:log())
    assert.equal(3, count(env))
  end)
end)

describe("shared_dicts in the configuration", function()
  local BASE = "listen: [127.0.0.1:8080]\nupstreams:\n  app:\n    backends: [127.0.0.1:9001]\n"

  -- `sluice -t` on BASE plus section; returns the exit code and the output.
  local function check(section)
    local path = h.write_tmp(BASE .. section)
    local code, out = h.run(h.quote(h.bin) .. " -t -c " .. h.quote(path))
    return code, out:gsub(path:gsub("%p", "%%%0"), "FILE")
  end

  it("accepts sizes with suffixes", function()
    local code, out = check("shared_dicts:\n  a: {size: 8k}\n  b-2: {size: 10m}\n  c_3:\n    size: 1g\n")
    assert.equal(0, code, out)
  end)

  local bad = {
    { "a size out of range", "shared_dicts:\n  a: {size: 1k}\n",
      "FILE:6:13: shared_dicts.a.size: expected a size in 8k..64g, got '1k'" },
    { "a size that is not one", "shared_dicts:\n  a: {size: big}\n",
      "FILE:6:13: shared_dicts.a.size: expected a size, got 'big'" },
    { "no size", "shared_dicts:\n  a: {}\n",
      "FILE:6:6: shared_dicts.a: missing required key 'size'" },
    { "a size alone", "shared_dicts:\n  a: 10m\n",
      "FILE:6:6: shared_dicts.a: expected a mapping, got '10m'" },
    { "an unknown key", "shared_dicts:\n  a: {size: 10m, ttl: 5}\n",
      "FILE:6:18: unknown key 'ttl' in shared_dicts.a" },
    { "the same name twice", "shared_dicts:\n  a: {size: 10m}\n  a: {size: 20m}\n",
      "FILE:7:3: duplicate key 'a' in shared_dicts" },
    { "a bad name", "shared_dicts:\n  a.b: {size: 10m}\n",
      "FILE:6:3: shared_dicts: invalid shared dict name 'a.b'" },
    { "a list", "shared_dicts: [a]\n",
      "FILE:5:15: shared_dicts: expected a mapping" },
  }
  for _, c in ipairs(bad) do
    it("refuses " .. c[1] .. ", naming file, line and column", function()
      local code, out = check(c[2])
      assert.equal(1, code, out)
      assert.truthy(out:find(c[3], 1, true), out)
    end)
  end
end)
