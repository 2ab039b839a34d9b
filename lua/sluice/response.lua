-- lua/sluice/response.lua: sluice.response, the response the client gets.
--
-- In the request phases a plugin can answer the request itself with
-- exit(status, body, headers); headers set before exit() go with that reply.
-- In the response phases it reads and changes the upstream's response
-- (headers until they are sent to the client); log only reads.

local base = require "sluice.base"
local headers = require "sluice.headers"
local json = require "sluice.json"

local C = base.C
local ffi_string = base.string
local pp, pn = base.pp, base.pn
local check_phase, arg_error, fail = base.check_phase, base.arg_error, base.fail
local OK, NOT_FOUND = base.OK, base.NOT_FOUND
local RESPONSE = base.RESPONSE
local REQUEST_PHASES, RESPONSE_PHASES = base.REQUEST_PHASES, base.RESPONSE_PHASES

local type, error, pairs, tostring = type, error, pairs, tostring
local lower = string.lower

local M = {}

-- Response headers can be written in the request phases (they go with a
-- local reply) and in response_headers; read where a response exists.
local WRITE = base.phases(0, 1, 2, 3)

local h = headers.make(RESPONSE, "sluice.response", RESPONSE_PHASES, WRITE)
M.get_header = h.get_header
M.get_headers = h.get_headers
M.set_header = h.set_header
M.add_header = h.add_header
M.clear_header = h.clear_header

local n_status = "sluice.response.get_status"
local n_set_status = "sluice.response.set_status"

--- get_status() -> the status the client gets (a local reply's, or the
--- upstream's).
function M.get_status()
  check_phase(RESPONSE_PHASES, n_status)
  local st = C.sl_ffi_status()
  if st < 0 then return fail(n_status, st) end
  return st
end

--- set_status(code): 100..999, in response_headers.
function M.set_status(code)
  check_phase(RESPONSE_PHASES, n_set_status)
  if type(code) ~= "number" or code % 1 ~= 0 or code < 100 or code > 999 then
    error(n_set_status .. ": bad argument #1 (an integer status 100..999 expected, got "
          .. tostring(code) .. ")", 2)
  end
  local rc = C.sl_ffi_set_status(code)
  if rc ~= OK then return fail(n_set_status, rc, "status") end
  return true
end

-- (plugins that declared body = { response = true }, in response_body)
M.get_body, M.set_body = require("sluice.body").make(RESPONSE, "sluice.response", "response",
  base.phases(4, 5), base.phases(4, 5))

local n_exit = "sluice.response.exit"

--- exit(status, body, headers): answers the request from the proxy and
--- ends the hook (like kong.response.exit). body is a string, or a table
--- sent as JSON (Content-Type: application/json unless headers say
--- otherwise); headers is a table of name -> value or array of values.
--- Later plugins of the phase are skipped; the response phases and log
--- still run. Request phases only.
function M.exit(status, body, hdrs)
  check_phase(REQUEST_PHASES, n_exit)
  if type(status) ~= "number" or status % 1 ~= 0 or status < 200 or status > 999 then
    error(n_exit .. ": bad argument #1 (an integer status 200..999 expected, got "
          .. tostring(status) .. ")", 2)
  end
  local tb = type(body)
  local is_json = false
  if tb == "table" then
    local s, e = json.encode(body)
    if not s then error(n_exit .. ": bad argument #2 (" .. e .. ")", 2) end
    body, is_json = s, true
  elseif body == nil then
    body = ""
  elseif tb ~= "string" then
    arg_error(n_exit, 2, "string, table or nil", body)
  end
  if hdrs ~= nil then
    if type(hdrs) ~= "table" then arg_error(n_exit, 3, "table or nil", hdrs) end
    for k, v in pairs(hdrs) do
      if type(k) ~= "string" then
        error(n_exit .. ": bad argument #3 (header names must be strings)", 2)
      end
      if is_json and lower(k) == "content-type" then is_json = false end
      local vals = type(v) == "table" and v or { v }
      for i = 1, #vals do
        local s = vals[i]
        if type(s) == "number" then s = tostring(s) end
        if type(s) ~= "string" then
          error(n_exit .. ": bad argument #3 (header '" .. k .. "' has a " .. type(s)
                .. " value)", 2)
        end
        local rc
        if i == 1 then
          rc = C.sl_ffi_header_set(RESPONSE, k, #k, s, #s)
        else
          rc = C.sl_ffi_header_add(RESPONSE, k, #k, s, #s)
        end
        if rc ~= OK then return fail(n_exit, rc, "header name or value") end
      end
    end
  end
  if is_json then
    local ct = "application/json"
    local rc = C.sl_ffi_header_set(RESPONSE, "Content-Type", 12, ct, #ct)
    if rc ~= OK then return fail(n_exit, rc) end
  end
  local rc = C.sl_ffi_respond(status, body, #body)
  if rc ~= OK then return fail(n_exit, rc) end
  base.set_exited()
  error(base.EXIT, 0)
end

return M
