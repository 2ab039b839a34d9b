-- spec/unit/lua_api_ffi_spec.lua: small parts of the Lua plugin API through
-- the real FFI and C (spec/plugin_harness.lua, build/libsluice.so):
-- sluice.random, sluice.request.get_header(name, index) and get_route().
-- Their Lua-side argument checks are in spec/unit/lua_api_spec.lua too.
--
-- Run: busted --lua=luajit spec/unit/lua_api_ffi_spec.lua

if package.path:sub(1, 10) ~= "lua/?.lua;" then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
end

local harness = require "spec.plugin_harness"
local json = require "sluice.json"

-- A plugin whose request_headers runs body and answers 200 with its
-- results as a JSON array (nil as null, cdata flagged).
local function plugin(body)
  local src = [[
local sluice = require "sluice"
local function pack(...)
  local t = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if v == nil then v = sluice.null elseif type(v) == "cdata" then v = "cdata!" end
    t[i] = v
  end
  return t
end
local function run() ]] .. body .. [[ end
return {
  name = "api-user", version = "1", priority = 1,
  request_headers = function()
    return sluice.response.exit(200, sluice.json.encode(pack(run())))
  end,
}
]]
  return assert(harness.load_source("api-user", src))
end

local function run(p, raw)
  local req = assert(harness.request(raw or "GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
  local action, err = p:call("request_headers", req)
  if action ~= "respond" then error(err or action, 2) end
  local _, _, body = req:reply()
  req:free()
  return json.decode(body)
end

describe("sluice.random", function()
  it("gives the bytes asked for, different each time", function()
    local r = run(plugin([[
      local a, b = sluice.random.bytes(16), sluice.random.bytes(16)
      local big = sluice.random.bytes(100000)
      return #a, #b, a ~= b, sluice.random.bytes(0), #big, #sluice.random.bytes(200)
    ]]))
    assert.same({ 16, 16, true, "", 100000, 200 }, r)
  end)

  it("gives hex digits, two per byte, every digit showing up", function()
    local r = run(plugin([[
      local h = sluice.random.hex(4096)
      local seen = 0
      for d in ("0123456789abcdef"):gmatch(".") do
        if h:find(d, 1, true) then seen = seen + 1 end
      end
      return #h, h:find("^[0-9a-f]+$") ~= nil, seen, #sluice.random.hex(16), sluice.random.hex(0)
    ]]))
    assert.same({ 8192, true, 16, 32, "" }, r)
  end)

  it("makes version 4 UUIDs, all different", function()
    local r = run(plugin([[
      local seen, dup = {}, false
      local pattern = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
      local all_ok = true
      for _ = 1, 2000 do
        local u = sluice.random.uuid()
        if seen[u] then dup = true end
        seen[u] = true
        if not u:find(pattern) or u:lower() ~= u then all_ok = false end
      end
      return all_ok, dup
    ]]))
    assert.same({ true, false }, r)
  end)

  local bad = { "-1", "1.5", "'3'", "nil", "1048577" }
  for _, arg in ipairs(bad) do
    it("raises at the plugin's line for bytes(" .. arg .. ")", function()
      local p = plugin("return sluice.random.bytes(" .. arg .. ")")
      local ok, err = pcall(run, p)
      assert.is_false(ok)
      assert.truthy(err:find("sluice.random.bytes: bad argument #1 (an integer from 0 to 1048576",
                             1, true), err)
      assert.truthy(err:find("api-user.lua:", 1, true), err)
    end)
  end
end)

describe("sluice.request", function()
  it("get_header(name, index) reads the n-th value of a repeated field", function()
    local p = plugin([[
      local g = sluice.request.get_header
      return g("x-multi"), g("X-Multi", 1), g("x-multi", 2), g("x-multi", 3), g("host", 1)
    ]])
    local r = run(p, "GET / HTTP/1.1\r\nHost: a\r\nX-Multi: one\r\nx-multi: two\r\n\r\n")
    assert.same({ "one", "one", "two", json.null, "a" }, r)
  end)

  it("set_header and add_header keep the order, check every value, and check a name until C accepted it", function()
    -- The first writes append to the parsed head's spare slots, a later
    -- replace copies the list; names C accepted skip their token check,
    -- values never do.
    local p = assert(harness.load_source("hdr-user", [[
local req = require("sluice").request
return {
  name = "hdr-user", version = "1", priority = 1,
  request_headers = function()
    for i = 1, 3 do
      if pcall(req.set_header, "Bad Name", "x") then error("a bad name passed") end
      req.set_header("X-New", "v" .. i)
      if pcall(req.set_header, "X-New", "a\r\nb") then error("a bad value passed") end
      if pcall(req.add_header, "X-New", "a\0b") then error("a bad value passed") end
      req.add_header("X-Add", i)
    end
    req.set_header("x-multi", "set")
  end,
}
]]))
    local req = assert(harness.request(
      "GET / HTTP/1.1\r\nHost: a\r\nX-Multi: one\r\nAccept: */*\r\nx-multi: two\r\n\r\n"))
    assert.equal("continue", p:call("request_headers", req))
    assert.same({ { "Host", "a" }, { "Accept", "*/*" }, { "X-Add", "1" }, { "X-Add", "2" },
                  { "X-New", "v3" }, { "X-Add", "3" }, { "x-multi", "set" } }, req:headers())
    local head = req:upstream_head()
    assert.truthy(head:find("\r\nX-New: v3\r\n", 1, true), head)
    assert.falsy(head:find("one", 1, true), head)
    req:free()
  end)

  it("get_route() names the matched route: its path and any host", function()
    -- the harness's requests run on a catch-all route for any host
    local r = run(plugin([[ return sluice.request.get_route() ]]))
    assert.same({ "/", json.null }, r)
  end)
end)
