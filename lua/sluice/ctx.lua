-- lua/sluice/ctx.lua: sluice.ctx, the per-request space every plugin of a
-- request shares, Lua and native alike (sl_api_ctx_*). Values are strings:
-- each Lua plugin runs in its own VM, so a Lua table could not cross. A
-- plugin's private per-request table is the ctx argument of its hooks.

local base = require "sluice.base"

local C = base.C
local ffi_string = base.string
local pp, pn = base.pp, base.pn
local check_phase, arg_error, fail = base.check_phase, base.arg_error, base.fail
local OK, NOT_FOUND = base.OK, base.NOT_FOUND
local IN_REQUEST = base.IN_REQUEST

local type, tostring = type, tostring
-- Upvalues of their own: constants in a trace (C.name is a guarded lookup).
local ctx_get, ctx_set = C.sl_ffi_ctx_get, C.sl_ffi_ctx_set

local M = {}

local n_get = "sluice.ctx.get"
local n_set = "sluice.ctx.set"

--- get(key) -> the string stored under key for this request, or nil.
function M.get(key)
  check_phase(IN_REQUEST, n_get)
  if type(key) ~= "string" then arg_error(n_get, 1, "string", key) end
  local rc = ctx_get(key, #key, pp, pn)
  if rc == OK then return ffi_string(pp[0], pn[0]) end
  if rc == NOT_FOUND then return nil end
  return fail(n_get, rc)
end

--- set(key, value): stores a string (a number is turned into one) under
--- key for the rest of this request; nil removes the key. Returns true.
function M.set(key, value)
  check_phase(IN_REQUEST, n_set)
  if type(key) ~= "string" then arg_error(n_set, 1, "string", key) end
  local rc
  if value == nil then
    rc = ctx_set(key, #key, nil, 0)
    if rc == NOT_FOUND then return true end
  else
    if type(value) == "number" then value = tostring(value) end
    if type(value) ~= "string" then arg_error(n_set, 2, "string, number or nil", value) end
    rc = ctx_set(key, #key, value, #value)
  end
  if rc ~= OK then return fail(n_set, rc) end
  return true
end

return M
