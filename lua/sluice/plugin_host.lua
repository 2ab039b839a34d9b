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
--     request key (a number unique among the worker's live requests):
--     0 continue, 1 respond (sluice.response.exit), -1 error (message and
--     traceback), -2 budget exceeded (message)
--   host.done(key): the request is over; drops its ctx table
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
local ctxs = {}         -- request key -> the plugin's ctx table
local nctx = 0

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
  if body ~= nil then
    if type(body) ~= "table" then
      return nil, who .. ": 'body' must be a table such as { request = true }"
    end
    for k, bv in next, body do
      if (k ~= "request" and k ~= "response") or type(bv) ~= "boolean" then
        return nil, who .. ": 'body' takes only request = true|false and response = true|false"
      end
    end
  end
  for name, fv in next, p do
    if type(fv) == "function" and PHASE_OF[name] == nil and name ~= "init" then
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


--- load(spec) -> meta, or nil and a message.
function M.load(spec)
  if conf ~= nil then error("plugin_host.load: this VM already holds a plugin", 2) end
  base.plugin_name = spec.name or "?"
  local chunk, err = sandbox.load(spec.source, spec.file, plugin_env_opts())
  if not chunk then return nil, err end
  local ok, p, msg = run(chunk, load_limits(spec))
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
    end
  end
  local body = f.body or {}
  base.body_request = body.request == true or f.request_body ~= nil
  base.body_response = body.response == true or f.response_body ~= nil
  limits = { timeout_ms = spec.timeout_ms, memory_limit_mb = spec.memory_limit_mb }

  if f.init then
    base.phase = base.INIT
    ok, p, msg = run(f.init, load_limits(spec), conf)
    base.phase = nil
    if not ok then return nil, tostring(msg) .. " (in init)" end
  end
  return {
    name = f.name,
    version = f.version ~= nil and tostring(f.version) or nil,
    priority = f.priority,
    phases = phases,
    body = (base.body_request and 1 or 0) + (base.body_response and 2 or 0),
  }
end

local EXIT = base.EXIT

--- call(phase, key) -> code[, message]; see the top of the file.
function M.call(phase, key)
  local fn = fns[phase]
  if fn == nil then return 0 end
  local ctx = ctxs[key]
  if ctx == nil then
    ctx = {}
    ctxs[key] = ctx
    nctx = nctx + 1
  end
  base.phase = phase
  base.exited = false
  local ok, kind, msg, tb = run(fn, limits, conf, ctx)
  base.phase = nil
  if ok then
    if base.exited then return 1 end
    return 0
  end
  if kind == "error" then
    if base.exited and msg == EXIT then return 1 end
    if tb then return -1, msg .. "\n" .. tb end
    return -1, msg
  end
  if kind == "memory" and not find(msg, "budget exceeded", 1, true) then
    -- LuaJIT's own allocation failure: the VM's heap reached its hard cap
    -- (src/lua_vm.c) between two budget checks.
    msg = "budget exceeded: memory (" .. tostring(limits.memory_limit_mb) .. " MB): " .. msg
  end
  return -2, msg
end

--- done(key): drops the ctx table of request key.
function M.done(key)
  if ctxs[key] ~= nil then
    ctxs[key] = nil
    nctx = nctx - 1
  end
end

--- live() -> the number of requests holding a ctx table (for tests and
--- leak checks).
function M.live()
  return nctx
end

return M
