-- lua/sluice/sandbox.lua: loads plugin code, as text only, into its own
-- environment holding only safe globals.
--
--   local fn, env = sandbox.load(source, "plugins/auth.lua", {
--     require = { "cjson" },                 -- allow-listed through require()
--     modules = { px = api },                -- handed out by require("px")
--     globals = { px = sandbox.readonly(api) },
--   })
--   local ok, kind, msg = budget.run(fn, { timeout_ms = 50, memory_limit_mb = 64 })
--
-- What a plugin sees: assert error ipairs next pairs pcall xpcall select
-- tonumber tostring type unpack rawequal rawget rawset setmetatable
-- getmetatable collectgarbage("count") require load loadstring _G _VERSION,
-- and copies of string (no dump), table, math, bit, coroutine and
-- os.time/clock/date. Everything else (ffi, debug, io, jit, package, os.*,
-- dofile, loadfile, getfenv, setfenv, newproxy, module, print, gcinfo) is
-- absent. Every chunk is instrumented by sluice.budget, so budget.run()
-- limits its CPU time and memory with the JIT on.
--
-- The first load hardens the VM (install()): the string metatable, which all
-- code in the VM shares, gets a read-only method table with budget-aware
-- string functions, and getmetatable("") returns false.
--
-- This is a guard against accidents and casual abuse, not a security
-- boundary against a determined attacker: LuaJIT is not one (docs/PLUGINS.md).

local budget = require "sluice.budget"

local M = {}

local type, error, tostring, tonumber, select = type, error, tostring, tonumber, select
local next, pairs, ipairs, unpack = next, pairs, ipairs, unpack
local pcall, xpcall, rawget, rawset = pcall, xpcall, rawget, rawset
local setmetatable, getmetatable = setmetatable, getmetatable
local collectgarbage, load = collectgarbage, load
local s_find, s_gsub, s_gmatch, s_byte = string.find, string.gsub, string.gmatch, string.byte
local s_rep, s_sub, s_format = string.rep, string.sub, string.format
local t_concat, t_insert, t_remove, t_sort = table.concat, table.insert, table.remove, table.sort
local t_move, t_foreach, t_foreachi = table.move, table.foreach, table.foreachi
local co_create, co_resume, co_yield, co_running, co_status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status
local log = math.log

local check, charge, charge_bytes = budget.check, budget.charge, budget.charge_bytes
local reserve, headroom, is_tripped = budget.reserve, budget.headroom, budget.is_tripped
local rethrow, trip_memory, is_active = budget.rethrow, budget.trip_memory, budget.is_active
local is_memory_error = budget.is_memory_error

budget.trust_source(debug.getinfo(1, "S").source)

-- Below this many bytes a string or table operation is not accounted for.
local SMALL = 4096

---------------------------------------------------------------------------
-- Read-only views.

-- proxy -> the table its reads go to. Weak both ways: a proxy keeps its
-- shadow alive through its metatable; nothing here keeps either alive.
local shadow_of = setmetatable({}, { __mode = "kv" })

local function refuse_write(_, k)
  local tk = type(k)
  local name = (tk == "string" or tk == "number") and tostring(k) or tk
  error("attempt to modify a read-only table (field '" .. name .. "')", 2)
end

local function make_readonly(t, seen)
  if type(t) ~= "table" or shadow_of[t] then return t end
  local p = seen[t]
  if p then return p end
  local shadow = {}
  p = setmetatable({}, { __index = shadow, __newindex = refuse_write, __metatable = false })
  seen[t] = p
  shadow_of[p] = shadow
  for k, v in next, t do
    shadow[make_readonly(k, seen)] = make_readonly(v, seen)
  end
  return p
end

-- readonly(t) returns a read-only view of t: an empty proxy whose reads go
-- to a snapshot of t taken now, nested tables (keys too) made read-only the
-- same way, functions and other values shared. Writes, rawset, setmetatable
-- and the mutating table functions raise; getmetatable returns false; the
-- sandbox's pairs, ipairs, next, unpack, rawget and table.concat/getn/maxn
-- see the contents, but `#` returns 0 (LuaJIT has no __len for tables).
-- Later changes to t are not seen. Metatables of t are not carried over.
-- Non-tables and proxies are returned as they are.
function M.readonly(t)
  return make_readonly(t, {})
end
local readonly = M.readonly

-- is_readonly(v) tells whether v is a proxy made by readonly().
function M.is_readonly(v)
  return shadow_of[v] ~= nil
end

local function proxy_next(p, k)
  return next(shadow_of[p], k)
end

local function proxy_inext(p, i)
  i = i + 1
  local v = shadow_of[p][i]
  if v ~= nil then return i, v end
end

local function sb_pairs(t)
  if shadow_of[t] then return proxy_next, t, nil end
  return pairs(t)
end

local function sb_ipairs(t)
  if shadow_of[t] then return proxy_inext, t, 0 end
  return ipairs(t)
end

local function sb_next(t, k)
  return next(shadow_of[t] or t, k)
end

local function sb_unpack(t, i, j)
  return unpack(shadow_of[t] or t, i, j)
end

local function sb_rawget(t, k)
  return rawget(shadow_of[t] or t, k)
end

local function sb_rawset(t, k, v)
  if shadow_of[t] then refuse_write(t, k) end
  return rawset(t, k, v)
end

local function sb_getmetatable(v)
  if type(v) == "table" then return getmetatable(v) end
  return nil
end

local function sb_collectgarbage(opt)
  if opt == "count" then return collectgarbage("count") end
  if opt == nil or opt == "collect" or opt == "step" then return 0 end
  error("collectgarbage: option '" .. tostring(opt) .. "' is not allowed in the sandbox", 2)
end

---------------------------------------------------------------------------
-- Catching errors: never the budget's kill.

local function after_pcall(ok, ...)
  if is_tripped() then rethrow() end
  if not ok and is_memory_error((...)) then trip_memory((...)) end
  return ok, ...
end

local function sb_pcall(f, ...)
  return after_pcall(pcall(f, ...))
end

local function sb_xpcall(f, handler, ...)
  return after_pcall(xpcall(f, handler, ...))
end

-- Coroutines made by plugin code. Only those can be yielded from, so a
-- plugin cannot yield out of the host's coroutine (and out of budget.run).
local plugin_cos = setmetatable({}, { __mode = "k" })

local function sb_create(f)
  local co = co_create(f)
  plugin_cos[co] = true
  return co
end

local function sb_resume(co, ...)
  return after_pcall(co_resume(co, ...))
end

local function after_wrap(ok, ...)
  if is_tripped() then rethrow() end
  if not ok then
    local e = ...
    if is_memory_error(e) then trip_memory(e) end
    error(e, 0)
  end
  return ...
end

local function sb_wrap(f)
  local co = sb_create(f)
  return function(...)
    return after_wrap(co_resume(co, ...))
  end
end

local function sb_yield(...)
  local co = co_running()
  if not (co and plugin_cos[co]) then
    error("attempt to yield from outside a coroutine", 2)
  end
  return co_yield(...)
end

local function sb_running()
  local co = co_running()
  if co and plugin_cos[co] then return co end
  return nil
end

local function sb_isyieldable()
  local co = co_running()
  return co ~= nil and plugin_cos[co] == true
end

---------------------------------------------------------------------------
-- Budget-aware string and table functions. The C library builds results
-- without passing a budget check; these charge the CPU budget for big inputs
-- and refuse results that would not fit in memory_limit_mb.

local function str_len(s)
  local t = type(s)
  if t == "string" then return #s end
  if t == "number" then return 24 end
  return 0
end

local function sized(fn)
  return function(s, a, b, c)
    local n = str_len(s)
    if n > SMALL then charge_bytes(n) end
    return fn(s, a, b, c)
  end
end

local function sized_result(fn)
  return function(s)
    local n = str_len(s)
    if n > SMALL then
      reserve(n)
      charge_bytes(n)
    end
    return fn(s)
  end
end

local function str_rep(s, n, sep)
  local k = tonumber(n)
  if k and k > 0 then
    local size = str_len(s) * k
    if sep ~= nil then size = size + str_len(sep) * (k - 1) end
    if size > SMALL then
      reserve(size)
      charge_bytes(size)
    end
  end
  return s_rep(s, n, sep)
end

-- The wrappers end in tail calls: errors raised by the C function then
-- name the plugin's call site and the function, as without the wrapper.
local function str_sub(s, i, j)
  if type(s) == "string" and #s > SMALL and type(i) == "number"
      and (j == nil or type(j) == "number") then
    -- The length of the slice, as string.sub computes it.
    local n = #s
    local a, b = i, j or -1
    if a < 0 then a = n + a + 1 end
    if b < 0 then b = n + b + 1 end
    if a < 1 then a = 1 end
    if b > n then b = n end
    if b - a >= SMALL then charge_bytes(b - a + 1) end
  end
  return s_sub(s, i, j)
end

local function str_format(fmt, ...)
  local n = select("#", ...)
  local size = str_len(fmt)
  if n <= 16 then
    for i = 1, n do
      local v = select(i, ...)
      size = size + (type(v) == "string" and #v or 512)
    end
  else
    local args = { ... }
    for i = 1, n do
      local v = args[i]
      size = size + (type(v) == "string" and #v or 512)
    end
  end
  if size > SMALL then
    reserve(size)
    charge_bytes(size)
  end
  return s_format(fmt, ...)
end

-- Literal length and capture references (%0-%9) of a gsub replacement.
local function repl_shape(repl)
  local lit, refs = #repl, nil
  for c in s_gmatch(repl, "%%(.)") do
    local d = s_byte(c) - 48
    if d >= 0 and d <= 9 then
      lit = lit - 2
      refs = refs or {}
      refs[#refs + 1] = d
    else
      lit = lit - 1
    end
  end
  return lit, refs
end

-- The exact size of gsub's result with a string replacement (an upper
-- bound when %0 is used with captures): a matching pass without output.
local function gsub_size(s, pat, repl, max_n, ls)
  local lit, refs = repl_shape(repl)
  local nref = refs and #refs or 0
  local total = ls
  s_gsub(s, pat, function(...)
    check()
    local add = lit
    for k = 1, nref do
      local d = refs[k]
      if d == 0 then
        add = add + ls
      else
        add = add + str_len((select(d, ...)))
      end
    end
    total = total + add
  end, max_n)
  return total
end

local function str_gsub(s, pat, repl, max_n)
  if not is_active() then return s_gsub(s, pat, repl, max_n) end
  local ls = str_len(s)
  if ls > SMALL then charge_bytes(ls) end
  local tr = type(repl)
  if tr == "string" then
    -- Worst case: a match at every position, every reference the subject.
    local lr = #repl
    local _, nrefs = s_gsub(repl, "%%%d", "")
    local bound = ls + (ls + 1) * (lr + nrefs * ls)
    if bound > SMALL and bound > headroom() then
      reserve(gsub_size(s, pat, repl, max_n, ls))
    end
    return s_gsub(s, pat, repl, max_n)
  elseif tr == "function" then
    return s_gsub(s, pat, function(...)
      local v = repl(...)
      if type(v) == "string" then charge_bytes(#v) end
      return v
    end, max_n)
  elseif tr == "table" then
    -- The same lookup gsub does (first capture or whole match, honouring
    -- __index), charged for what it returns.
    return s_gsub(s, pat, function(k)
      local v = repl[k]
      if type(v) == "string" then charge_bytes(#v) end
      return v
    end, max_n)
  end
  return s_gsub(s, pat, repl, max_n)
end

-- The string functions plugins get (as `string` and as string methods).
local safe_string = {}
for k, v in pairs(string) do
  if k ~= "dump" then safe_string[k] = v end
end
safe_string.rep = str_rep
safe_string.sub = str_sub
safe_string.format = str_format
safe_string.gsub = str_gsub
safe_string.upper = sized_result(string.upper)
safe_string.lower = sized_result(string.lower)
safe_string.reverse = sized_result(string.reverse)
safe_string.find = sized(string.find)
safe_string.match = sized(string.match)
safe_string.gmatch = sized(string.gmatch)

local function refuse_readonly(t, name)
  if shadow_of[t] then
    error("bad argument #1 to '" .. name .. "' (read-only table)", 3)
  end
end

local function tbl_concat(t, sep, i, j)
  local src = shadow_of[t] or t
  if type(src) == "table" and (i == nil or type(i) == "number")
      and (j == nil or type(j) == "number") then
    local first, last = i or 1, j or #src
    local size, n = 0, 0
    for k = first, last do
      local v = rawget(src, k)     -- as concat reads: no metamethods
      local tv = type(v)
      if tv == "string" then size = size + #v
      elseif tv == "number" then size = size + 24
      else break end     -- concat itself raises there
      n = n + 1
    end
    if n > 1 then size = size + str_len(sep) * (n - 1) end
    if size > SMALL then
      reserve(size)
      charge_bytes(size)
    end
  end
  return t_concat(src, sep, i, j)
end

local function tbl_insert(t, ...)
  refuse_readonly(t, "insert")
  if select("#", ...) == 2 and type(t) == "table" then
    local pos = ...
    if type(pos) == "number" then
      local moved = #t - pos
      if moved > SMALL then charge(moved) end
    end
  end
  return t_insert(t, ...)
end

local function tbl_remove(t, pos)
  refuse_readonly(t, "remove")
  if type(pos) == "number" and type(t) == "table" then
    local moved = #t - pos
    if moved > SMALL then charge(moved) end
  end
  return t_remove(t, pos)
end

local function tbl_sort(t, cmp)
  refuse_readonly(t, "sort")
  if type(t) == "table" then
    local n = #t
    if n > 256 then charge(n * log(n) * 1.5) end
  end
  return t_sort(t, cmp)
end

local function tbl_move(a1, f, e, t, a2)
  local dest = a2
  if dest == nil then dest = a1 end
  refuse_readonly(dest, "move")
  if type(f) == "number" and type(e) == "number" and e - f > SMALL then
    reserve((e - f) * 16)
    charge(e - f)
  end
  return t_move(shadow_of[a1] or a1, f, e, t, a2)
end

local function reader(fn)
  return function(t, ...)
    return fn(shadow_of[t] or t, ...)
  end
end

local function sb_foreach(t, f)
  local src = shadow_of[t] or t
  if type(src) ~= "table" then return t_foreach(src, f) end
  for k, v in next, src do
    local r = f(k, v)
    if r ~= nil then return r end
  end
end

local function sb_foreachi(t, f)
  local src = shadow_of[t] or t
  if type(src) ~= "table" then return t_foreachi(src, f) end
  for i = 1, #src do
    local r = f(i, src[i])
    if r ~= nil then return r end
  end
end

local safe_table = {
  concat = tbl_concat, insert = tbl_insert, remove = tbl_remove,
  sort = tbl_sort, move = t_move and tbl_move or nil,
  getn = reader(table.getn), maxn = reader(table.maxn),
  foreach = sb_foreach, foreachi = sb_foreachi,
}

---------------------------------------------------------------------------
-- Hardening the VM.

local installed = false

-- install() makes the string metatable, shared by all code in the VM,
-- safe: its method table becomes a read-only table of the budget-aware
-- string functions (no dump), which also carries the budget check that
-- instrumented chunks read (budget.PREFIX); getmetatable("") returns false.
-- Idempotent; load() calls it.
function M.install()
  if installed then return end
  local methods = {}
  for k, v in pairs(safe_string) do methods[k] = v end
  methods[budget.NAME] = check
  local mt = debug.getmetatable("")
  mt.__index = readonly(methods)
  mt.__metatable = false
  installed = true
end

---------------------------------------------------------------------------
-- Loading.

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function compile(text, chunkname, env)
  if #text > SMALL then charge_bytes(#text) end
  -- Compile the text as written first: syntax errors then name the
  -- plugin's own lines and tokens, and bytecode is refused (mode "t").
  local fn, err = load(text, chunkname, "t", env)
  if not fn then return nil, err end
  local code
  code, err = budget.instrument(text, chunkname)
  if not code then return nil, err end
  return load(code, chunkname, "t", env)
end

local function make_require(opts)
  local allowed = {}
  for _, name in ipairs(opts.require or {}) do allowed[name] = true end
  local modules = opts.modules or {}
  local cache = {}
  return function(name)
    if type(name) ~= "string" then
      error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
    end
    local v = cache[name]
    if v ~= nil then return v end
    if modules[name] ~= nil then
      v = modules[name]
    elseif allowed[name] then
      local ok, mod = pcall(require, name)
      if is_tripped() then rethrow() end
      if not ok then
        error("module '" .. name .. "' failed to load: " .. tostring(mod), 2)
      end
      v = mod
    else
      error("module '" .. name .. "' is not allowed in the sandbox", 2)
    end
    v = readonly(v)
    cache[name] = v
    return v
  end
end

local function make_load(env)
  return function(chunk, chunkname, mode, fenv)
    if type(chunk) == "function" then
      local parts, n = {}, 0
      while true do
        check()
        local piece = chunk()
        if piece == nil or piece == "" then break end
        if type(piece) ~= "string" then
          return nil, "reader function must return a string"
        end
        n = n + 1
        parts[n] = piece
      end
      chunk = tbl_concat(parts)
    elseif type(chunk) ~= "string" then
      error("bad argument #1 to 'load' (string expected, got " .. type(chunk) .. ")", 2)
    end
    if mode ~= nil and (type(mode) ~= "string" or not s_find(mode, "t", 1, true)) then
      return nil, "attempt to load a text chunk (mode is '" .. tostring(mode) .. "')"
    end
    if chunkname == nil then
      chunkname = "=(load)"
    elseif type(chunkname) ~= "string" then
      error("bad argument #2 to 'load' (string expected, got " .. type(chunkname) .. ")", 2)
    end
    if fenv ~= nil and type(fenv) ~= "table" then
      error("bad argument #4 to 'load' (table expected, got " .. type(fenv) .. ")", 2)
    end
    return compile(chunk, chunkname, fenv or env)
  end
end

-- new_env(opts) returns a fresh environment table (see the top of the file
-- for what it holds), opts as for load().
function M.new_env(opts)
  opts = opts or {}
  local env = {
    assert = assert, error = error, ipairs = sb_ipairs, next = sb_next,
    pairs = sb_pairs, pcall = sb_pcall, xpcall = sb_xpcall, select = select,
    tonumber = tonumber, tostring = tostring, type = type, unpack = sb_unpack,
    rawequal = rawequal, rawget = sb_rawget, rawset = sb_rawset,
    setmetatable = setmetatable, getmetatable = sb_getmetatable,
    collectgarbage = sb_collectgarbage, _VERSION = _VERSION,
    string = copy(safe_string),
    table = copy(safe_table),
    math = copy(math),
    bit = copy(bit),
    os = { time = os.time, clock = os.clock, date = os.date },
    coroutine = {
      create = sb_create, resume = sb_resume, yield = sb_yield,
      status = co_status, wrap = sb_wrap, running = sb_running,
      isyieldable = sb_isyieldable,
    },
  }
  env._G = env
  local sb_load = make_load(env)
  env.require = make_require(opts)
  env.load = sb_load
  env.loadstring = function(s, chunkname)
    if type(s) ~= "string" then
      error("bad argument #1 to 'loadstring' (string expected, got " .. type(s) .. ")", 2)
    end
    return sb_load(s, chunkname)
  end
  for k, v in pairs(opts.globals or {}) do env[k] = v end
  return env
end

-- load(source, chunkname, opts) compiles plugin source text into a fresh
-- sandbox environment, instrumented for budgets. chunkname is a file name
-- (errors read "name:line: ..."; a leading "@" or "=" is kept as given).
-- opts: require = { module names the plugin may require; each is loaded
-- by the host's require and handed out read-only }, modules = { name =
-- value handed out by require(name), tables read-only }, globals = { extra
-- globals, as given: pass API tables through readonly() }.
-- Returns the chunk's function and its environment, or nil and an error
-- message (syntax error, bytecode, reserved identifier). Run the function
-- under budget.run().
function M.load(source, chunkname, opts)
  if type(source) ~= "string" then
    error("sandbox.load: source must be a string, got " .. type(source), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("sandbox.load: opts must be a table", 2)
  end
  M.install()
  chunkname = tostring(chunkname or "plugin")
  local c = s_byte(chunkname)
  if c ~= 64 and c ~= 61 then chunkname = "@" .. chunkname end
  local env = M.new_env(opts)
  local fn, err = compile(source, chunkname, env)
  if not fn then return nil, err end
  return fn, env
end

return M
