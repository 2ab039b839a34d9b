-- lua/sluice/request.lua: sluice.request, the client's request as it will
-- go upstream. Getters work in every phase of a request (in the response
-- phases and log they see the request as it was sent); setters work in the
-- request phases, until the request head is sent upstream.

local base = require "sluice.base"
local headers = require "sluice.headers"

local C = base.C
local ffi_string = base.string
local pp, pn = base.pp, base.pn
local check_phase, arg_error, fail = base.check_phase, base.arg_error, base.fail
local OK, NOT_FOUND = base.OK, base.NOT_FOUND
local REQUEST = base.REQUEST
local IN_REQUEST, REQUEST_PHASES = base.IN_REQUEST, base.REQUEST_PHASES

local type, tostring, tonumber, error, pairs = type, tostring, tonumber, error, pairs
local find, sub, gsub, char, byte, format =
  string.find, string.sub, string.gsub, string.char, string.byte, string.format
local concat, sort = table.concat, table.sort
local new_tab = require "table.new"

local M = {}

local h = headers.make(REQUEST, "sluice.request", IN_REQUEST, REQUEST_PHASES)
M.get_header = h.get_header
M.get_headers = h.get_headers
M.set_header = h.set_header
M.add_header = h.add_header
M.clear_header = h.clear_header

-- A getter of one string of the request line or metadata.
local function getter(cfn, fname)
  return function()
    check_phase(IN_REQUEST, fname)
    local rc = cfn(pp, pn)
    if rc ~= OK then return fail(fname, rc) end
    return ffi_string(pp[0], pn[0])
  end
end

--- get_method() -> "GET", as the request will go upstream.
M.get_method = getter(C.sl_ffi_method, "sluice.request.get_method")
--- get_path() -> "/a/b", without the query.
M.get_path = getter(C.sl_ffi_path, "sluice.request.get_path")
--- get_raw_query() -> the query without '?', "" when none.
M.get_raw_query = getter(C.sl_ffi_query, "sluice.request.get_raw_query")
--- get_client_ip() -> the client's address as text ("192.0.2.7", "2001:db8::1").
M.get_client_ip = getter(C.sl_ffi_client_addr, "sluice.request.get_client_ip")
--- get_id() -> the request id (16 hex digits), as in the logs.
M.get_id = getter(C.sl_ffi_request_id, "sluice.request.get_id")

local n_route = "sluice.request.get_route"
local pp2, pn2 = base.pp2, base.pn2

--- get_route() -> path, host: the route the request matched, as
--- configured (its path prefix, and its host or nil when it takes any);
--- nil when no route matched. Together they name the route.
function M.get_route()
  check_phase(IN_REQUEST, n_route)
  local rc = C.sl_ffi_route(pp, pn, pp2, pn2)
  if rc == NOT_FOUND then return nil end
  if rc ~= OK then return fail(n_route, rc) end
  local host = nil
  if pp[0] ~= nil then host = ffi_string(pp[0], pn[0]) end
  return ffi_string(pp2[0], pn2[0]), host
end

-- A setter of one string of the request line.
local function setter(cfn, fname, what)
  return function(s)
    check_phase(REQUEST_PHASES, fname)
    if type(s) ~= "string" then arg_error(fname, 1, "string", s) end
    local rc = cfn(s, #s)
    if rc ~= OK then return fail(fname, rc, what) end
    return true
  end
end

--- set_method(m): a token such as "POST".
M.set_method = setter(C.sl_ffi_set_method, "sluice.request.set_method", "method")
--- set_path(p): starts with '/', no query, no whitespace or control bytes.
M.set_path = setter(C.sl_ffi_set_path, "sluice.request.set_path", "path")
--- set_raw_query(s): the query without '?' ("" removes it).
M.set_raw_query = setter(C.sl_ffi_set_query, "sluice.request.set_raw_query", "query")

---------------------------------------------------------------------------
-- Query arguments (application/x-www-form-urlencoded, as browsers send).

local function hex_byte(hh)
  return char(tonumber(hh, 16))
end

-- unescape(s): '+' is a space, %XX a byte; a malformed escape stays.
local function unescape(s)
  if find(s, "[%%+]") then
    s = gsub(s, "+", " ")
    s = gsub(s, "%%(%x%x)", hex_byte)
  end
  return s
end
M.unescape = unescape

local function escape_byte(c)
  return format("%%%02X", byte(c))
end

-- escape(s): everything but RFC 3986 unreserved bytes becomes %XX.
local function escape(s)
  return (gsub(s, "[^%w%-%._~]", escape_byte))
end
M.escape = escape

-- next_arg(q, pos) -> the next argument of q at or after pos: raw key,
-- raw value (nil for "?flag" without '='), position after it; nil at the
-- end. Plain loops rather than callbacks keep the callers compilable.
local function next_arg(q, pos)
  local len = #q
  while pos <= len do
    local amp = find(q, "&", pos, true) or len + 1
    if amp > pos then
      local eq = find(q, "=", pos, true)
      if eq and eq < amp then
        return sub(q, pos, eq - 1), sub(q, eq + 1, amp - 1), amp + 1
      end
      return sub(q, pos, amp - 1), nil, amp + 1
    end
    pos = amp + 1
  end
  return nil
end

local n_arg = "sluice.request.get_query_arg"
local n_query = "sluice.request.get_query"

--- get_query_arg(name) -> the first value of argument name (decoded), true
--- for "?name" without '=', nil when absent.
function M.get_query_arg(name)
  check_phase(IN_REQUEST, n_arg)
  if type(name) ~= "string" then arg_error(n_arg, 1, "string", name) end
  local rc = C.sl_ffi_query(pp, pn)
  if rc ~= OK then return fail(n_arg, rc) end
  if pn[0] == 0 then return nil end
  local q = ffi_string(pp[0], pn[0])
  local k, v, pos = next_arg(q, 1)
  while k do
    if k == name or unescape(k) == name then
      if v == nil then return true end
      return unescape(v)
    end
    k, v, pos = next_arg(q, pos)
  end
  return nil
end

--- get_query(max) -> a table of name -> value (decoded; true for a bare
--- name; an array when repeated), at most max arguments (default 100) and
--- "truncated" as a second result when there were more.
function M.get_query(max)
  check_phase(IN_REQUEST, n_query)
  if max == nil then
    max = 100
  elseif type(max) ~= "number" or max < 1 or max % 1 ~= 0 then
    arg_error(n_query, 1, "positive integer", max)
  end
  local rc = C.sl_ffi_query(pp, pn)
  if rc ~= OK then return fail(n_query, rc) end
  local q = ffi_string(pp[0], pn[0])
  local t, n = new_tab(0, 4), 0
  local k, v, pos = next_arg(q, 1)
  while k do
    if n == max then return t, "truncated" end
    n = n + 1
    k = unescape(k)
    if v == nil then v = true else v = unescape(v) end
    local old = t[k]
    if old == nil then
      t[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      t[k] = { old, v }
    end
    k, v, pos = next_arg(q, pos)
  end
  return t
end

-- encode_args(t) -> "a=1&b=x%20y", keys sorted; nil, message on a bad value.
local function encode_args(t)
  local keys, nk = {}, 0
  for k in pairs(t) do
    if type(k) ~= "string" then
      return nil, "argument names must be strings, got " .. type(k)
    end
    nk = nk + 1
    keys[nk] = k
  end
  sort(keys)
  local out, n = {}, 0
  local function put(k, v)
    local tv = type(v)
    if v == true then
      n = n + 1; out[n] = escape(k)
    elseif tv == "string" or tv == "number" then
      n = n + 1; out[n] = escape(k) .. "=" .. escape(tostring(v))
    elseif v ~= false then
      return "argument '" .. k .. "' has a " .. tv .. " value"
    end
  end
  for i = 1, nk do
    local k = keys[i]
    local v = t[k]
    if type(v) == "table" then
      for j = 1, #v do
        local e = put(k, v[j])
        if e then return nil, e end
      end
    else
      local e = put(k, v)
      if e then return nil, e end
    end
  end
  return concat(out, "&")
end
M.encode_args = encode_args

local n_set_query = "sluice.request.set_query"

--- set_query(args): a table of name -> string | number | true (bare name)
--- | false (left out) | array of those, encoded with names sorted; or a
--- string used as the raw query.
function M.set_query(args)
  check_phase(REQUEST_PHASES, n_set_query)
  local q = args
  if type(args) == "table" then
    local e
    q, e = encode_args(args)
    if not q then error(n_set_query .. ": bad argument #1 (" .. e .. ")", 2) end
  elseif type(args) ~= "string" then
    arg_error(n_set_query, 1, "table or string", args)
  end
  local rc = C.sl_ffi_set_query(q, #q)
  if rc ~= OK then return fail(n_set_query, rc, "query") end
  return true
end

---------------------------------------------------------------------------
-- The body (plugins that declared body = { request = true }).

M.get_body, M.set_body =
  require("sluice.body").make(REQUEST, "sluice.request", "request", IN_REQUEST, REQUEST_PHASES)

return M
