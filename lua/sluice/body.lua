-- lua/sluice/body.lua: get_body/set_body, built once per side for
-- sluice.request and sluice.response. Internal (not handed to plugins).
--
-- The phase sets given to make() are the broad ones (the hooks where a
-- call may make sense); the core (src/api.c) knows where the body really
-- is: readable from its own body phase on (request_body for the request,
-- response_body for the response), replaceable only during it. A body that
-- was never buffered (the request was answered before its body was read)
-- reads as nil in the phases after its body phase.

local base = require "sluice.base"

local C = base.C
local ffi_string = base.string
local pp, pn = base.pp, base.pn
local check_phase, arg_error, fail = base.check_phase, base.arg_error, base.fail
local OK, NOT_FOUND, EPHASE = base.OK, base.NOT_FOUND, base.EPHASE
local get_phase = base.get_phase

local type, error = type, error

local M = {}

--- make(side, prefix, which, get_phases, set_phases) -> get_body, set_body.
--- which is "request" or "response": the body = { which = true }
--- declaration the plugin needs (read when called, as base learns it at load).
function M.make(side, prefix, which, get_phases, set_phases)
  local n_get, n_set = prefix .. ".get_body", prefix .. ".set_body"
  local flag = "body_" .. which
  local body_phase = which == "request" and base.REQUEST_BODY or base.RESPONSE_BODY

  local function need_body(fname)
    if not base[flag] then
      error(fname .. ": the plugin must declare body = { " .. which .. " = true }", 3)
    end
  end

  --- get_body() -> the whole body ("" when empty), from the side's body
  --- phase on; nil after it when the body was never buffered.
  local function get_body()
    check_phase(get_phases, n_get)
    need_body(n_get)
    local rc = C.sl_ffi_body_get(side, pp, pn)
    if rc == NOT_FOUND then return "" end
    if rc == EPHASE and get_phase() > body_phase then return nil end
    if rc ~= OK then return fail(n_get, rc) end
    return ffi_string(pp[0], pn[0])
  end

  --- set_body(s): replaces the body (Content-Length follows), during the
  --- side's body phase.
  local function set_body(s)
    check_phase(set_phases, n_set)
    need_body(n_set)
    if type(s) ~= "string" then arg_error(n_set, 1, "string", s) end
    local rc = C.sl_ffi_body_set(side, s, #s)
    if rc ~= OK then return fail(n_set, rc) end
    return true
  end

  return get_body, set_body
end

return M
