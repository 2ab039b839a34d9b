-- A Lua plugin's VM after a memory kill, end to end (docs/PLUGINS.md, "How
-- Lua plugins run"): the worker's VM of the instance is closed and the
-- worker's next call of it runs in a fresh one (the file loaded again, init
-- run again), so a plugin that keeps what it allocates recovers instead of
-- failing every later request on that worker. A timeout keeps the VM. The
-- killed request and the requests in flight on the same VM finish their
-- hooks (log included) in the new VM with an empty ctx; other workers' VMs
-- and other plugins keep theirs; the admin API's lua_vms counts one VM
-- closed and one made per recycle.
--
-- The plugin "hoarder" keeps X-Hoard MiB per request in a module-level
-- table, names its VM (X-VM, drawn when the VM loads the file), counts the
-- requests that VM saw (X-Served), shows its ctx in response_headers
-- (X-Ctx) and logs it in its log hook; X-Spin makes request_headers spin
-- into its timeout. "tally" is another plugin with a module-level counter.
--
-- Run: busted --lua=luajit spec/e2e/lua_vm_recycle_spec.lua
local h = require "spec.helpers"
local json = require "dkjson"

local HOARDER = [[
local sluice = require "sluice"
local req, resp, log = sluice.request, sluice.response, sluice.log
local kept = {}                 -- never released: what fills the VM
local served = 0                -- requests this VM ran request_headers for
local vm = sluice.random.hex(8) -- this VM's name
log.warn("hoarder: VM ", vm, " loaded")
return {
  name = "hoarder", version = "1.0", priority = 20,
  init = function() log.warn("hoarder: init in VM ", vm) end,
  request_headers = function(conf, ctx)
    served = served + 1
    ctx.seen = served
    local mb = tonumber(req.get_header("X-Hoard") or "0")
    if mb > 0 then kept[#kept + 1] = string.rep("x", mb * 1048576 - 64) .. served end
    if req.get_header("X-Spin") then while true do end end
  end,
  response_headers = function(conf, ctx)
    resp.set_header("X-VM", vm)
    resp.set_header("X-Served", tostring(served))
    resp.set_header("X-Ctx", tostring(ctx.seen))
  end,
  log = function(conf, ctx)
    log.warn("hoarder: log hook in VM ", vm, " with ctx.seen=", tostring(ctx.seen))
  end,
}
]]

local TALLY = [[
local sluice = require "sluice"
local n = 0
return {
  name = "tally", version = "1.0", priority = 10,
  response_headers = function() n = n + 1; sluice.response.set_header("X-Tally", tostring(n)) end,
}
]]

local function write(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
end

local function config(env, workers)
  return table.concat({
    "workers: " .. workers,
    "listen: [127.0.0.1:" .. env.port .. "]",
    "admin:",
    "  listen: 127.0.0.1:" .. env.aport,
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. env.origin.port .. "]",
    "plugin_paths: [" .. env.pdir .. "]",
    "plugins:",
    "  - name: hoarder",
    "    memory_limit_mb: 8",
    "    timeout_ms: 50",
    "  - name: tally",
    "",
  }, "\n")
end

local function lua_vms(env)
  local resp = assert(h.get(env.aport, "/admin/status"))
  assert.equals(200, resp.status)
  return assert(json.decode(resp.body)).lua_vms
end

local function count(text, plain)
  local n, from = 0, 1
  while true do
    local s, e = text:find(plain, from, true)
    if not s then return n end
    n, from = n + 1, e + 1
  end
end

local function get(conn, headers, path)
  assert(conn:send(h.build_request("GET", path or "/", headers)))
  return assert(conn:read_response())
end

-- Sends requests keeping 2 MiB each on conn until one is killed (8 MiB
-- limit: the fourth or so). Returns that response and the number of
-- requests sent, after checking that every earlier one ran in the VM
-- named vm.
local function hoard_until_killed(conn, vm)
  for i = 1, 12 do
    local resp = get(conn, { ["X-Hoard"] = "2" })
    if resp.status ~= 200 then return resp, i end
    assert.equals(vm, resp.headers["x-vm"])
  end
  error("no memory kill after 24 MiB kept")
end

local function count_loads(log)
  local n = 0
  for _ in log:gmatch("plugin hoarder: hoarder: VM %x+ loaded") do n = n + 1 end
  return n
end

local RECYCLED = "Lua VM closed after a memory kill"

describe("a Lua plugin's VM after a memory kill", function()
  local env, proxy

  lazy_setup(function()
    env = { origin = h.start_origin { name = "o" } }
    env.pdir = os.tmpname()
    os.remove(env.pdir)
    assert(os.execute("mkdir -p " .. h.quote(env.pdir)))
    write(env.pdir .. "/hoarder.lua", HOARDER)
    write(env.pdir .. "/tally.lua", TALLY)
  end)

  lazy_teardown(function()
    env.origin:stop()
    os.remove(env.pdir .. "/hoarder.lua")
    os.remove(env.pdir .. "/tally.lua")
    os.remove(env.pdir)
  end)

  local function start(workers)
    env.port, env.aport = h.free_port(), h.free_port()
    proxy = h.start_proxy { config = config(env, workers), port = env.port }
    assert(h.wait_until(function() return h.is_listening(env.aport) end),
      "the admin listener did not come up:\n" .. proxy:log())
  end

  after_each(function()
    if proxy then proxy:stop() end
    proxy = nil
  end)

  it("is closed, and the worker's next call runs in a fresh VM that loaded the plugin again", function()
    start(1)
    local conn = assert(h.connect(env.port))
    local first = get(conn)
    assert.equals(200, first.status)
    local vm1, tally = first.headers["x-vm"], tonumber(first.headers["x-tally"])
    local before = lua_vms(env)

    local killed, sent = hoard_until_killed(conn, vm1)
    assert.equals(500, killed.status)
    -- the killed request's response_headers already ran in the new VM,
    -- which never saw its request_headers: an empty ctx
    local vm2 = killed.headers["x-vm"]
    assert.is_truthy(vm2)
    assert.are_not.equals(vm1, vm2)
    assert.equals("0", killed.headers["x-served"])
    assert.equals("nil", killed.headers["x-ctx"])

    -- the next requests are served by that fresh VM, which keeps memory again
    for i = 1, 3 do
      local resp = get(conn, { ["X-Hoard"] = "1" })
      assert.equals(200, resp.status)
      assert.equals(vm2, resp.headers["x-vm"])
      assert.equals(tostring(i), resp.headers["x-served"])
      assert.equals(tostring(i), resp.headers["x-ctx"])
    end
    -- the other plugin kept its VM, and its count
    local resp = get(conn)
    assert.equals(tostring(tally + sent + 4), resp.headers["x-tally"])
    conn:close()

    -- one VM closed and one made: the open count is what it was
    assert(h.wait_until(function() return lua_vms(env).created == before.created + 1 end))
    local after = lua_vms(env)
    assert.equals(before.closed + 1, after.closed)
    assert.equals(before.open, after.open)

    local log = proxy:log()
    assert.equals(1, count(log, RECYCLED))
    assert.matches("plugin hoarder: worker 0: " .. RECYCLED .. " %(%d+%.%d MiB in use%); "
      .. "the next call opens a fresh one", log)
    assert.matches("plugin hoarder: request_headers phase failed %(request %x+%): [^\n]*"
      .. "budget exceeded: memory %(8 MB%)", log)
    -- loaded and initialised again: the load-time check, the first VM, the new one
    assert.equals(3, count_loads(log))
    assert.equals(1, count(log, "VM " .. vm1 .. " loaded"))
    assert.equals(1, count(log, "VM " .. vm2 .. " loaded"))
    assert.equals(1, count(log, "hoarder: init in VM " .. vm1))
    assert.equals(1, count(log, "hoarder: init in VM " .. vm2))
    -- the killed request's log hook ran, in the new VM, with an empty ctx
    assert.equals(1, count(log, "log hook in VM " .. vm2 .. " with ctx.seen=nil"))
  end)

  it("is closed again at each memory kill, logging each once", function()
    start(1)
    local conn = assert(h.connect(env.port))
    local vm = get(conn).headers["x-vm"]
    local before = lua_vms(env)
    for _ = 1, 3 do
      local killed = hoard_until_killed(conn, vm)
      assert.equals(500, killed.status)
      assert.are_not.equals(vm, killed.headers["x-vm"])
      vm = killed.headers["x-vm"]
    end
    conn:close()
    assert(h.wait_until(function() return lua_vms(env).created == before.created + 3 end))
    local after = lua_vms(env)
    assert.equals(before.closed + 3, after.closed)
    assert.equals(before.open, after.open)
    assert.equals(3, count(proxy:log(), RECYCLED))
  end)

  it("is kept after a timeout, which wastes no memory", function()
    start(1)
    local conn = assert(h.connect(env.port))
    local first = get(conn)
    local vm = first.headers["x-vm"]
    local before = lua_vms(env)
    local spun = get(conn, { ["X-Spin"] = "1" })
    assert.equals(500, spun.status)
    assert.equals(vm, spun.headers["x-vm"])
    local resp = get(conn)
    assert.equals(200, resp.status)
    assert.equals(vm, resp.headers["x-vm"])
    assert.equals("3", resp.headers["x-served"])
    conn:close()
    local after = lua_vms(env)
    assert.equals(before.created, after.created)
    assert.equals(before.closed, after.closed)
    local log = proxy:log()
    assert.matches("budget exceeded: timeout %(50 ms%)", log)
    assert.equals(0, count(log, RECYCLED))
  end)

  it("leaves a request in flight on the same worker to finish in the new VM with an empty ctx", function()
    start(1)
    local slow = assert(h.connect(env.port))
    local conn = assert(h.connect(env.port))
    local vm1 = get(conn).headers["x-vm"]
    -- request_headers of the slow request ran in vm1 (ctx.seen = 2) and it
    -- waits for the origin while vm1 is killed and closed
    assert(slow:send(h.build_request("GET", "/delay/1000")))
    h.sleep(0.3)
    local killed = hoard_until_killed(conn, vm1)
    assert.equals(500, killed.status)
    local vm2 = killed.headers["x-vm"]
    assert.are_not.equals(vm1, vm2)

    local resp = assert(slow:read_response())
    assert.equals(200, resp.status)
    assert.equals(vm2, resp.headers["x-vm"])
    assert.equals("nil", resp.headers["x-ctx"])
    slow:close()
    -- the next request on the worker starts a ctx of its own as usual
    resp = get(conn)
    assert.equals(200, resp.status)
    assert.equals(vm2, resp.headers["x-vm"])
    assert.equals("1", resp.headers["x-ctx"])
    conn:close()
    assert(h.wait_until(function()
      return count(proxy:log(), "log hook in VM " .. vm2 .. " with ctx.seen=") == 3
    end))
    local log = proxy:log()
    -- the killed and the slow request: an empty ctx; the last one its own
    assert.equals(2, count(log, "log hook in VM " .. vm2 .. " with ctx.seen=nil"))
    assert.equals(1, count(log, "log hook in VM " .. vm2 .. " with ctx.seen=1"))
    assert.equals(1, count(log, RECYCLED))
  end)

  it("leaves the other workers' VMs alone", function()
    start(2)
    -- two keep-alive connections that landed on different workers
    local a = assert(h.connect(env.port))
    local vm_a = get(a).headers["x-vm"]
    local b, vm_b
    for _ = 1, 32 do
      local c = assert(h.connect(env.port))
      local vm = get(c).headers["x-vm"]
      if vm ~= vm_a then
        b, vm_b = c, vm
        break
      end
      c:close()
    end
    assert(b, "every connection landed on the same worker")
    local served_b = tonumber(get(b).headers["x-served"])

    local killed = hoard_until_killed(a, vm_a)
    assert.equals(500, killed.status)
    assert.are_not.equals(vm_a, killed.headers["x-vm"])
    local resp = get(b)
    assert.equals(200, resp.status)
    assert.equals(vm_b, resp.headers["x-vm"])
    assert.equals(tostring(served_b + 1), resp.headers["x-served"])
    a:close()
    b:close()
    local log = proxy:log()
    assert.equals(1, count(log, RECYCLED))
  end)
end)
