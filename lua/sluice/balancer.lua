-- lua/sluice/balancer.lua: sluice.balancer, where the request goes: the
-- upstream it is routed to and, optionally, which of that upstream's
-- backends takes it (OpenResty's ngx.balancer.set_current_peer, Kong's
-- kong.service.set_upstream / set_target, but only ever to what the
-- configuration lists). Every function works in the balancer phase only,
-- which runs once per request, after the request phases and before the
-- first connection attempt (src/api.h, "balancer").
--
-- Misuse (a non-string argument, another phase) raises; a name or
-- address the configuration does not have returns nil and a message, so
-- a plugin routing on client input can answer the request itself.

local base = require "sluice.base"

local C = base.C
local ffi_string = base.string
local pp, pn = base.pp, base.pn
local check_phase, arg_error, fail = base.check_phase, base.arg_error, base.fail
local OK, NOT_FOUND = base.OK, base.NOT_FOUND
local BALANCER_PHASE = base.BALANCER_PHASE

local type = type
local new_tab = require "table.new"

local weight_out = base.new("int[1]")
local cooldown_out = base.new("double[1]")

local M = {}

local n_upstream = "sluice.balancer.upstream"
local n_set_upstream = "sluice.balancer.set_upstream"
local n_backends = "sluice.balancer.backends"
local n_set_backend = "sluice.balancer.set_backend"

-- The current upstream's name (the C side has checked the phase already).
local function current_upstream(fname)
  local rc = C.sl_ffi_upstream_name(pp, pn)
  if rc ~= OK then return fail(fname, rc) end
  return ffi_string(pp[0], pn[0])
end

--- upstream() -> the name of the upstream the request goes to: the
--- route's, or the one set_upstream chose.
function M.upstream()
  check_phase(BALANCER_PHASE, n_upstream)
  return current_upstream(n_upstream)
end

--- set_upstream(name) -> true, or nil and a message when no upstream of
--- the configuration has that name (nothing changes). Drops a backend
--- chosen with set_backend when the upstream changes; the proxy then
--- balances over the new upstream's backends (retries included).
function M.set_upstream(name)
  check_phase(BALANCER_PHASE, n_set_upstream)
  if type(name) ~= "string" then arg_error(n_set_upstream, 1, "string", name) end
  local rc = C.sl_ffi_set_upstream(name, #name)
  if rc == OK then return true end
  if rc == NOT_FOUND then return nil, "no upstream named '" .. name .. "'" end
  return fail(n_set_upstream, rc, "upstream name")
end

--- backends() -> an array with one table per backend of the current
--- upstream, in configuration order: { address = "127.0.0.1:9001",
--- weight = 1, healthy = true, cooldown_ms = 0 }. healthy is false while
--- the backend cools down after a failed connect (cooldown_ms says how
--- long still): the round robin skips it, and so should a plugin's pick.
--- A fresh array each call: keep it in the hook's locals.
function M.backends()
  check_phase(BALANCER_PHASE, n_backends)
  local n = C.sl_ffi_backend_count()
  if n < 0 then return fail(n_backends, n) end
  local list = new_tab(n, 0)
  for i = 0, n - 1 do
    local rc = C.sl_ffi_backend_at(i, pp, pn, weight_out, cooldown_out)
    if rc ~= OK then return fail(n_backends, rc) end
    local cd = cooldown_out[0]
    list[i + 1] = {
      address = ffi_string(pp[0], pn[0]),
      weight = weight_out[0],
      healthy = cd <= 0,
      cooldown_ms = cd,
    }
  end
  return list
end

--- set_backend(address) -> true, or nil and a message when the current
--- upstream has no backend with that address ("host:port" as configured,
--- as backends() lists it); nothing changes then, and no other address is
--- ever connected to. The chosen backend is the only one tried: if it
--- cannot be reached the client gets 502 (504 on a connect timeout) and
--- the backend starts its cool-down (healthy = false in backends() for
--- the next requests). Calling it again replaces the choice.
function M.set_backend(address)
  check_phase(BALANCER_PHASE, n_set_backend)
  if type(address) ~= "string" then arg_error(n_set_backend, 1, "string", address) end
  local rc = C.sl_ffi_set_backend(address, #address)
  if rc == OK then return true end
  if rc == NOT_FOUND then
    return nil, "'" .. address .. "' is not a backend of upstream '"
                .. current_upstream(n_set_backend) .. "'"
  end
  return fail(n_set_backend, rc, "address")
end

return M
