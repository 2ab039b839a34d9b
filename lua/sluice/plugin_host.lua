-- lua/sluice/plugin_host.lua: the dispatcher of one plugin VM. Each VM
-- holds one plugin instance (one per worker, plus a throwaway one at load
-- for validation); src/lua_vm.c requires this module and calls:
--
--   host.load(spec) -> meta, or nil and a message (one line per problem)
--     spec = { source = text, file = path, name = configured name,
--              config = tree, positions = tree, config_file = path,
--              has_priority = bool, timeout_ms = n, memory_limit_mb = n }
--     meta = { name, version, priority (nil if unset), phases (bit 1 <<
--              phase for each hook), body (bit 1 request, 2 response) }
--   host.call(phase, key) -> code[, message]: runs one hook for the
--     request key (a value unique among the worker's live requests):
--     0 continue, 1 respond (sluice.response.exit), -1 error (message and
--     traceback), -2 budget exceeded (message; the hook callers below add
--     true after it for a memory kill, after which C closes the VM)
--   host.done(key): the request is over; drops its ctx table
--
-- The hot path of src/lua_plugin.c uses leaner forms of these, all set up
-- once per VM: host.hooks()[phase]([slot]) is call() for one phase
-- without the memory check at return (C reads the heap's size itself and
-- calls host.check_memory() when it is near the limit), answering by its
-- number of results (none: continue); the key is a small integer slot,
-- passed only to hooks that read their ctx argument (host.ctx_phases(),
-- from the hook's bytecode: most never touch it, and then no table is
-- made); C clears host.ctx_slots[slot] itself when the request ends.
-- host.dispatch(phase[, slot]) is the same with the phase as an argument
-- and dispatch()'s codes. With budget.runner() the hook caller, the
-- budget and a short hook compile into one trace.
--
-- Loading: the source is compiled as text into a fresh sandbox (no ffi,
-- io, debug, ...) with budget checks inserted, then run under a budget;
-- it must return the plugin table. Its fields are read, its schema
-- compiled, the configuration validated (defaults filled in) and guarded
-- against changes, and init(conf) run, all under budgets, so a plugin cannot
-- hang or bloat sluice while it loads.

local base = require "sluice.base"
local budget = require "sluice.budget"
local sandbox = require "sluice.sandbox"
local schema = require "sluice.schema"
local api = require "sluice"

local type, tostring, error, next, pairs, ipairs = type, tostring, error, next, pairs, ipairs
local setmetatable = setmetatable
local floor = math.floor
local find = string.find
local concat = table.concat

local run = budget.run

-- jit.util reads bytecode (ctx_param_used below); without it every hook
-- gets its ctx table.
local jutil
do
  local ok, m = pcall(require, "jit.util")
  if ok and type(m) == "table" and m.funcinfo and m.funcbc and m.funck and m.funcuvname then
    jutil = m
  end
end
local band, rshift = bit.band, bit.rshift
local getlocal = debug and debug.getlocal

-- LuaJIT counts calls and loops towards compiling in 64 counters shared by
-- hashing bytecode addresses. Loading runs the sandbox, the lexer and the
-- schema through them and leaves them part spent, so which function of
-- the hook path got hot first, and where its trace started, depended on
-- where the allocator had put the loader's bytecode: the cost of a hook
-- varied from VM to VM. Setting hotloop (to LuaJIT's default) resets
-- every counter, so the hooks' own path decides, the phase's caller first.
local reset_hotcounts = function() end
do
  local ok, opt = pcall(require, "jit.opt")
  if ok and type(opt) == "table" and type(opt.start) == "function" then
    reset_hotcounts = function() pcall(opt.start, "hotloop=56") end
  end
end

-- The C host opens a VM with the JIT off (src/lua_vm.c), so that setting
-- it up (the API's read-only views, the sandbox, the lexer, the schema)
-- runs once in the interpreter: those loops are run once per VM, and
-- compiling them cost more than it saved, and varied from VM to VM with
-- LuaJIT's randomised retry penalties. The plugin's own code (its chunk,
-- body(conf), init) runs with the JIT on, since it may loop for long.
-- with_jit(fn, ...) runs fn with the JIT on and turns it off again when
-- it was off; where jit.on is missing it only calls fn.
local with_jit
do
  local on, off = jit and jit.on, jit and jit.off
  if type(on) == "function" and type(off) == "function" then
    with_jit = function(fn, ...)
      local was = jit.status()
      on()
      local a, b, c = fn(...)
      if not was then off() end
      return a, b, c
    end
  else
    with_jit = function(fn, ...) return fn(...) end
  end
end

local M = {}

M.null = api.null

-- Phase names by number (enum sl_phase); the plugin's functions are
-- looked up by these names.
local PHASES = { [0] = "request_headers", "request_body", "balancer",
                 "response_headers", "response_body", "log" }
local PHASE_OF = {}
for i = 0, 5 do PHASE_OF[PHASES[i]] = i end

-- Names other proxies use, for a helpful message.
local HINTS = {
  access = "request_headers", rewrite = "request_headers",
  header_filter = "response_headers", body_filter = "response_body",
  init_worker = "init", preread = "request_headers",
}

local PRIORITY_MAX = 1000000

-- The plugin instance of this VM.
local conf = nil
local fns = {}          -- phase number -> function
local limits = nil      -- per hook call
local run_hook = nil    -- budget.runner(limits)
local ctx_phase = {}    -- phase number -> true when its hook reads its ctx argument
local ctx_phases = 0    -- the same as a bit mask (bit 1 << phase)
-- The plugin's ctx tables, by request slot: the C host (src/lua_plugin.c)
-- gives each live request whose hooks read their ctx a small integer slot
-- and clears the entry itself when the request ends (M.ctx_slots). Small
-- integers keep this in the array part: no hash to grow and rehash.
local ctx_slots = {}
M.ctx_slots = ctx_slots

-- Budgets for loading and init: generous next to a hook's (20 times,
-- at least a second), since loading compiles and init may build tables,
-- but still bounded. spec.load_timeout_ms overrides (tests).
local function load_limits(spec)
  local t = spec.load_timeout_ms or spec.timeout_ms
  if t and not spec.load_timeout_ms then
    t = t * 20
    if t < 1000 then t = 1000 end
  end
  return { timeout_ms = t, memory_limit_mb = spec.memory_limit_mb }
end

local function plugin_env_opts()
  local modules = { sluice = api }
  for k, v in pairs(api) do
    if type(v) == "table" then modules["sluice." .. k] = v end
  end
  return { modules = modules, globals = { sluice = sandbox.readonly(api) } }
end

-- The config a plugin gets is made of plain tables with a guard: adding a
-- key raises. Not sandbox.readonly(): its proxies answer `#` with 0 (LuaJIT
-- has no __len for tables), and `if #conf.allow > 0 then ... end` silently
-- skipping a check is worse than what the guard misses (changing an
-- existing key, table.insert, rawset: the plugin's own VM only, and a bug
-- in it).
local function refuse_write(_, k)
  error("attempt to modify the plugin config (field '" .. tostring(k) .. "')", 2)
end
local guard_mt = { __newindex = refuse_write, __metatable = false }

local function guard(t)
  if type(t) == "table" then
    for _, v in next, t do guard(v) end
    setmetatable(t, guard_mt)
  end
  return t
end

-- Reads the plugin table's fields (its metatable may run plugin code:
-- this runs under the budget).
local function read_fields(p)
  local f = {
    name = p.name, version = p.version, priority = p.priority, schema = p.schema,
    body = p.body, init = p.init, PRIORITY = p.PRIORITY,
  }
  for i = 0, 5 do f[PHASES[i]] = p[PHASES[i]] end
  return f
end

local function phase_list()
  local l = {}
  for i = 0, 5 do l[i + 1] = PHASES[i] end
  l[7] = "init"
  return concat(l, ", ")
end

-- The body declaration: nil when it is well-formed, else the message.
local function check_body(who, body)
  if type(body) ~= "table" then
    return who .. ": 'body' must be a table such as { request = true }, or a function(conf) "
           .. "returning one"
  end
  for k, bv in next, body do
    if (k ~= "request" and k ~= "response") or type(bv) ~= "boolean" then
      return who .. ": 'body' takes only request = true|false and response = true|false"
    end
  end
end

-- Checks the plugin table; returns the fields or nil, message.
local function check_plugin(spec, p)
  local file = spec.file
  if type(p) ~= "table" then
    return nil, file .. ": plugin must return a table with a 'name'"
  end
  local ok, f, msg = run(read_fields, load_limits(spec), p)
  if not ok then return nil, file .. ": reading the plugin table: " .. tostring(msg) end
  if type(f.name) ~= "string" or f.name == "" then
    return nil, file .. ": plugin must return a table with a 'name'"
  end
  local who = file .. ": plugin '" .. f.name .. "'"
  if f.name ~= spec.name then
    return nil, who .. ": the name does not match the name it is configured as ('"
                .. tostring(spec.name) .. "')"
  end
  local v = f.version
  if v ~= nil and type(v) ~= "string" and type(v) ~= "number" then
    return nil, who .. ": 'version' must be a string"
  end
  local pr = f.priority
  if pr == nil then
    if not spec.has_priority then
      return nil, who .. ": 'priority' must be set (an integer; higher runs first)"
                  .. (f.PRIORITY ~= nil and ", in lower case" or "")
    end
  elseif type(pr) ~= "number" or floor(pr) ~= pr or pr < -PRIORITY_MAX or pr > PRIORITY_MAX then
    return nil, who .. ": 'priority' must be an integer from -" .. PRIORITY_MAX .. " to "
                .. PRIORITY_MAX
  end
  local body = f.body
  if body ~= nil and type(body) ~= "function" then
    local e = check_body(who, body)
    if e then return nil, e end
  end
  for name, fv in next, p do
    if type(fv) == "function" and PHASE_OF[name] == nil and name ~= "init" and name ~= "body" then
      local hint = HINTS[name]
      return nil, who .. ": unknown phase function '" .. tostring(name) .. "'"
                  .. (hint and (" (sluice calls it '" .. hint .. "')") or "")
                  .. "; phases are " .. phase_list()
    end
  end
  for i = 0, 5 do
    local fv = f[PHASES[i]]
    if fv ~= nil and type(fv) ~= "function" then
      return nil, who .. ": '" .. PHASES[i] .. "' must be a function"
    end
  end
  if f.init ~= nil and type(f.init) ~= "function" then
    return nil, who .. ": 'init' must be a function"
  end
  return f
end

-- The position of the node at keys in the positions tree (the deepest
-- one known: a missing field points at its parent).
local function position_of(positions, keys)
  local pos = positions
  if not pos then return nil end
  for i = 1, #keys do
    local k = keys[i]
    local sub
    if type(k) == "number" then
      sub = pos.items and pos.items[k]
    else
      sub = pos.fields and pos.fields[k]
    end
    if not sub then break end
    pos = sub
  end
  return pos
end

local function format_config_errors(spec, errs)
  local lines = {}
  for i, e in ipairs(errs) do
    local pos = position_of(spec.positions, e.keys)
    local where = ""
    if spec.config_file then
      where = spec.config_file
      if pos and pos.line then where = where .. ":" .. pos.line .. ":" .. (pos.col or 1) end
      where = where .. ": "
    end
    lines[i] = where .. "plugin " .. spec.name .. ": " .. e.path .. ": " .. e.message
  end
  return concat(lines, "\n")
end

local function check_config(spec, f)
  -- Compiling reads plugin tables and may call its validators: budgeted.
  local ok, s, err = run(schema.compile, load_limits(spec), f.schema, "schema")
  if not ok then return nil, tostring(err) .. " (compiling the schema)" end
  if not s then return nil, spec.file .. ": plugin '" .. spec.name .. "': " .. err end
  local config = spec.config
  if config == nil then config = {} end
  local value, errs
  ok, value, errs = run(schema.validate, load_limits(spec), s, config, "config")
  if not ok then return nil, tostring(errs) .. " (checking the config)" end
  if not value then return nil, format_config_errors(spec, errs) end
  return value
end

-- Whether fn reads its second parameter, the ctx table: most hooks never
-- touch it, and a table per request per plugin (and dropping it when the
-- request ends) costs more than the rest of a short hook. Reads the
-- bytecode (jit.util): the parameter is slot 1, and the hook sees it only
-- through an instruction that names that slot, or through a closure that
-- captures it. Conservative: anything it cannot rule out (a vararg or
-- non-Lua function, a range of slots that may include slot 1, a closure
-- capturing a variable of the parameter's name, no debug names) counts as
-- a read. Bytecode modes are those of lj_bc.h: 1 dst, 2 base, 3 var,
-- 4 rbase, 12 func.
local OP_RET1, OP_RET, OP_FNEW
if jutil then
  -- The opcodes, from the first instruction of functions that start with them.
  local function first_op(f)
    local ok, ins = pcall(jutil.funcbc, f, 1)
    return ok and type(ins) == "number" and band(ins, 0xff) or nil
  end
  OP_RET1 = first_op(function(a) return a end)
  OP_RET = first_op(function(a, b) return a, b end)
  OP_FNEW = first_op(function() return function() end end)
  if not (OP_RET1 and OP_RET and OP_FNEW) then jutil = nil end
end

local function ctx_param_used(fn)
  if not jutil or not getlocal then return true end
  local ok, info = pcall(jutil.funcinfo, fn)
  if not ok or type(info) ~= "table" or not info.bytecodes or info.isvararg then
    return true                   -- a C function, or one that sees its arguments as ...
  end
  if info.params < 2 then return false end
  local name = getlocal(fn, 2)
  if type(name) ~= "string" then return true end
  local S = 1                     -- the slot of the second parameter
  for pc = 1, info.bytecodes - 1 do
    local ins, m = jutil.funcbc(fn, pc)
    if not ins then return true end
    local op = band(ins, 0xff)
    local a = band(rshift(ins, 8), 0xff)
    local ma, mb, mc = band(m, 7), band(rshift(m, 3), 15), band(rshift(m, 7), 15)
    local b = rshift(ins, 24)
    local c = mb ~= 0 and band(rshift(ins, 16), 0xff) or rshift(ins, 16)   -- C, or D
    if ma == 4 then
      -- rbase: RET* name the slots they return; the others (UCLO, JMP,
      -- LOOP, FUNC*) read no slot (the FNEW that made upvalues is checked)
      if (op == OP_RET1 and a == S) or (op == OP_RET and a <= S and S <= a + c - 2) then
        return true
      end
    elseif op == OP_FNEW then
      if a == S then return true end
      local proto = jutil.funck(fn, -c - 1)
      local pinfo = proto and jutil.funcinfo(proto)
      if type(pinfo) ~= "table" then return true end
      for i = 0, (pinfo.upvalues or 0) - 1 do
        local uv = jutil.funcuvname(proto, i)
        if uv == nil or uv == name or uv == "" then return true end
      end
    else
      -- dst or var: that slot; base: the slots from there up
      if (ma == 1 or ma == 3) and a == S then return true end
      -- (TSETM's table, the slot below A, is one a TNEW or TDUP made)
      if ma == 2 and a <= S then return true end
      -- B and C (or D): var names one slot; a range (CAT's B..C, KNIL's
      -- A..D) starts at B or A, checked above
      if (mb == 3 and b == S) or (mb == 4 and b <= S) or (mc == 3 and c == S) then
        return true
      end
    end
  end
  return false
end
M.reads_ctx = ctx_param_used    -- for the specs

--- load(spec) -> meta, or nil and a message.
function M.load(spec)
  if conf ~= nil then error("plugin_host.load: this VM already holds a plugin", 2) end
  base.plugin_name = spec.name or "?"
  local chunk, err = sandbox.load(spec.source, spec.file, plugin_env_opts())
  if not chunk then return nil, err end
  local ok, p, msg = with_jit(run, chunk, load_limits(spec))
  if not ok then return nil, tostring(msg) .. " (while loading)" end
  local f
  f, err = check_plugin(spec, p)
  if not f then return nil, err end
  local value
  value, err = check_config(spec, f)
  if not value then return nil, err end
  conf = guard(value)

  local phases = 0
  for i = 0, 5 do
    if f[PHASES[i]] then
      fns[i] = f[PHASES[i]]
      phases = phases + 2 ^ i
      if ctx_param_used(fns[i]) then
        ctx_phase[i] = true
        ctx_phases = ctx_phases + 2 ^ i
      end
    end
  end
  local body = f.body or {}
  if type(body) == "function" then
    -- What the plugin needs depends on its config (a transform with
    -- nothing to do on one side need not buffer that side's bodies): the
    -- answer alone counts, whatever hooks the plugin has.
    ok, body, msg = with_jit(run, body, load_limits(spec), conf)
    if not ok then return nil, tostring(msg) .. " (in body)" end
    local e = check_body(spec.file .. ": plugin '" .. f.name .. "'", body)
    if e then return nil, e .. " (returned by body(conf))" end
    base.body_request = body.request == true
    base.body_response = body.response == true
  else
    base.body_request = body.request == true or f.request_body ~= nil
    base.body_response = body.response == true or f.response_body ~= nil
  end
  limits = { timeout_ms = spec.timeout_ms, memory_limit_mb = spec.memory_limit_mb }
  -- The C host checks the heap at return itself (it knows the heap's
  -- size without asking the VM) and calls check_memory() when it is over.
  run_hook = budget.runner(limits, false)

  if f.init then
    base.enter(base.INIT)
    ok, p, msg = with_jit(run, f.init, load_limits(spec), conf)
    base.leave()
    if not ok then return nil, tostring(msg) .. " (in init)" end
  end
  reset_hotcounts()
  return {
    name = f.name,
    version = f.version ~= nil and tostring(f.version) or nil,
    priority = f.priority,
    phases = phases,
    body = (base.body_request and 1 or 0) + (base.body_response and 2 or 0),
  }
end

local EXIT = base.EXIT
local enter, leave = base.enter, base.leave

-- failed(kind, msg, tb, exited) -> the host's answer for a run that did
-- not return normally: 1 for a local reply that ended the hook with an
-- error (sluice.response.exit; exited is what base.exited said), else -1
-- or -2 and the message, and true after them for a memory kill: the C
-- host then closes this VM (what the plugin kept may be what filled it,
-- and the kill unwound the hook mid-change) and the worker's next call
-- runs in a fresh one. A timeout keeps the VM.
local function failed(kind, msg, tb, exited)
  if kind == "error" then
    if exited and msg == EXIT then return 1 end
    if tb then return -1, msg .. "\n" .. tb end
    return -1, msg
  end
  if kind == "memory" then
    if not find(msg, "budget exceeded", 1, true) then
      -- LuaJIT's own allocation failure: the VM's heap reached its hard
      -- cap (src/lua_vm.c) between two budget checks.
      msg = "budget exceeded: memory (" .. tostring(limits.memory_limit_mb) .. " MB): " .. msg
    end
    return -2, msg, true
  end
  return -2, msg
end

-- dispatch(phase, slot) -> code[, message[, true]]: call() for the C host
-- (src/lua_plugin.c), without the memory check at return (the host calls
-- check_memory() when its heap is over the limit). slot is the request's
-- ctx slot, only for a phase whose hook reads its ctx (ctx_phases()); the
-- host passes nothing to the others. One result in the common case, so
-- that the host reads little.
local function dispatch(phase, slot)
  local fn = fns[phase]
  if fn == nil then return 0 end
  local ctx = nil
  if ctx_phase[phase] then
    ctx = ctx_slots[slot]
    if ctx == nil then
      ctx = {}
      ctx_slots[slot] = ctx
    end
  end
  base.exited = false
  enter(phase)
  local ok, kind, msg, tb = run_hook(fn, conf, ctx)
  local exited = leave()
  if ok then
    if exited then return 1 end
    return 0
  end
  return failed(kind, msg, tb, exited)
end
M.dispatch = dispatch

-- hook(phase) -> the function the C host calls for that phase, bound to
-- the plugin's hook: dispatch() with the phase, the hook and whether it
-- reads its ctx fixed in upvalues (constants in the trace), and the
-- answer told by the number of results, which C reads without converting
-- a value: none to continue, one (1) for a local reply, two (code,
-- message) for a failure, as dispatch() codes them, three (-2, message,
-- true) for a memory kill (see failed()). Takes the request's ctx slot,
-- only when the hook reads its ctx.
--
-- base.exited is false whenever no hook runs: base.leave(), which every
-- caller (and dispatch) calls when its hook returns, puts it back, so no
-- store is needed before the hook. enter() and leave() write an upvalue
-- of base (the phase's bit): a store each, and leave() loads exited.
-- Each phase's caller is a prototype of its own (the template is compiled
-- once per phase), so that each gets a root trace of its own instead of
-- running as a side trace behind another phase's entry.
local HOOK_SOURCE = [[
local enter, leave, run_hook, failed, ctx_slots, fn, conf, reads_ctx, phase = ...
return function(slot)
  local ctx = nil
  if reads_ctx then
    ctx = ctx_slots[slot]
    if ctx == nil then
      ctx = {}
      ctx_slots[slot] = ctx
    end
  end
  enter(phase)
  local ok, kind, msg, tb = run_hook(fn, conf, ctx)
  local exited = leave()
  if ok and not exited then return end
  if ok then return 1 end
  return failed(kind, msg, tb, exited)
end
]]

local function hook(phase)
  local fn = fns[phase]
  if fn == nil then return nil end
  local make = assert(loadstring(HOOK_SOURCE, "=plugin_host.lua: " .. PHASES[phase] .. " caller"))
  return make(enter, leave, run_hook, failed, ctx_slots, fn, conf, ctx_phase[phase] == true, phase)
end

--- hooks() -> { [phase] = function } for the phases the plugin has (see
--- hook() above); the C host keeps them on the VM's stack.
function M.hooks()
  local t = {}
  for i = 0, 5 do t[i] = hook(i) end
  return t
end

--- check_memory() -> nil, or the message of the memory kill when the VM
--- holds more than the plugin's memory_limit_mb after a full collection:
--- the check at the return of a hook that continued or responded.
function M.check_memory()
  local mb = limits and limits.memory_limit_mb
  if mb == nil then return nil end
  return budget.memory_over(mb)
end

--- call(phase, key) -> code[, message]; see the top of the file. key
--- is any value naming the request (the C host uses small integers).
function M.call(phase, key)
  local code, msg = dispatch(phase, key)
  if code >= 0 then
    local over = M.check_memory()
    if over then return -2, over end
  end
  if msg ~= nil then return code, msg end
  return code
end

--- done(key): drops the ctx table of request key. Returns true when
--- there was one. (The C host clears ctx_slots itself.)
function M.done(key)
  if key ~= nil and ctx_slots[key] ~= nil then
    ctx_slots[key] = nil
    return true
  end
  return false
end

--- ctx_phases() -> bit (1 << phase) for each hook that reads its ctx
--- argument; the others get nil and need no request key.
function M.ctx_phases()
  return ctx_phases
end

--- live() -> the number of requests holding a ctx table (for tests and
--- leak checks).
function M.live()
  local n = 0
  for _ in next, ctx_slots do n = n + 1 end
  return n
end

return M
