-- lua/sluice/log.lua: sluice.log, lines in sluice's error log prefixed
-- with "plugin NAME:" and, during a request, followed by its id. The
-- arguments are turned into strings (tostring) and joined without a
-- separator, like ngx.log; nothing is formatted when the level is off.

local base = require "sluice.base"

local C = base.C
-- Upvalues of their own: constants in a trace (C.name is a guarded lookup).
local log_enabled, log_line = C.sl_ffi_log_enabled, C.sl_ffi_log

local select, tostring, type = select, tostring, type
local concat = table.concat

local M = {}

-- Levels of src/config-t.h (enum sl_log_level).
local ERR, WARN, INFO, DEBUG = 0, 1, 2, 3

local parts = {}

local function emit(level, ...)
  if log_enabled(level) == 0 then return end
  local n = select("#", ...)
  local msg
  if n == 1 then
    msg = ...
    if type(msg) ~= "string" then msg = tostring(msg) end
  else
    for i = 1, n do
      local v = select(i, ...)
      parts[i] = type(v) == "string" and v or tostring(v)
    end
    msg = concat(parts, "", 1, n)
    for i = 1, n do parts[i] = nil end
  end
  log_line(level, base.plugin_name, msg, #msg)
end

--- err(...), warn(...), info(...), debug(...): one log line at that level.
function M.err(...) return emit(ERR, ...) end
function M.warn(...) return emit(WARN, ...) end
function M.info(...) return emit(INFO, ...) end
function M.debug(...) return emit(DEBUG, ...) end

--- set_field(key, value): adds key to this request's access-log record
--- ("fields" in JSON lines, key="value" in text), or replaces its value;
--- nil removes it. Numbers and booleans are written as text. key: 1 to 64
--- letters, digits, '_', '-' or '.'; value: at most 4096 bytes; at most 32
--- fields per request. Any phase, log included.
function M.set_field(key, value)
  base.check_phase(base.IN_REQUEST, "sluice.log.set_field")
  if type(key) ~= "string" then base.arg_error("sluice.log.set_field", 1, "string", key) end
  local rc
  if value == nil then
    rc = C.sl_ffi_log_set_field(key, #key, nil, 0)
  else
    local tv = type(value)
    if tv == "number" or tv == "boolean" then
      value = tostring(value)
    elseif tv ~= "string" then
      base.arg_error("sluice.log.set_field", 2, "string, number, boolean or nil", value)
    end
    rc = C.sl_ffi_log_set_field(key, #key, value, #value)
  end
  if rc == base.OK or rc == base.NOT_FOUND then return true end
  return base.fail("sluice.log.set_field", rc,
    "field (key: 1 to 64 letters, digits, '_', '-' or '.'; value: at most 4096 bytes; at most 32 fields)")
end

local LEVELS = { err = ERR, error = ERR, warn = WARN, info = INFO, debug = DEBUG }

--- is_enabled(level) -> whether lines at level ("err", "warn", "info",
--- "debug") are written; lets a plugin skip building a costly message.
function M.is_enabled(level)
  local l = LEVELS[level]
  if l == nil then
    error("sluice.log.is_enabled: bad argument #1 (one of err, warn, info, debug expected)", 2)
  end
  return log_enabled(l) ~= 0
end

return M
