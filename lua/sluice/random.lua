-- lua/sluice/random.lua: sluice.random, unpredictable bytes from the
-- kernel's generator (getrandom(2), src/random.c), for ids, tokens and
-- nonces. Like resty.random.bytes(n, true) and kong's uuid(); math.random
-- is neither seeded per worker nor meant for secrets.

local base = require "sluice.base"

local C = base.C
local ffi_string, new = base.string, base.new

local type, error, tostring = type, error, tostring

local M = {}

local MAX = 1048576                     -- bytes per call
local SMALL = 256
local small = new("char[?]", SMALL)

-- count(fname, n): n is an integer 0..MAX (raises at the plugin's call
-- site otherwise).
local function check_count(fname, n)
  if type(n) ~= "number" or n % 1 ~= 0 or n < 0 or n > MAX then
    error(fname .. ": bad argument #1 (an integer from 0 to " .. MAX .. " expected, got "
          .. tostring(n) .. ")", 3)
  end
end

local function scratch(size)
  if size <= SMALL then return small end
  return new("char[?]", size)
end

local UNAVAILABLE = "the system's random generator failed"

--- bytes(n) -> a string of n random bytes.
function M.bytes(n)
  check_count("sluice.random.bytes", n)
  if n == 0 then return "" end
  local b = scratch(n)
  if C.sl_ffi_random_bytes(b, n) ~= 0 then return nil, UNAVAILABLE end
  return ffi_string(b, n)
end

--- hex(n) -> n random bytes as 2n lowercase hex digits: hex(16) is a
--- 128-bit token of 32 characters.
function M.hex(n)
  check_count("sluice.random.hex", n)
  if n == 0 then return "" end
  local b = scratch(2 * n)
  if C.sl_ffi_random_hex(b, n) ~= 0 then return nil, UNAVAILABLE end
  return ffi_string(b, 2 * n)
end

--- uuid() -> a random (version 4) UUID: "1b4e28ba-2fa1-4d2e-883f-0016d3cca427".
function M.uuid()
  if C.sl_ffi_random_uuid(small) ~= 0 then return nil, UNAVAILABLE end
  return ffi_string(small, 36)
end

return M
