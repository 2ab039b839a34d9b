-- lua/sluice/time.lua: sluice.time.

local base = require "sluice.base"

local C = base.C
-- Upvalues of their own: constants in a trace (C.name is a guarded lookup).
local now_ms, monotonic_ms = C.sl_ffi_now_ms, C.sl_ffi_monotonic_ms

local M = {}

--- now() -> wall-clock time in milliseconds since the epoch (a number).
--- During a request it is the worker's cached clock, read once per event
--- loop iteration, so it does not move while a hook runs.
function M.now()
  return now_ms()
end

--- monotonic_ms() -> milliseconds on a clock that never jumps (wall
--- clock changes do not move it), with a fraction (microseconds); the same
--- clock in every worker. For measuring intervals; its zero is arbitrary.
function M.monotonic_ms()
  return monotonic_ms()
end

return M
