-- lua/sluice/shared.lua: sluice.shared, dictionaries shared by all workers
-- (src/shdict.c), declared in the configuration under shared_dicts.
--
--   local counters = sluice.shared.dict("counters")
--   local n = counters:incr("hits", 1, 0)
--
-- Every call is one atomic operation in C behind the dictionary's lock;
-- nothing spans two calls, except through cas() (compare and set), which
-- a read-compute-write loop uses to never lose a concurrent update.
-- Values are strings, numbers and booleans. TTLs are in seconds (a
-- fraction is fine: the resolution is a millisecond); 0 or nil means none.
--
-- Misuse (a bad argument, an unknown dictionary) raises; runtime failures
-- return nil and a message ("no memory": the value does not fit in the
-- dictionary at all). The C handle stays in this module's upvalues: a
-- plugin only ever holds a read-only table of methods.

local base = require "sluice.base"

local C = base.C
local ffi_string, new, gc = base.string, base.new, base.gc

local type, error, tostring, tonumber, setmetatable = type, error, tostring, tonumber, setmetatable
local ceil, huge = math.ceil, math.huge

-- src/shdict.h
local OK, NOT_FOUND, EXISTS, CHANGED, TRUNCATED = 0, 1, 2, 3, 4
local ENOMEM, ENOTNUM = -2, -4
local NIL, BOOL, NUMBER, STRING = 0, 1, 2, 3
local KEY_MAX = 65535

-- Scratch out-parameters and the buffer strings are read into (grown up
-- to BUF_KEEP bytes and kept; a longer value gets a buffer of its own).
local type_out = new("int[1]")
local num_out = new("double[1]")
local num_out2 = new("double[1]")
local len_io = new("size_t[1]")
local BUF_KEEP = 65536
local buf_size = 1024
local buf = new("char[?]", buf_size)

local MESSAGES = {
  [NOT_FOUND] = "not found", [EXISTS] = "exists", [CHANGED] = "changed",
  [ENOMEM] = "no memory", [ENOTNUM] = "not a number",
}

local M = {}

-- The failure of rc as nil, message; an unexpected code raises (the Lua
-- side checks every argument, so the C side refusing one is a bug).
-- Always tail-called, so level 2 is the plugin's call site.
local function failure(fname, rc)
  local msg = MESSAGES[rc]
  if msg == nil then error(fname .. ": error " .. tostring(rc), 2) end
  return nil, msg
end

-- Checks of the arguments: they raise at the plugin's call site (level 3:
-- the helper, the method, its caller).
local function check_key(fname, key)
  if type(key) ~= "string" then
    error(fname .. ": bad argument #1 (string expected, got " .. type(key) .. ")", 3)
  end
  local n = #key
  if n == 0 or n > KEY_MAX then
    error(fname .. ": bad argument #1 (a key of 1 to " .. KEY_MAX .. " bytes expected)", 3)
  end
end

-- ttl_ms(fname, argn, ttl) -> milliseconds for a TTL in seconds (nil: 0).
local function ttl_ms(fname, argn, ttl)
  if ttl == nil then return 0 end
  if type(ttl) ~= "number" or ttl < 0 or ttl ~= ttl or ttl == huge then
    error(fname .. ": bad argument #" .. argn .. " (a TTL in seconds >= 0 expected, got "
          .. tostring(ttl) .. ")", 3)
  end
  return ceil(ttl * 1000)
end

-- value_args(fname, argn, v) -> type, number, string, length for C.
local function value_args(fname, argn, v)
  local tv = type(v)
  if tv == "string" then return STRING, 0, v, #v end
  if tv == "number" then return NUMBER, v, nil, 0 end
  if tv == "boolean" then return BOOL, v and 1 or 0, nil, 0 end
  if v == nil then return NIL, 0, nil, 0 end
  error(fname .. ": bad argument #" .. argn .. " (string, number, boolean or nil expected, got "
        .. tv .. ")", 3)
end

local function check_self(fname, self, obj)
  if self ~= obj then
    error(fname .. ": call it as a method (d:" .. fname:match("[^:]*$") .. "(...))", 3)
  end
end

local function readonly(_, k)
  error("a shared dict is read-only (field '" .. tostring(k) .. "')", 2)
end

-- read(fname, h, key) -> the value, nil when absent.
local function read(fname, h, key)
  len_io[0] = buf_size
  local rc = C.sl_ffi_shdict_get(h, key, #key, type_out, num_out, buf, len_io)
  local b = buf
  while rc == TRUNCATED do
    local need = tonumber(len_io[0])
    if need <= BUF_KEEP then
      buf_size = BUF_KEEP
      buf = new("char[?]", buf_size)
      b = buf
    else
      b = new("char[?]", need)
    end
    len_io[0] = b == buf and buf_size or need
    rc = C.sl_ffi_shdict_get(h, key, #key, type_out, num_out, b, len_io)
  end
  if rc == NOT_FOUND then return nil end
  if rc ~= OK then return failure(fname, rc) end
  local t = type_out[0]
  if t == STRING then return ffi_string(b, len_io[0]) end
  if t == NUMBER then return num_out[0] end
  return num_out[0] ~= 0
end

-- The methods of one dictionary, closing over its handle h.
local function make(name, h)
  local obj = {}
  local p = "sluice.shared." .. name .. ":"
  local n_get, n_set, n_add, n_incr = p .. "get", p .. "set", p .. "add", p .. "incr"
  local n_cas, n_del, n_ttl = p .. "cas", p .. "delete", p .. "ttl"
  local n_flush, n_cap, n_free = p .. "flush_all", p .. "capacity", p .. "free_space"
  local m = {}

  --- d:get(key) -> the value (string, number or boolean), nil when absent
  --- or expired.
  function m.get(self, key)
    check_self(n_get, self, obj)
    check_key(n_get, key)
    return read(n_get, h, key)
  end

  --- d:set(key, value, ttl?) -> true, or nil, "no memory". Replaces any
  --- value; nil deletes the key. Evicts least recently used entries when
  --- the dictionary is full.
  function m.set(self, key, value, ttl)
    check_self(n_set, self, obj)
    check_key(n_set, key)
    local t, num, s, n = value_args(n_set, 2, value)
    local rc = C.sl_ffi_shdict_set(h, key, #key, t, num, s, n, ttl_ms(n_set, 3, ttl))
    if rc == OK then return true end
    return failure(n_set, rc)
  end

  --- d:add(key, value, ttl?) -> true; false, "exists" when the key has a
  --- live value; nil, "no memory".
  function m.add(self, key, value, ttl)
    check_self(n_add, self, obj)
    check_key(n_add, key)
    if value == nil then error(n_add .. ": bad argument #2 (a value expected, got nil)", 2) end
    local t, num, s, n = value_args(n_add, 2, value)
    local rc = C.sl_ffi_shdict_add(h, key, #key, t, num, s, n, ttl_ms(n_add, 3, ttl))
    if rc == OK then return true end
    if rc == EXISTS then return false, "exists" end
    return failure(n_add, rc)
  end

  --- d:incr(key, by, init?, ttl?) -> the new value. Without a live value:
  --- nil, "not found" when init is nil, else stores init + by with ttl (ttl
  --- only applies then: an increment keeps the key's TTL). nil, "not a
  --- number" when the value is not one.
  function m.incr(self, key, by, init, ttl)
    check_self(n_incr, self, obj)
    check_key(n_incr, key)
    if type(by) ~= "number" then
      error(n_incr .. ": bad argument #2 (number expected, got " .. type(by) .. ")", 2)
    end
    if init ~= nil and type(init) ~= "number" then
      error(n_incr .. ": bad argument #3 (number or nil expected, got " .. type(init) .. ")", 2)
    end
    local ms = ttl_ms(n_incr, 4, ttl)
    local rc = C.sl_ffi_shdict_incr(h, key, #key, by, init ~= nil and 1 or 0, init or 0, ms,
                                    num_out)
    if rc == OK then return num_out[0] end
    return failure(n_incr, rc)
  end

  --- d:cas(key, old, new, ttl?) -> true when the value was old (nil:
  --- absent) and is now new (nil: deleted); false, "changed" when it was
  --- something else (nothing changes); nil, "no memory".
  function m.cas(self, key, old, new_value, ttl)
    check_self(n_cas, self, obj)
    check_key(n_cas, key)
    local ot, onum, os, on = value_args(n_cas, 2, old)
    local nt, nnum, ns, nn = value_args(n_cas, 3, new_value)
    local rc = C.sl_ffi_shdict_cas(h, key, #key, ot, onum, os, on, nt, nnum, ns, nn,
                                   ttl_ms(n_cas, 4, ttl))
    if rc == OK then return true end
    if rc == CHANGED then return false, "changed" end
    return failure(n_cas, rc)
  end

  --- d:delete(key) -> true (also when there was nothing).
  function m.delete(self, key)
    check_self(n_del, self, obj)
    check_key(n_del, key)
    C.sl_ffi_shdict_delete(h, key, #key)
    return true
  end

  --- d:ttl(key) -> the seconds left before key expires (0: never); nil,
  --- "not found" when absent.
  function m.ttl(self, key)
    check_self(n_ttl, self, obj)
    check_key(n_ttl, key)
    local rc = C.sl_ffi_shdict_ttl(h, key, #key, num_out)
    if rc == OK then return num_out[0] / 1000 end
    return failure(n_ttl, rc)
  end

  --- d:flush_all() -> true: removes every entry.
  function m.flush_all(self)
    check_self(n_flush, self, obj)
    C.sl_ffi_shdict_flush_all(h)
    return true
  end

  --- d:capacity() -> the dictionary's size in bytes, as declared.
  function m.capacity(self)
    check_self(n_cap, self, obj)
    C.sl_ffi_shdict_space(h, num_out, num_out2)
    return num_out[0]
  end

  --- d:free_space() -> the bytes not used by entries.
  function m.free_space(self)
    check_self(n_free, self, obj)
    C.sl_ffi_shdict_space(h, num_out, num_out2)
    local free = num_out[0] - num_out2[0]
    return free > 0 and free or 0
  end

  return setmetatable(obj, { __index = m, __newindex = readonly, __metatable = false })
end

-- One object per dictionary per VM. A VM belongs to one generation, whose
-- dictionaries outlive it, and the handle holds a reference anyway.
local dicts = {}

--- dict(name) -> the shared dictionary called name. Raises when the
--- configuration declares none of that name (shared_dicts). Works
--- everywhere: at the top level of a plugin, in init and in every hook.
function M.dict(name)
  if type(name) ~= "string" then
    error("sluice.shared.dict: bad argument #1 (string expected, got " .. type(name) .. ")", 2)
  end
  local d = dicts[name]
  if d then return d end
  local h = C.sl_ffi_shdict_open(name, #name)
  if h == nil then
    error("sluice.shared.dict: no shared dict named '" .. name .. "' (declare it under "
          .. "shared_dicts in the configuration)", 2)
  end
  d = make(name, gc(h, C.sl_ffi_shdict_close))
  dicts[name] = d
  return d
end

return M
