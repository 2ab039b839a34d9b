-- lua/sluice/time.lua: sluice.time.

local base = require "sluice.base"

local C = base.C

local M = {}

--- now() -> wall-clock time in milliseconds since the epoch (a number).
--- During a request it is the worker's cached clock, read once per event
--- loop iteration, so it does not move while a hook runs.
function M.now()
  return C.sl_ffi_now_ms()
end

--- monotonic_ms() -> milliseconds on a clock that never jumps (wall
--- clock changes do not move it), with a fraction (microseconds); the same
--- clock in every worker. For measuring intervals; its zero is arbitrary.
function M.monotonic_ms()
  return C.sl_ffi_monotonic_ms()
end

return M
