-- plugins-lua/basic-auth.lua: HTTP Basic authentication (RFC 7617) against
-- users listed in the configuration, with a plain password or the SHA-256
-- of salt .. password. A request without valid credentials is answered 401
-- by the proxy (WWW-Authenticate: Basic realm="...", a JSON body saying
-- why) and never reaches the origin.
--
-- SHA-256 here is one unsalted-by-default, fast hash: it keeps passwords
-- out of the configuration file, it is not a slow password hash (bcrypt,
-- argon2). Use long random passwords.
--
-- Priority 1100: after key-auth, before rate limiting and transformations.

local sluice = require "sluice"

local request = sluice.request
local get_headers, clear_header, set_header = request.get_headers, request.clear_header,
  request.set_header
local exit = sluice.response.exit
local ctx_set = sluice.ctx.set

local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, lshift, ror, tobit, tohex = bit.rshift, bit.lshift, bit.ror, bit.tobit, bit.tohex
local byte, char, rep, sub, find, lower = string.byte, string.char, string.rep, string.sub,
  string.find, string.lower
local floor = math.floor
local concat = table.concat
local pairs, type = pairs, type

---------------------------------------------------------------------------
-- SHA-256 (FIPS 180-4). Passwords are short: one or two 64-byte blocks.

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
for i = 1, 64 do K[i] = tobit(K[i]) end

local W = {}

local function sha256_hex(msg)
  local len = #msg
  local bits = len * 8
  local pad = (55 - len) % 64
  msg = msg .. "\128" .. rep("\0", pad)
        .. char(0, 0, 0, floor(bits / 2 ^ 32) % 256,
                floor(bits / 2 ^ 24) % 256, floor(bits / 2 ^ 16) % 256,
                floor(bits / 2 ^ 8) % 256, bits % 256)
  local h0, h1, h2, h3 = 0x6a09e667, tobit(0xbb67ae85), 0x3c6ef372, tobit(0xa54ff53a)
  local h4, h5, h6, h7 = 0x510e527f, tobit(0x9b05688c), 0x1f83d9ab, 0x5be0cd19
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do
      local a, b, c, d = byte(msg, chunk + i * 4, chunk + i * 4 + 3)
      W[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
    end
    for i = 16, 63 do
      local x, y = W[i - 15], W[i - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
      W[i] = tobit(W[i - 16] + s0 + W[i - 7] + s1)
    end
    local a, b, c, d, e, f, g, h = h0, h1, h2, h3, h4, h5, h6, h7
    for i = 0, 63 do
      local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = tobit(h + S1 + ch + K[i + 1] + W[i])
      local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, b), band(a, c), band(b, c))
      h, g, f, e = g, f, e, tobit(d + t1)
      d, c, b, a = c, b, a, tobit(t1 + S0 + maj)
    end
    h0, h1, h2, h3 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c), tobit(h3 + d)
    h4, h5, h6, h7 = tobit(h4 + e), tobit(h5 + f), tobit(h6 + g), tobit(h7 + h)
  end
  return tohex(h0) .. tohex(h1) .. tohex(h2) .. tohex(h3)
         .. tohex(h4) .. tohex(h5) .. tohex(h6) .. tohex(h7)
end

---------------------------------------------------------------------------
-- Base64 (RFC 4648 §4), strict: the standard alphabet, padding optional.

local B64 = {}
do
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  for i = 1, 64 do B64[byte(alphabet, i)] = i - 1 end
end

local function b64decode(s)
  s = (s:gsub("==?$", ""))
  local len = #s
  if len % 4 == 1 then return nil end
  local out, n = {}, 0
  for i = 1, len, 4 do
    local a, b, c, d = B64[byte(s, i)], B64[byte(s, i + 1)], byte(s, i + 2), byte(s, i + 3)
    if a == nil or b == nil then return nil end
    if c then
      c = B64[c]
      if c == nil then return nil end
    end
    if d then
      d = B64[d]
      if d == nil then return nil end
    end
    local v = a * 262144 + b * 4096 + (c or 0) * 64 + (d or 0)
    n = n + 1
    if d then
      out[n] = char(floor(v / 65536), floor(v / 256) % 256, v % 256)
    elseif c then
      out[n] = char(floor(v / 65536), floor(v / 256) % 256)
    else
      out[n] = char(floor(v / 65536))
    end
  end
  return concat(out)
end

-- Compares without stopping at the first difference, so the time taken
-- does not tell how much of a guess was right.
local function same(a, b)
  local diff = #a == #b and 0 or 1
  local bl = #b
  for i = 1, #a do
    local j = bl > 0 and (i - 1) % bl + 1 or 1
    diff = bor(diff, bxor(byte(a, i), byte(b, j) or 0))
  end
  return diff == 0
end

---------------------------------------------------------------------------

local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"

local function check_user(u)
  if u.password == nil and u.sha256 == nil then
    return nil, "needs a password or a sha256"
  end
  if u.password ~= nil and u.sha256 ~= nil then
    return nil, "has both a password and a sha256: keep one"
  end
  if u.salt ~= "" and u.sha256 == nil then
    return nil, "a salt goes with a sha256"
  end
  return true
end

local function check_realm(r)
  if find(r, "[\"\\%c]") then return nil, "a realm cannot contain '\"', '\\' or control bytes" end
  return true
end

-- What init derives from the configuration.
local users = {}        -- name -> { password = s } or { sha256 = lower-case hex, salt = s }
local any_hashed = false
local challenge

local plugin = {
  name = "basic-auth",
  version = "1.0.0",
  priority = 1100,
  schema = {
    type = "record",
    fields = {
      { users = { type = "map", required = true, len_min = 1,
                  keys = { type = "string", len_min = 1, match = "^[^:%c]+$" },
                  values = { type = "record", custom_validator = check_user, fields = {
                    { password = { type = "string", len_min = 1 } },
                    { sha256 = { type = "string", match = "^%x+$", len_min = 64, len_max = 64,
                                 description = "hex SHA-256 of salt .. password" } },
                    { salt = { type = "string", default = "" } },
                  } } } },
      { realm = { type = "string", default = "sluice", custom_validator = check_realm } },
      { hide_credentials = { type = "boolean", default = false,
                             description = "remove Authorization from the request sent to the origin" } },
      { user_header = { type = "string", match = TOKEN,
                        description = "send the user name to the origin in this header" } },
    },
  },
}

function plugin.init(conf)
  for name, u in pairs(conf.users) do
    if u.sha256 then
      users[name] = { sha256 = lower(u.sha256), salt = u.salt }
      any_hashed = true
    else
      users[name] = { password = u.password }
    end
  end
  challenge = 'Basic realm="' .. conf.realm .. '"'
end

local function deny(message)
  return exit(401, { message = message }, { ["WWW-Authenticate"] = challenge })
end

local DUMMY = rep("0", 64)

function plugin.request_headers(conf)
  local auth = get_headers(1000).authorization
  if auth == nil then return deny("Authentication required") end
  if type(auth) == "table" then return deny("More than one Authorization header") end
  if lower(sub(auth, 1, 6)) ~= "basic " then
    return deny("Authentication required (Basic)")
  end
  local creds = b64decode((auth:gsub("^......%s*", ""):gsub("%s+$", "")))
  local colon = creds and find(creds, ":", 1, true)
  if not colon then return deny("Malformed Basic credentials") end
  local name, password = sub(creds, 1, colon - 1), sub(creds, colon + 1)
  local u = users[name]
  local ok
  if u == nil then
    -- Spend what a known user costs, so timing does not reveal names.
    if any_hashed then same(sha256_hex(password), DUMMY) end
    ok = false
  elseif u.sha256 then
    ok = same(sha256_hex(u.salt .. password), u.sha256)
  else
    ok = same(password, u.password)
  end
  if not ok then return deny("Invalid user name or password") end
  if conf.hide_credentials then clear_header("Authorization") end
  if conf.user_header then set_header(conf.user_header, name) end
  ctx_set("authenticated_user", name)
end

return plugin
