-- spec/unit/lua_api_spec.lua: the Lua plugin API (lua/sluice/) without a
-- proxy: sluice.json, the request/response/ctx/log/time modules over a fake
-- ffi module (a table-backed request standing in for src/lua_ffi.c), and
-- the per-VM dispatcher sluice.plugin_host loading plugin text into the
-- real sandbox and budgets.
--
-- The FFI-backed harness (the core built as a shared library, real
-- requests) comes with it; this file checks the Lua side's own logic.

if package.path:sub(1, 10) ~= "lua/?.lua;" then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
end

-- The fake request the fake C functions act on; reset before each test.
local R

local OK, NOT_FOUND, EINVAL, ENOMEM, EPHASE, ENOREQ = 0, 1, -1, -2, -3, -100

local function new_request()
  return {
    active = true,
    method = "GET", path = "/a/b", query = "x=1&y=a+b%21&flag&x=2&e=",
    client = "192.0.2.7", id = "000000000000002a",
    headers = {
      [0] = { { "Host", "example.com" }, { "X-Multi", "1" }, { "x-multi", "2" }, { "Accept", "*/*" } },
      [1] = { { "Content-Type", "text/plain" } },
    },
    closed = {},             -- side -> true: EPHASE on writes
    status = 200,
    kv = {},
    logs = {},
    log_level = 3,
    force = nil,             -- a return code every write gets
    bodies = { [0] = "request body", [1] = "response body" },
  }
end

local function lower(s) return s:lower() end

-- The fields of side called name (any case), as { name, value } pairs.
local function fields(side, name)
  local t = {}
  for _, h in ipairs(R.headers[side]) do
    if h[1]:lower() == name:lower() then t[#t + 1] = h end
  end
  return t
end
local function is_token(s) return s:find("^[%w!#$%%&'*+%-.^_`|~]+$") ~= nil end
local function is_value(s) return not s:find("[%z\r\n]") end

local function out(pp, pn, s)
  pp[0] = s
  pn[0] = #s
  return OK
end

local C = {}
local function req_getter(field)
  return function(pp, pn)
    if not R.active then return ENOREQ end
    return out(pp, pn, R[field])
  end
end
C.sl_ffi_method = req_getter("method")
C.sl_ffi_path = req_getter("path")
C.sl_ffi_query = req_getter("query")
C.sl_ffi_client_addr = req_getter("client")
C.sl_ffi_request_id = req_getter("id")
local function req_setter(field, valid)
  return function(p, n)
    if not R.active then return ENOREQ end
    if R.force then return R.force end
    if R.closed[0] then return EPHASE end
    local s = p:sub(1, n)
    if not valid(s) then return EINVAL end
    R[field] = s
    return OK
  end
end
C.sl_ffi_set_method = req_setter("method", is_token)
C.sl_ffi_set_path = req_setter("path", function(s) return s:find("^/[!-~]*$") and not s:find("[?#]") end)
C.sl_ffi_set_query = req_setter("query", function(s) return not s:find("[%s#%c]") end)

function C.sl_ffi_header_get(side, name, nlen, index, pp, pn)
  if not R.active then return ENOREQ end
  local seen = 0
  for _, h in ipairs(R.headers[side]) do
    if lower(h[1]) == lower(name) then
      if seen == index then return out(pp, pn, h[2]) end
      seen = seen + 1
    end
  end
  return NOT_FOUND
end
function C.sl_ffi_header_count(side)
  if not R.active then return ENOREQ end
  return #R.headers[side]
end
function C.sl_ffi_header_at(side, i, pn1, nn, pv, nv)
  if not R.active then return ENOREQ end
  local h = R.headers[side][i + 1]
  if not h then return NOT_FOUND end
  out(pn1, nn, h[1])
  return out(pv, nv, h[2])
end
local function header_write(side, name, value)
  if not R.active then return ENOREQ end
  if R.force then return R.force end
  if R.closed[side] then return EPHASE end
  if not is_token(name) or (value and not is_value(value)) then return EINVAL end
  return nil
end
local function remove(side, name)
  local l, n = R.headers[side], 0
  for i = #l, 1, -1 do
    if lower(l[i][1]) == lower(name) then
      table.remove(l, i)
      n = n + 1
    end
  end
  return n
end
function C.sl_ffi_header_set(side, name, nlen, value, vlen)
  local rc = header_write(side, name, value)
  if rc then return rc end
  remove(side, name)
  table.insert(R.headers[side], { name, value })
  return OK
end
function C.sl_ffi_header_add(side, name, nlen, value, vlen)
  local rc = header_write(side, name, value)
  if rc then return rc end
  table.insert(R.headers[side], { name, value })
  return OK
end
-- The *_known forms skip the name's token check in C (the API calls them
-- for names C accepted before); the fake checks every name anyway.
C.sl_ffi_header_set_known = C.sl_ffi_header_set
C.sl_ffi_header_add_known = C.sl_ffi_header_add
function C.sl_ffi_header_remove(side, name, nlen)
  local rc = header_write(side, name, nil)
  if rc then return rc end
  return remove(side, name) > 0 and OK or NOT_FOUND
end
function C.sl_ffi_status()
  if not R.active then return ENOREQ end
  return R.local_status or R.status
end
function C.sl_ffi_set_status(st)
  if not R.active then return ENOREQ end
  R.status = st
  return OK
end
function C.sl_ffi_respond(st, body, len)
  if not R.active then return ENOREQ end
  if R.force then return R.force end
  R.local_status, R.local_body = st, body:sub(1, len)
  return OK
end
function C.sl_ffi_body_get(side, pp, pn)
  if not R.active then return ENOREQ end
  return out(pp, pn, R.bodies[side])
end
function C.sl_ffi_body_set(side, p, n)
  if not R.active then return ENOREQ end
  R.bodies[side] = p:sub(1, n)
  return OK
end
function C.sl_ffi_ctx_get(key, klen, pp, pn)
  if not R.active then return ENOREQ end
  local v = R.kv[key]
  if v == nil then return NOT_FOUND end
  return out(pp, pn, v)
end
function C.sl_ffi_ctx_set(key, klen, value, vlen)
  if not R.active then return ENOREQ end
  if value == nil then
    if R.kv[key] == nil then return NOT_FOUND end
    R.kv[key] = nil
    return OK
  end
  R.kv[key] = value:sub(1, vlen)
  return OK
end
function C.sl_ffi_log(level, plugin, msg, len)
  R.logs[#R.logs + 1] = { level = level, plugin = plugin, msg = msg:sub(1, len) }
  return OK
end
function C.sl_ffi_log_enabled(level)
  return level <= R.log_level and 1 or 0
end
function C.sl_ffi_now_ms()
  return 1700000000123
end
function C.sl_ffi_route(ph, hn, pp, pn)
  if not R.active then return ENOREQ end
  if not R.route then return NOT_FOUND end
  ph[0], hn[0] = R.route.host, R.route.host and #R.route.host or 0
  return out(pp, pn, R.route.path)
end
-- No dict is declared here (spec/unit/shdict_spec.lua has real ones).
function C.sl_ffi_shdict_open()
  return nil
end

local fake_ffi = {
  cdef = function() end,
  C = C,
  new = function() return {} end,
  string = function(p, n) return p:sub(1, tonumber(n)) end,
}

-- Loads the API afresh over the fake ffi (the host keeps one plugin per
-- VM in module state, so each plugin needs fresh modules).
local function fresh()
  for k in pairs(package.loaded) do
    if k == "sluice" or k:find("^sluice%.") then package.loaded[k] = nil end
  end
  package.loaded.ffi = fake_ffi
  local api = require "sluice"
  return api, require "sluice.base", require "sluice.plugin_host"
end

-- The sandbox hardens the string metatable of the whole Lua state; give
-- busted its own back when this file is done.
local string_mt = debug.getmetatable("")
local saved_index, saved_protect = string_mt.__index, string_mt.__metatable

describe("the Lua plugin API", function()
  local api, base
  local saved_ffi = package.loaded.ffi

  before_each(function()
    R = new_request()
    api, base = fresh()
  end)

  teardown(function()
    for k in pairs(package.loaded) do
      if k == "sluice" or k:find("^sluice%.") then package.loaded[k] = nil end
    end
    package.loaded.ffi = saved_ffi
    string_mt.__index, string_mt.__metatable = saved_index, saved_protect
  end)

  -- Runs fn as if a hook of phase were running.
  local function in_phase(phase, fn, ...)
    base.phase = base[phase:upper()]
    local ok, a, b = pcall(fn, ...)
    base.phase = nil
    if not ok then error(a, 0) end
    return a, b
  end

  describe("sluice.json", function()
    local json
    before_each(function() json = api.json end)

    local encodes = {
      { "a string with escapes", "a\"b\\c\n\1", [["a\"b\\c\n\u0001"]] },
      { "an integer", 42, "42" },
      { "a negative float", -1.5, "-1.5" },
      { "a big integer", 2 ^ 53, "9007199254740992" },
      { "true", true, "true" },
      { "null", nil, "null" },
      { "json.null", "NULL", "null" },
      { "an array", { 1, "a", false }, '[1,"a",false]' },
      { "an empty table as an object", {}, "{}" },
      { "a marked empty array", "ARRAY", "[]" },
      { "empty_array", "EMPTY", "[]" },
      { "an object", { a = 1 }, [[{"a":1}]] },
      { "nested", { a = { b = { 1, 2 } } }, '{"a":{"b":[1,2]}}' },
      { "a sparse array as an object", { [1] = "a", [3] = "c" }, nil },
      { "utf-8 as is", "é", [["é"]] },
    }
    for _, c in ipairs(encodes) do
      it("encodes " .. c[1], function()
        local v = c[2]
        if v == "NULL" then v = json.null elseif v == "ARRAY" then v = json.array({})
        elseif v == "EMPTY" then v = json.empty_array end
        local s = assert(json.encode(v))
        if c[3] then
          assert.equal(c[3], s)
        else
          assert.same(v, (json.decode(s)) and { [1] = "a", [3] = "c" })
          assert.truthy(s:find('"1":"a"', 1, true))
        end
      end)
    end

    it("refuses what JSON cannot hold, returning nil and a message", function()
      local cycle = {}
      cycle.self = cycle
      for _, v in ipairs({ 0 / 0, math.huge, { f = print }, cycle, { [true] = 1 } }) do
        local s, err = json.encode(v)
        assert.is_nil(s)
        assert.is_string(err)
      end
    end)

    local decodes = {
      { "an object", [[ {"a": [1, 2.5, -3e2], "b": {"c": null}, "d": true} ]],
        { a = { 1, 2.5, -300 }, b = { c = "NULL" }, d = true } },
      { "escapes", [["\"\\\/\b\f\n\r\t\u00e9\u20ac"]], "\"\\/\b\f\n\r\té€" },
      { "a surrogate pair", [["\ud83d\ude00"]], "😀" },
      { "a lone surrogate as U+FFFD", [["\ud83d"]], "\239\191\189" },
      { "an empty array", "[]", {} },
      { "zero", "0", 0 },
    }
    for _, c in ipairs(decodes) do
      it("decodes " .. c[1], function()
        local v = json.decode(c[2])
        if type(c[3]) == "table" and c[3].b then c[3].b.c = json.null end
        assert.same(c[3], v)
      end)
    end

    it("keeps a decoded empty array an array", function()
      assert.equal("[]", json.encode(json.decode("[]")))
      assert.equal([[{"a":[]}]], json.encode(json.decode([[{"a":[]}]])))
    end)

    local bad = {
      { "trailing text", "1 2", "trailing characters" },
      { "a leading zero", "01", "leading zero" },
      { "a bare fraction", "1.", "bad number" },
      { "an unfinished string", [["abc]], "unfinished string" },
      { "a raw newline in a string", "\"a\nb\"", "control character" },
      { "a missing comma", "[1 2]", "expected ',' or ']'" },
      { "a bad key", "{1:2}", "expected a string key" },
      { "a bad escape", [["\x"]], "bad escape" },
      { "nothing", "", "unexpected end" },
      { "a bad literal", "tru", "unexpected character" },
    }
    for _, c in ipairs(bad) do
      it("returns nil and a message for " .. c[1], function()
        local v, err = json.decode(c[2])
        assert.is_nil(v)
        assert.truthy(err:find(c[3], 1, true), err)
      end)
    end

    it("limits nesting", function()
      local deep = string.rep("[", 101) .. string.rep("]", 101)
      local v, err = json.decode(deep)
      assert.is_nil(v)
      assert.truthy(err:find("nested deeper than 100", 1, true))
      assert.is_table(json.decode(deep, 200))
    end)

    it("raises on misuse", function()
      assert.has_error(function() json.decode(5) end)
      assert.has_error(function() json.array("x") end)
    end)
  end)

  describe("sluice.request", function()
    it("reads the request line and the client", function()
      in_phase("request_headers", function()
        assert.equal("GET", api.request.get_method())
        assert.equal("/a/b", api.request.get_path())
        assert.equal("x=1&y=a+b%21&flag&x=2&e=", api.request.get_raw_query())
        assert.equal("192.0.2.7", api.request.get_client_ip())
        assert.equal("000000000000002a", api.request.get_id())
      end)
    end)

    it("decodes single query arguments", function()
      in_phase("request_headers", function()
        assert.equal("1", api.request.get_query_arg("x"))
        assert.equal("a b!", api.request.get_query_arg("y"))
        assert.equal(true, api.request.get_query_arg("flag"))
        assert.equal("", api.request.get_query_arg("e"))
        assert.is_nil(api.request.get_query_arg("nope"))
      end)
    end)

    it("decodes all query arguments, repeated ones as arrays", function()
      local q = in_phase("request_headers", api.request.get_query)
      assert.same({ x = { "1", "2" }, y = "a b!", flag = true, e = "" }, q)
      local q2, truncated = in_phase("request_headers", api.request.get_query, 2)
      assert.same({ x = "1", y = "a b!" }, q2)
      assert.equal("truncated", truncated)
    end)

    it("reads headers case-insensitively", function()
      in_phase("log", function()
        assert.equal("example.com", api.request.get_header("host"))
        assert.equal("1", api.request.get_header("X-MULTI"))
        assert.is_nil(api.request.get_header("x-none"))
        local h = api.request.get_headers()
        assert.same({ "1", "2" }, h["x-multi"])
        assert.equal("*/*", h.Accept)
        local h2, truncated = api.request.get_headers(2)
        assert.equal("example.com", h2.host)
        assert.equal("1", h2["x-multi"])
        assert.equal("truncated", truncated)
      end)
    end)

    it("reads the n-th value of a repeated header", function()
      in_phase("log", function()
        assert.equal("1", api.request.get_header("x-multi", 1))
        assert.equal("2", api.request.get_header("X-Multi", 2))
        assert.is_nil(api.request.get_header("x-multi", 3))
        assert.equal("example.com", api.request.get_header("host", 1))
      end)
      for _, bad in ipairs({ 0, -1, 1.5, "2" }) do
        assert.has_error(function()
          in_phase("log", api.request.get_header, "x-multi", bad)
        end)
      end
    end)

    it("names the matched route", function()
      R.route = { path = "/api", host = "*.example.com" }
      assert.same({ "/api", "*.example.com" }, { in_phase("log", api.request.get_route) })
      R.route = { path = "/" }
      assert.same({ "/" }, { in_phase("log", api.request.get_route) })
      R.route = nil
      assert.is_nil(in_phase("log", api.request.get_route))
    end)

    it("writes headers, one field per array item", function()
      in_phase("request_headers", function()
        assert.is_true(api.request.set_header("X-Multi", "3"))
        assert.is_true(api.request.add_header("X-Multi", 4))
        assert.is_true(api.request.set_header("X-List", { "a", "b" }))
        assert.is_true(api.request.clear_header("Accept"))
        assert.is_true(api.request.clear_header("Not-There"))
      end)
      assert.same({ { "Host", "example.com" }, { "X-Multi", "3" }, { "X-Multi", "4" },
                    { "X-List", "a" }, { "X-List", "b" } }, R.headers[0])
    end)

    it("rewrites the path, the method and the query", function()
      in_phase("request_headers", function()
        api.request.set_path("/new")
        api.request.set_method("POST")
        api.request.set_query({ b = "x y", a = { "1", "2" }, flag = true, off = false })
      end)
      assert.equal("/new", R.path)
      assert.equal("POST", R.method)
      assert.equal("a=1&a=2&b=x%20y&flag", R.query)
      in_phase("request_headers", api.request.set_query, "raw=1")
      assert.equal("raw=1", R.query)
    end)

    it("raises on misuse, naming the function", function()
      local cases = {
        { "request_headers", api.request.set_header, { 1, "v" }, "bad argument #1 %(string expected, got number%)" },
        { "request_headers", api.request.set_header, { "X", {} }, "bad argument #2" },
        { "request_headers", api.request.set_header, { "X", { "a", {} } }, "item 2 is a table" },
        { "request_headers", api.request.set_header, { "X", "a\r\nb" }, "invalid header name or value" },
        { "request_headers", api.request.set_header, { "bad name", "v" }, "invalid header name or value" },
        { "request_headers", api.request.set_path, { "no-slash" }, "invalid path" },
        { "request_headers", api.request.get_header, { nil }, "string expected, got nil" },
        { "request_headers", api.request.get_headers, { 0 }, "positive integer expected" },
        { "log", api.request.set_header, { "X", "v" }, "not available in the log phase" },
        { "response_headers", api.request.set_path, { "/x" }, "not available in the response_headers phase" },
        { "request_headers", api.request.set_query, { { [1] = "x" } }, "argument names must be strings" },
        { "request_headers", api.request.get_body, {}, "must declare body = { request = true }" },
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(in_phase, c[1], c[2], unpack(c[3]))
        assert.is_false(ok)
        assert.truthy(tostring(err):find(c[4]), tostring(err) .. " !~ " .. c[4])
        assert.truthy(tostring(err):find("sluice.request.", 1, true), tostring(err))
      end
    end)

    it("raises outside a hook", function()
      assert.has_error(function() api.request.get_method() end,
                       "sluice.request.get_method: not available outside a plugin hook")
    end)

    it("reports what the core refuses in this phase", function()
      R.closed[0] = true
      local ok, err = pcall(in_phase, "balancer", api.request.set_header, "X", "v")
      assert.is_false(ok)
      assert.truthy(err:find("not available in the balancer phase", 1, true))
    end)

    it("returns nil and a message when the core runs out of memory", function()
      R.force = ENOMEM
      local ok, err = in_phase("request_headers", api.request.set_header, "X", "v")
      assert.is_nil(ok)
      assert.equal("out of memory", err)
    end)

    it("reads and replaces the body when the plugin declared it", function()
      base.body_request = true
      assert.equal("request body", in_phase("request_body", api.request.get_body))
      in_phase("request_body", api.request.set_body, "new")
      assert.equal("new", R.bodies[0])
    end)
  end)

  describe("sluice.response", function()
    it("reads and writes the response in the response phases", function()
      in_phase("response_headers", function()
        assert.equal(200, api.response.get_status())
        assert.equal("text/plain", api.response.get_header("content-type"))
        api.response.set_status(203)
        api.response.set_header("X-Served-By", "sluice")
      end)
      assert.equal(203, R.status)
      assert.same({ { "X-Served-By", "sluice" } }, fields(1, "x-served-by"))
    end)

    it("refuses reads before a response exists and bad statuses", function()
      assert.has_error(function() in_phase("request_headers", api.response.get_status) end)
      assert.has_error(function() in_phase("response_headers", api.response.set_status, 99) end)
      assert.has_error(function() in_phase("response_headers", api.response.set_status, "200") end)
    end)

    it("exit() sets the reply and its headers, then ends the hook", function()
      local ok, err = pcall(in_phase, "request_headers", api.response.exit, 403, "no", { ["X-Why"] = "because" })
      assert.is_false(ok)
      assert.equal(base.EXIT, err)
      assert.is_true(base.exited)
      assert.equal(403, R.local_status)
      assert.equal("no", R.local_body)
      assert.same({ { "X-Why", "because" } }, fields(1, "x-why"))
    end)

    it("exit() sends a table as JSON", function()
      pcall(in_phase, "request_headers", api.response.exit, 401, { message = "who?" })
      assert.equal([[{"message":"who?"}]], R.local_body)
      assert.same({ { "Content-Type", "application/json" } }, fields(1, "content-type"))
    end)

    it("exit() keeps a Content-Type given in its headers", function()
      pcall(in_phase, "request_headers", api.response.exit, 401, { m = 1 }, { ["content-type"] = "application/problem+json" })
      assert.same({ { "content-type", "application/problem+json" } }, fields(1, "content-type"))
    end)

    it("exit() is for the request phases, and checks its arguments", function()
      local cases = {
        { "response_headers", { 200 }, "not available in the response_headers phase" },
        { "request_headers", { 100 }, "integer status 200..999" },
        { "request_headers", { 200, print }, "bad argument #2" },
        { "request_headers", { 200, "x", "h" }, "bad argument #3" },
        { "request_headers", { 200, "x", { X = print } }, "header 'X' has a function value" },
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(in_phase, c[1], api.response.exit, unpack(c[2]))
        assert.is_false(ok)
        assert.truthy(err:find(c[3], 1, true), err)
        assert.is_false(base.exited)
      end
    end)

    it("sluice.respond is exit", function()
      assert.equal(api.response.exit, api.respond)
    end)
  end)

  describe("sluice.ctx", function()
    it("stores strings for the other plugins of the request", function()
      in_phase("request_headers", function()
        assert.is_nil(api.ctx.get("user"))
        assert.is_true(api.ctx.set("user", "alice"))
        assert.is_true(api.ctx.set("n", 5))
        assert.equal("alice", api.ctx.get("user"))
        assert.is_true(api.ctx.set("user", nil))
        assert.is_true(api.ctx.set("never-set", nil))
      end)
      assert.same({ n = "5" }, R.kv)
    end)

    it("takes only strings and numbers", function()
      assert.has_error(function() in_phase("log", api.ctx.set, "k", {}) end)
      assert.has_error(function() in_phase("log", api.ctx.get, 1) end)
    end)
  end)

  describe("sluice.log", function()
    it("joins its arguments like ngx.log, under the plugin's name", function()
      base.plugin_name = "demo"
      api.log.err("a", 1, " ", true, nil)
      api.log.debug("dbg")
      assert.same({ level = 0, plugin = "demo", msg = "a1 truenil" }, R.logs[1])
      assert.same({ level = 3, plugin = "demo", msg = "dbg" }, R.logs[2])
    end)

    it("does not format lines of a level that is off", function()
      R.log_level = 1
      local called = false
      api.log.info(setmetatable({}, { __tostring = function() called = true return "x" end }))
      assert.is_false(called)
      assert.equal(0, #R.logs)
      assert.is_false(api.log.is_enabled("info"))
      assert.is_true(api.log.is_enabled("warn"))
    end)
  end)

  it("sluice.time.now() is milliseconds", function()
    assert.equal(1700000000123, api.time.now())
  end)

  it("sluice.shared.dict names an undeclared dict in its error", function()
    assert.has_error(function() api.shared.dict("x") end,
      "sluice.shared.dict: no shared dict named 'x' (declare it under shared_dicts in the configuration)")
    assert.has_error(function() api.shared.dict(1) end,
      "sluice.shared.dict: bad argument #1 (string expected, got number)")
  end)
end)

describe("the plugin host", function()
  local host, base
  local saved_ffi = package.loaded.ffi

  before_each(function()
    R = new_request()
    local _
    _, base, host = fresh()
  end)

  teardown(function()
    for k in pairs(package.loaded) do
      if k == "sluice" or k:find("^sluice%.") then package.loaded[k] = nil end
    end
    package.loaded.ffi = saved_ffi
    string_mt.__index, string_mt.__metatable = saved_index, saved_protect
  end)

  local function load(source, spec)
    spec = spec or {}
    spec.source = source
    spec.file = spec.file or "plugins/p.lua"
    spec.name = spec.name or "p"
    spec.config_file = spec.config_file or "sluice.yaml"
    spec.timeout_ms = spec.timeout_ms or 100
    spec.memory_limit_mb = spec.memory_limit_mb or 64
    return host.load(spec)
  end

  describe("loads a plugin", function()
    it("and reports what it declares", function()
      local meta = assert(load([[
        return { name = "p", version = "1.2.3", priority = 100,
                 body = { response = true },
                 request_headers = function() end, log = function() end }
      ]]))
      assert.same({ name = "p", version = "1.2.3", priority = 100, phases = 1 + 32, body = 2 }, meta)
    end)

    it("takes a body hook as a body declaration", function()
      local meta = assert(load([[return { name = "p", priority = 1, request_body = function() end }]]))
      assert.equal(2, meta.phases)
      assert.equal(1, meta.body)
      assert.is_true(base.body_request)
    end)

    it("without a priority when the config gives one", function()
      local meta = assert(load([[return { name = "p" }]], { has_priority = true }))
      assert.is_nil(meta.priority)
    end)

    it("gives the plugin require 'sluice' and the global sluice, and nothing unsafe", function()
      local meta, err = load([[
        local s = require "sluice"
        assert(s.request.get_header and sluice.json.encode)
        assert(require("sluice.json").decode("[1]")[1] == 1)
        assert(ffi == nil and io == nil and debug == nil and jit == nil and package == nil)
        assert(not pcall(require, "ffi"))
        assert(not pcall(function() s.request.x = 1 end))
        return { name = "p", priority = 1 }
      ]])
      assert.is_nil(err)
      assert.is_table(meta)
    end)

    it("runs init once with the checked config", function()
      assert(load([[
        local sluice = require "sluice"
        return { name = "p", priority = 1,
          schema = { fields = { { greeting = { type = "string", default = "hi" } } } },
          init = function(conf) sluice.log.info("init ", conf.greeting) end }
      ]]))
      assert.same({ { level = 2, plugin = "p", msg = "init hi" } }, R.logs)
    end)
  end)

  describe("refuses a bad plugin with a precise message", function()
    local cases = {
      { "a syntax error", "return {", nil, "^plugins/p.lua:1: unexpected symbol near '<eof>'$" },
      { "bytecode", string.dump(function() end), nil, "attempt to load chunk with wrong mode" },
      { "no table", "return 42", nil, "^plugins/p.lua: plugin must return a table with a 'name'$" },
      { "no name", "return {}", nil, "^plugins/p.lua: plugin must return a table with a 'name'$" },
      { "another name", "return { name = 'q', priority = 1 }", nil,
        "plugins/p.lua: plugin 'q': the name does not match the name it is configured as %('p'%)" },
      { "no priority", "return { name = 'p' }", nil, "'priority' must be set" },
      { "a Kong-style PRIORITY", "return { name = 'p', PRIORITY = 1 }", nil, "in lower case" },
      { "a fractional priority", "return { name = 'p', priority = 1.5 }", nil, "'priority' must be an integer" },
      { "a Kong phase name", "return { name = 'p', priority = 1, access = function() end }", nil,
        "unknown phase function 'access' %(sluice calls it 'request_headers'%)" },
      { "a typo in a phase name", "return { name = 'p', priority = 1, request_header = function() end }", nil,
        "unknown phase function 'request_header'" },
      { "a phase that is not a function", "return { name = 'p', priority = 1, log = true }", nil,
        "'log' must be a function" },
      { "a bad body", "return { name = 'p', priority = 1, body = { request = 'yes' } }", nil,
        "'body' takes only request" },
      { "a bad schema", "return { name = 'p', priority = 1, schema = { fields = { { a = { type = 'int' } } } } }", nil,
        "^plugins/p.lua: plugin 'p': schema.a: unknown type \"int\"" },
      { "an error while loading", "local x = nil; x()", nil, "^plugins/p.lua:1: attempt to call .* %(while loading%)$" },
      { "an endless loop while loading", "while true do end", { load_timeout_ms = 20 },
        "^plugins/p.lua:1: budget exceeded: timeout %(20 ms%) %(while loading%)$" },
      { "an endless custom validator", [[return { name = 'p', priority = 1, schema = { fields = {
          { a = { type = 'string', default = 'x', custom_validator = function() while true do end end } } } } }]],
        { load_timeout_ms = 20 }, "^plugins/p.lua:2: budget exceeded: timeout %(20 ms%) %(compiling the schema%)$" },
      { "an error in init", "return { name = 'p', priority = 1, init = function() error('no db') end }", nil,
        "^plugins/p.lua:1: no db %(in init%)$" },
    }
    for _, c in ipairs(cases) do
      it("for " .. c[1], function()
        local meta, err = load(c[2], c[3])
        assert.is_nil(meta)
        assert.truthy(err:find(c[4]), err .. " !~ " .. c[4])
      end)
    end
  end)

  describe("checks the config against the schema", function()
    local src = [[
      return { name = "p", priority = 1,
        schema = { fields = {
          { header = { type = "string", required = true } },
          { keys = { type = "array", elements = { type = "string" } } },
          { limits = { type = "record", fields = { { rate = { type = "integer", default = 10 } } } } },
        } },
        request_headers = function(conf, ctx) ctx.conf = conf end }
    ]]
    -- config:            (line 10, col 5)
    --   keys: [a, 7]     (line 11)
    --   extra: 1         (line 12)
    local positions = {
      line = 10, col = 5,
      fields = {
        keys = { line = 11, col = 11, items = { { line = 11, col = 12 }, { line = 11, col = 15 } } },
        extra = { line = 12, col = 12 },
      },
    }

    it("naming file, line and column of each problem", function()
      local meta, err = load(src, { config = { keys = { "a", 7 }, extra = 1 }, positions = positions })
      assert.is_nil(meta)
      assert.equal(table.concat({
        "sluice.yaml:10:5: plugin p: config.header: required field missing",
        "sluice.yaml:11:15: plugin p: config.keys[1]: expected a string, got 7",
        "sluice.yaml:12:12: plugin p: config.extra: unknown field",
      }, "\n"), err)
    end)

    it("and hands the plugin the checked config with defaults", function()
      local src2 = src:gsub("ctx.conf = conf", [[
        local sluice = require "sluice"
        sluice.ctx.set("seen", conf.header .. " " .. #conf.keys .. " " .. conf.limits.rate)]])
      assert(load(src2, { config = { header = "X-Key", keys = { "a", "b" } } }))
      assert.equal(0, host.call(0, 1))
      assert.equal("X-Key 2 10", R.kv.seen)
    end)
  end)

  describe("calls hooks", function()
    local function plugin(body)
      local meta, err = load("local sluice = require 'sluice'\n" .. body)
      assert(meta, err)
    end

    it("with conf and a ctx table per request", function()
      plugin([[
        return { name = "p", priority = 1,
          schema = { fields = { { list = { type = "array", elements = { type = "string" },
                                           default = { "a", "b" } } } } },
          request_headers = function(conf, ctx)
            ctx.n = (ctx.n or 0) + #conf.list
            sluice.ctx.set("n", ctx.n)
          end,
          log = function(conf, ctx)
            sluice.ctx.set("log", ctx.n)
            local ok = pcall(function() conf.other = 1 end)
            sluice.ctx.set("guarded", tostring(not ok))
          end }
      ]])
      assert.same({ 0 }, { host.call(0, 1) })
      assert.same({ 0 }, { host.call(0, 1) })
      assert.equal("4", R.kv.n)
      assert.same({ 0 }, { host.call(0, 2) })
      assert.equal("2", R.kv.n)
      assert.equal(2, host.live())
      host.call(5, 1)
      assert.equal("4", R.kv.log)
      assert.equal("true", R.kv.guarded)
      host.done(1)
      host.done(2)
      host.done(3)
      assert.equal(0, host.live())
    end)

    it("answering 1 after exit(), even when the plugin catches it", function()
      plugin([[
        return { name = "p", priority = 1,
          request_headers = function() return sluice.response.exit(401) end,
          request_body = function()
            pcall(sluice.response.exit, 403, "caught")
            sluice.log.warn("after exit")
          end }
      ]])
      assert.same({ 1 }, { host.call(0, 1) })
      assert.equal(401, R.local_status)
      assert.same({ 1 }, { host.call(1, 1) })
      assert.equal(403, R.local_status)
      assert.equal("after exit", R.logs[1].msg)
      assert.is_false(base.exited and base.phase ~= nil)
    end)

    it("answering -1 with the message and a traceback on an error", function()
      plugin([[
        local function deep() error("broken") end
        return { name = "p", priority = 1, request_headers = function() deep() end,
                 log = function() sluice.request.set_header("X", {}) end }
      ]])
      local code, msg = host.call(0, 1)
      assert.equal(-1, code)
      assert.truthy(msg:find("^plugins/p.lua:2: broken\nstack traceback:"), msg)
      assert.truthy(msg:find("in function 'deep'", 1, true), msg)
      code, msg = host.call(5, 1)
      assert.equal(-1, code)
      assert.truthy(msg:find("^plugins/p.lua:4: sluice.request.set_header: not available in the log phase"), msg)
    end)

    it("answering -2 when a budget is exceeded, which pcall cannot catch", function()
      local meta, err = load([[
        return { name = "p", priority = 1,
          request_headers = function() pcall(function() while true do end end) end,
          log = function() local t = {} for i = 1, 1e8 do t[i] = i .. "" end end }
      ]], { timeout_ms = 20,
            -- busted's own heap counts here: the limit sits 8 MB above it
            memory_limit_mb = math.ceil(collectgarbage("count") / 1024) + 8 })
      assert(meta, err)
      local code, msg = host.call(0, 1)
      assert.equal(-2, code)
      assert.truthy(msg:find("^plugins/p.lua:2: budget exceeded: timeout %(20 ms%)"), msg)
      code, msg = host.call(5, 1)
      assert.equal(-2, code)
      assert.truthy(msg:find("budget exceeded", 1, true), msg)
      -- the VM keeps working
      assert.equal(-2, (host.call(0, 2)))
    end)

    it("answering 0 for a phase the plugin lacks", function()
      plugin([[return { name = "p", priority = 1 }]])
      assert.equal(0, host.call(3, 1))
      assert.equal(0, host.live())
    end)

    it("making a ctx table only for hooks that read it", function()
      plugin([[
        return { name = "p", priority = 1,
          request_headers = function(conf, ctx) sluice.ctx.set("rh", "ran") end,
          response_headers = function(conf, ctx) ctx.n = (ctx.n or 0) + 1 end,
          log = function(conf) sluice.ctx.set("log", "ran") end }
      ]])
      assert.equal(8, host.ctx_phases())
      assert.same({ 0 }, { host.dispatch(0) })
      assert.equal("ran", R.kv.rh)
      assert.equal(0, host.live())
      -- the C host's slots: small integers, cleared by C when the request ends
      assert.same({ 0 }, { host.dispatch(3, 1) })
      assert.same({ 0 }, { host.dispatch(3, 1) })
      assert.same({ 0 }, { host.dispatch(3, 2) })
      assert.equal(2, host.ctx_slots[1].n)
      assert.equal(1, host.ctx_slots[2].n)
      assert.equal(2, host.live())
      assert.same({ 0 }, { host.dispatch(5) })
      assert.equal("ran", R.kv.log)
      host.ctx_slots[1] = nil
      assert.is_true(host.done(2))
      assert.is_false(host.done(2))
      assert.is_false(host.done(nil))
      assert.equal(0, host.live())
    end)

    it("answering with one value unless there is a message", function()
      plugin([[
        return { name = "p", priority = 1,
          request_headers = function(conf, ctx) ctx.x = 1; error("late") end,
          log = function() end }
      ]])
      local code, msg = host.dispatch(0, 1)
      assert.equal(-1, code)
      assert.truthy(msg:find("late", 1, true), msg)
      assert.equal(1, host.live())
      assert.equal(1, select("#", host.dispatch(5)))
    end)

    it("giving C one caller per hook, which answers by its number of results", function()
      assert(load([[
        local sluice = require "sluice"
        return { name = "p", priority = 1,
          request_headers = function(conf, ctx) ctx.n = (ctx.n or 0) + 1 end,
          request_body = function() return sluice.response.exit(403, "no") end,
          balancer = function() error("late") end,
          response_headers = function() pcall(function() while true do end end) end }
      ]], { timeout_ms = 20 }))
      local hooks = host.hooks()
      assert.is_nil(hooks[4])
      assert.is_nil(hooks[5])
      -- continue: nothing; the ctx slot only for a hook that reads its ctx
      assert.equal(0, select("#", hooks[0](1)))
      assert.equal(0, select("#", hooks[0](1)))
      assert.equal(2, host.ctx_slots[1].n)
      host.ctx_slots[1] = nil
      -- a local reply: one value
      assert.same({ 1 }, { hooks[1]() })
      assert.equal(0, select("#", hooks[0](2)))
      -- a failure: the code and the message, traceback included
      local code, msg = hooks[2]()
      assert.equal(-1, code)
      assert.truthy(msg:find("late\nstack traceback:", 1, true), msg)
      -- a budget kill, which the plugin's pcall cannot catch
      code, msg = hooks[3]()
      assert.equal(-2, code)
      assert.truthy(msg:find("budget exceeded: timeout (20 ms)", 1, true), msg)
      assert.equal(0, select("#", hooks[0](3)))
    end)

    it("leaving the memory check at return to the caller of dispatch", function()
      -- straight-line code passes no budget check: 4 MB more per call
      collectgarbage()
      local meta, err = load([[
        local s = string.rep("x", 4 * 1024 * 1024)
        local keep = {}
        return { name = "p", priority = 1,
          request_headers = function() keep[#keep + 1] = s .. #keep end }
      ]], { memory_limit_mb = math.ceil(collectgarbage("count") / 1024) + 8 })
      assert(meta, err)
      assert.is_nil(host.check_memory())
      for _ = 1, 4 do assert.equal(0, host.dispatch(0)) end
      local msg = host.check_memory()
      assert.truthy(msg and msg:find("^budget exceeded: memory %(%d+ MB%) at return$"), msg)
      local code, msg2 = host.call(0)
      assert.equal(-2, code)
      assert.equal(msg, msg2)
    end)
  end)

  describe("tells whether a hook reads its ctx argument", function()
    -- Hooks as plugins write them; compiled like plugin code (instrumented).
    local function reads(src)
      local sandbox = require "sluice.sandbox"
      local chunk = assert(sandbox.load("return " .. src, "p.lua", {}))
      return host.reads_ctx(chunk())
    end
    local no = {
      "function(conf, ctx) end",
      "function() end",
      "function(conf) return conf end",
      "function(conf, ctx) local t = {} t.a = conf.x return t end",
      "function(conf, ctx) for i = 1, 3 do conf[i] = i end end",
      "function(conf, ctx) local f = function(x) return x end return f(conf) end",
      "function(conf, _) local a, b, c = 1, 2, 3 return a .. b .. c end",
      "function(conf, ctx) return conf, nil end",
      "function(conf, ctx) local ok = pcall(error, 'x') return ok end",
      "function(conf, ctx) local n = 0 while n < 3 do n = n + 1 end return n end",
    }
    local yes = {
      "function(conf, ctx) ctx.a = 1 end",
      "function(conf, ctx) return ctx end",
      "function(conf, ctx) return conf, ctx end",
      "function(conf, ctx) local c = ctx end",
      "function(conf, ctx) print(ctx) end",
      "function(conf, ctx) local x = ctx and 1 end",
      "function(conf, ctx) if ctx then return 1 end end",
      "function(conf, ctx) return #ctx end",
      "function(conf, ctx) return 'a' .. ctx end",
      "function(conf, ctx) return conf[ctx] end",
      "function(conf, ctx) conf.x = ctx end",
      "function(conf, ctx) return function() return ctx end end",
      "function(conf, ctx) return function() return function() return ctx.a end end end",
      "function(conf, ctx) ctx = ctx or {} end",
      "function(conf, ctx) for k, v in pairs(ctx) do end end",
      "function(conf, ctx) return { ctx } end",
      "function(conf, ctx) return select('#', conf, ctx) end",
      "function(conf, ctx) return ctx == nil end",
      "function(...) local conf, ctx = ... end",
      "function(conf, ...) return ... end",
    }
    for _, src in ipairs(no) do
      it("no: " .. src, function() assert.is_false(reads(src)) end)
    end
    for _, src in ipairs(yes) do
      it("yes: " .. src, function() assert.is_true(reads(src)) end)
    end
    it("yes for a function that is not Lua", function()
      assert.is_true(host.reads_ctx(print))
    end)
  end)
end)

describe("budget.runner, the host's way to call hooks", function()
  local budget = require "sluice.budget"
  local sandbox = require "sluice.sandbox"
  local string_mt = debug.getmetatable("")
  local saved_index, saved_protect = string_mt.__index, string_mt.__metatable
  teardown(function()
    string_mt.__index, string_mt.__metatable = saved_index, saved_protect
  end)

  local function hook(src)
    local chunk = assert(sandbox.load("return " .. src, "p.lua", {}))
    return chunk()
  end

  local function idle()
    assert.is_false(budget.is_active())
    assert.is_false(budget.is_tripped())
    assert.equal(math.huge, budget.headroom())
  end

  it("stops an endless loop with the JIT on, through the plugin's pcall", function()
    jit.on()
    local run = budget.runner({ timeout_ms = 20 })
    local spin = hook("function(a, b) pcall(function() while true do end end) end")
    local t0 = os.clock()
    local ok, kind, msg = run(spin, 1, 2)
    assert.is_false(ok)
    assert.equal("timeout", kind)
    assert.truthy(msg:find("^p.lua:1: budget exceeded: timeout %(20 ms%)"), msg)
    assert.truthy(os.clock() - t0 < 0.5)
    idle()
  end)

  it("passes two arguments, drops results, and starts afresh on every call", function()
    local run = budget.runner({ timeout_ms = 20, memory_limit_mb = 4096 })
    local seen = {}
    local f = hook("function(a, b) return a + b end")
    local spin = hook("function() while true do end end")
    local g = function(a, b) seen[#seen + 1] = a .. b return "dropped" end
    for i = 1, 300 do       -- hot: compiled
      assert.same({ true }, { run(f, i, 1) })
      assert.same({ true }, { run(g, "x", i) })
      if i % 100 == 0 then assert.is_false((run(spin))) end
      idle()
    end
    assert.equal("x300", seen[300])
  end)

  it("reports errors with a traceback, and refuses a non-function", function()
    local run = budget.runner(nil)
    local ok, kind, msg, tb = run(hook("function() local t = nil; return t.x end"))
    assert.is_false(ok)
    assert.equal("error", kind)
    assert.truthy(msg:find("^p.lua:1: attempt to index"), msg)
    assert.truthy(tb:find("stack traceback", 1, true), tb)
    ok, kind, msg = run(function() error(setmetatable({}, { __tostring = function() while true do end end })) end)
    assert.same({ false, "error", "(error object is a table value)" }, { ok, kind, msg })
    assert.has_error(function() run(42) end, "budget.run: function expected, got number")
    assert.has_error(function() budget.runner(5) end, "budget.runner: limits must be a table")
    idle()
  end)

  it("checks memory at return, unless the caller does (check_return = false)", function()
    collectgarbage(); collectgarbage()
    local limits = { memory_limit_mb = collectgarbage("count") / 1024 + 8 }
    local keep = {}
    local grow = hook("function(keep, s) keep[#keep + 1] = s .. #keep end")
    local s = string.rep("x", 4 * 1024 * 1024)
    local checked, unchecked = budget.runner(limits), budget.runner(limits, false)
    assert.is_true((unchecked(grow, keep, s)))
    assert.is_true((unchecked(grow, keep, s)))
    assert.is_true((unchecked(grow, keep, s)))
    local ok, kind, msg = checked(grow, keep, s)
    assert.is_false(ok)
    assert.equal("memory", kind)
    assert.truthy(msg:find("at return", 1, true), msg)
    assert.truthy(budget.memory_over(limits.memory_limit_mb))
    keep = nil
    collectgarbage()
    assert.is_nil(budget.memory_over(limits.memory_limit_mb))
    idle()
  end)

  it("keeps the budget of a run it is nested in", function()
    local inner = budget.runner({ timeout_ms = 1000 })
    local ok, kind = budget.run(function()
      assert.is_true((inner(function() end)))
      assert.is_true(budget.is_active())
      while true do budget.check() end
    end, { timeout_ms = 20 })
    assert.is_false(ok)
    assert.equal("timeout", kind)
    idle()
  end)
end)
