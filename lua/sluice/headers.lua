-- lua/sluice/headers.lua: the header functions sluice.request and
-- sluice.response share, built once per side. Internal (not handed to
-- plugins as a module).

local base = require "sluice.base"

local C = base.C
local ffi_string = base.string
local pp, pn, pp2, pn2 = base.pp, base.pn, base.pp2, base.pn2
local check_phase, arg_error, fail = base.check_phase, base.arg_error, base.fail
local OK, NOT_FOUND = base.OK, base.NOT_FOUND
local IN_REQUEST = base.IN_REQUEST

local type, tostring, error, rawget = type, tostring, error, rawget
local setmetatable = setmetatable
local lower = string.lower
local new_tab = require "table.new"

local M = {}

-- The C functions as upvalues of their own: a trace takes them as
-- constants, where C.name costs a guard on the library at each use.
local header_get, header_count, header_at = C.sl_ffi_header_get, C.sl_ffi_header_count,
                                            C.sl_ffi_header_at
local header_set, header_set_known = C.sl_ffi_header_set, C.sl_ffi_header_set_known
local header_add, header_add_known = C.sl_ffi_header_add, C.sl_ffi_header_add_known
local header_remove = C.sl_ffi_header_remove

-- Tables from get_headers() also answer mixed-case names.
local headers_mt = {
  __index = function(t, k)
    if type(k) == "string" then
      local lk = lower(k)
      if lk ~= k then return rawget(t, lk) end
    end
    return nil
  end,
  __metatable = false,
}

local DEFAULT_MAX = 100

-- Field names the core accepted before, by set_header or add_header of
-- either side: their token check is skipped from then on (the *_known C
-- functions), which is most of what setting a short field costs. Exact,
-- since strings are interned and immutable; bounded, since a plugin may
-- make names up per request (after KNOWN_MAX names, or for a long name,
-- the check is simply done each time).
local known = {}
local nknown, KNOWN_MAX, KNOWN_LEN = 0, 64, 64

-- value_of(v) -> a header value string, or nil when v is not one.
local function value_of(v)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" then return tostring(v) end
  return nil
end

-- make(side, prefix, read_phases, write_phases) returns get_header,
-- get_headers, set_header, add_header and clear_header for one side.
function M.make(side, prefix, read_phases, write_phases)
  local f = {}
  local n_get = prefix .. ".get_header"
  local n_gets = prefix .. ".get_headers"
  local n_set = prefix .. ".set_header"
  local n_add = prefix .. ".add_header"
  local n_clear = prefix .. ".clear_header"

  -- get_header(name, index) -> the index-th value (1-based; default 1,
  -- the first) of the field called name (case-insensitive), or nil.
  function f.get_header(name, index)
    check_phase(read_phases, n_get)
    if type(name) ~= "string" then arg_error(n_get, 1, "string", name) end
    local i = 0
    if index ~= nil then
      if type(index) ~= "number" or index < 1 or index % 1 ~= 0 then
        arg_error(n_get, 2, "positive integer", index)
      end
      i = index - 1
    end
    local rc = header_get(side, name, #name, i, pp, pn)
    if rc == OK then return ffi_string(pp[0], pn[0]) end
    if rc == NOT_FOUND then return nil end
    return fail(n_get, rc)
  end

  -- get_headers(max) -> a table of lower-case name -> value, or an array of
  -- values for a repeated field; at most max fields (default 100), with
  -- "truncated" as a second result when there were more.
  function f.get_headers(max)
    check_phase(read_phases, n_gets)
    if max == nil then
      max = DEFAULT_MAX
    elseif type(max) ~= "number" or max < 1 or max % 1 ~= 0 then
      arg_error(n_gets, 1, "positive integer", max)
    end
    local count = header_count(side)
    if count < 0 then return fail(n_gets, count) end
    local truncated = nil
    if count > max then
      count, truncated = max, "truncated"
    end
    local t = new_tab(0, count)
    for i = 0, count - 1 do
      local rc = header_at(side, i, pp, pn, pp2, pn2)
      if rc ~= OK then return fail(n_gets, rc) end
      local k = lower(ffi_string(pp[0], pn[0]))
      local v = ffi_string(pp2[0], pn2[0])
      local old = t[k]
      if old == nil then
        t[k] = v
      elseif type(old) == "table" then
        old[#old + 1] = v
      else
        t[k] = { old, v }
      end
    end
    return setmetatable(t, headers_mt), truncated
  end

  -- set_or_add(cfn, kfn, fname, name, value, replace): value is a string,
  -- a number or an array of those (one field each); kfn is cfn for a
  -- known name. Tail-called.
  local function set_or_add(cfn, kfn, fname, name, value, replace)
    check_phase(write_phases, fname)
    if type(name) ~= "string" then arg_error(fname, 1, "string", name) end
    local v = value_of(value)
    if v then
      local rc
      if known[name] then
        rc = kfn(side, name, #name, v, #v)
      else
        rc = cfn(side, name, #name, v, #v)
        if rc == OK and nknown < KNOWN_MAX and #name <= KNOWN_LEN then
          known[name] = true
          nknown = nknown + 1
        end
      end
      if rc ~= OK then return fail(fname, rc, "header name or value") end
      return true
    end
    if type(value) ~= "table" or value[1] == nil then
      arg_error(fname, 2, "string, number or non-empty array", value)
    end
    for i = 1, #value do
      v = value_of(value[i])
      if not v then
        error(fname .. ": bad argument #2 (item " .. i .. " is a " .. type(value[i])
              .. ", expected a string or number)", 2)
      end
    end
    for i = 1, #value do
      v = value_of(value[i])
      local rc
      if i == 1 and replace then
        rc = header_set(side, name, #name, v, #v)
      else
        rc = header_add(side, name, #name, v, #v)
      end
      if rc ~= OK then return fail(fname, rc, "header name or value") end
    end
    return true
  end

  -- set_header(name, value) replaces every field called name with value
  -- (an array gives one field per item). Returns true.
  function f.set_header(name, value)
    return set_or_add(header_set, header_set_known, n_set, name, value, true)
  end

  -- add_header(name, value) appends a field (or one per array item).
  function f.add_header(name, value)
    return set_or_add(header_add, header_add_known, n_add, name, value, false)
  end

  -- clear_header(name) removes every field called name. Returns true
  -- (also when there was none).
  function f.clear_header(name)
    check_phase(write_phases, n_clear)
    if type(name) ~= "string" then arg_error(n_clear, 1, "string", name) end
    local rc = header_remove(side, name, #name)
    if rc == OK or rc == NOT_FOUND then return true end
    return fail(n_clear, rc, "header name")
  end

  return f
end

M.IN_REQUEST = IN_REQUEST

return M
