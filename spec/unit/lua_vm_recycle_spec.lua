-- spec/unit/lua_vm_recycle_spec.lua: a Lua plugin's VM after a memory kill,
-- through the plugin harness (the real lua_plugin.c, one worker): the VM
-- is closed and the next call runs in a fresh one, with the plugin's
-- module-level state as on first use; a timeout keeps the VM; a request
-- whose ctx was in the closed VM finishes with an empty one and ends
-- cleanly. End to end, with the log line and the admin counts:
-- spec/e2e/lua_vm_recycle_spec.lua.

local harness = require "spec.plugin_harness"

-- served counts the requests this VM saw; X-Hoard keeps 2 MiB per request
-- in a module-level table, X-Spin spins into the timeout.
local SOURCE = [[
local sluice = require "sluice"
local req, kv = sluice.request, sluice.ctx
local kept, served = {}, 0
return {
  name = "hoarder", version = "1", priority = 1,
  request_headers = function(conf, ctx)
    served = served + 1
    ctx.seen = served
    kv.set("served", tostring(served))
    if req.get_header("X-Spin") then while true do end end
    if req.get_header("X-Hoard") then kept[#kept + 1] = string.rep("x", 2097088) .. served end
  end,
  response_headers = function(conf, ctx)
    kv.set("ctx_seen", tostring(ctx.seen))
  end,
}
]]

local PLAIN = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
local HOARD = "GET / HTTP/1.1\r\nHost: a\r\nX-Hoard: 1\r\n\r\n"
local SPIN = "GET / HTTP/1.1\r\nHost: a\r\nX-Spin: 1\r\n\r\n"

describe("a Lua plugin's VM after a memory kill", function()
  local p

  setup(function()
    harness.log_level("error")      -- the recycle's warning is expected
  end)

  teardown(function()
    harness.log_level("warn")
  end)

  before_each(function()
    p = assert(harness.load_source("hoarder", SOURCE, nil, { memory_limit_mb = 8, timeout_ms = 50 }))
  end)

  after_each(function()
    p:free()
  end)

  -- request_headers on a new request: its action, message, budget and the
  -- request.
  local function call(raw)
    local req = assert(harness.request(raw))
    local action, err, budget = p:call("request_headers", req)
    return action, err, budget, req
  end

  it("is replaced by a fresh one, which starts the plugin's state over", function()
    local action, err, budget
    local n = 0
    repeat
      n = n + 1
      assert(n <= 12, "no memory kill after 24 MiB kept")
      local req
      action, err, budget, req = call(HOARD)
      if action == "continue" then assert.equal(tostring(n), req:ctx("served")) end
      req:free()
    until action ~= "continue"
    assert.equal("error", action)
    assert.is_true(budget)
    assert.matches("budget exceeded: memory %(8 MB%)", err)
    -- without the recycle, what the plugin kept would kill every call from here
    for i = 1, 3 do
      local a, _, _, req = call(HOARD)
      assert.equal("continue", a)
      assert.equal(tostring(i), req:ctx("served"))
      req:free()
    end
  end)

  it("is kept after a timeout", function()
    local _, _, _, req = call(PLAIN)
    req:free()
    local action, err, budget
    action, err, budget, req = call(SPIN)
    assert.equal("error", action)
    assert.is_true(budget)
    assert.matches("budget exceeded: timeout %(50 ms%)", err)
    req:free()
    action, _, _, req = call(PLAIN)
    assert.equal("continue", action)
    assert.equal("3", req:ctx("served"))
    req:free()
  end)

  it("gives a request whose ctx was in the closed VM an empty ctx, and ends it cleanly", function()
    local action, _, _, early = call(PLAIN)
    assert.equal("continue", action)
    local killed
    repeat
      local req
      action, _, _, req = call(HOARD)
      if action == "continue" then req:free() else killed = req end
    until action ~= "continue"
    -- both requests' later hooks run in the new VM, which never saw them
    for _, req in ipairs { early, killed } do
      req:respond_from_origin(200, { ["Content-Length"] = "0" })
      assert.equal("continue", p:call("response_headers", req))
      assert.equal("nil", req:ctx("ctx_seen"))
    end
    early:free()
    killed:free()
    -- and a new request gets a ctx of its own there
    local req
    action, _, _, req = call(PLAIN)
    assert.equal("continue", action)
    assert.equal("1", req:ctx("served"))
    req:respond_from_origin(200, { ["Content-Length"] = "0" })
    assert.equal("continue", p:call("response_headers", req))
    assert.equal("1", req:ctx("ctx_seen"))
    req:free()
  end)
end)
