-- The native jwt plugin (plugins-native/jwt.c) through spec/plugin_harness.lua:
-- HS256 tokens from the header or the query, exp/nbf, the 401 it answers,
-- and the config it refuses. Tokens are signed here with the openssl CLI.
local harness = require "spec.plugin_harness"

local PATH = harness.native_dir .. "/jwt.so"
local SECRET = "s3cr3t"

local function b64url(s)
  local f = assert(io.popen("printf '%s' '" .. s:gsub("'", "'\\''") .. "' | base64 -w0"))
  local out = f:read("*a")
  f:close()
  return (out:gsub("=", ""):gsub("+", "-"):gsub("/", "_"))
end

local function sign(input, secret)
  local cmd = "printf '%s' '" .. input .. "' | openssl dgst -sha256 -hmac '" .. secret
              .. "' -binary | base64 -w0"
  local f = assert(io.popen(cmd))
  local out = f:read("*a")
  f:close()
  return (out:gsub("=", ""):gsub("+", "-"):gsub("/", "_"))
end

-- A token of header and payload (JSON text), signed with secret.
local function token(payload, opts)
  opts = opts or {}
  local input = b64url(opts.header or '{"alg":"HS256","typ":"JWT"}') .. "." .. b64url(payload)
  return input .. "." .. sign(input, opts.secret or SECRET)
end

local NOW = os.time()

local function request(tok, where)
  local target, auth = "/api", ""
  if tok and where == "query" then target = "/api?a=1&jwt=" .. tok end
  if tok and where ~= "query" then auth = "Authorization: Bearer " .. tok .. "\r\n" end
  return assert(harness.request("GET " .. target .. " HTTP/1.1\r\nHost: a\r\n" .. auth .. "\r\n"))
end

local function plugin(config)
  local p, err = harness.load(PATH, config or { secret = SECRET })
  return assert(p, err)
end

describe("the jwt plugin", function()
  it("lets a valid token in the Authorization header through, sharing its sub", function()
    local p = plugin()
    local req = request(token('{"sub":"alice","exp":' .. (NOW + 60) .. '}'))
    assert.equal("continue", p:call("request_headers", req))
    assert.equal("alice", req:ctx("jwt.sub"))
    assert.truthy(harness.parse_head(req:upstream_head()).headers.authorization)
  end)

  it("takes the token from the query when the header has none", function()
    local p = plugin()
    local req = request(token('{"exp":' .. (NOW + 60) .. '}'), "query")
    assert.equal("continue", p:call("request_headers", req))
  end)

  it("hides the header from the origin with hide_credentials", function()
    local p = plugin({ secret = SECRET, hide_credentials = true })
    local req = request(token('{"exp":' .. (NOW + 60) .. '}'))
    assert.equal("continue", p:call("request_headers", req))
    assert.is_nil(harness.parse_head(req:upstream_head()).headers.authorization)
  end)

  -- tok: the token (nil: none); want: the message of the 401.
  local refusals = {
    { name = "no token", tok = nil, want = "missing token", challenge = "Bearer" },
    { name = "a token signed with another key",
      tok = token('{"exp":' .. (NOW + 60) .. '}', { secret = "other" }), want = "invalid signature" },
    { name = "an expired token", tok = token('{"exp":' .. (NOW - 5) .. '}'), want = "token expired" },
    { name = "a token not valid yet",
      tok = token('{"exp":' .. (NOW + 60) .. ',"nbf":' .. (NOW + 30) .. '}'),
      want = "token not valid yet" },
    { name = "a token without exp", tok = token('{"sub":"bob"}'), want = "token has no exp claim" },
    { name = "alg none", tok = b64url('{"alg":"none"}') .. "." .. b64url('{"exp":9999999999}') .. ".",
      want = "unsupported algorithm (only HS256)" },
    { name = "alg HS512", tok = token('{"exp":9999999999}', { header = '{"alg":"HS512"}' }),
      want = "unsupported algorithm (only HS256)" },
    { name = "garbage", tok = "abc.def", want = "malformed token" },
    { name = "a payload that is not JSON", tok = token('{"exp":'), want = "malformed token" },
  }
  for _, c in ipairs(refusals) do
    it("answers 401 with a JSON message for " .. c.name, function()
      local p = plugin()
      local req = request(c.tok)
      assert.equal("respond", p:call("request_headers", req))
      local status, headers, body = req:reply()
      assert.equal(401, status)
      assert.equal("application/json", headers["content-type"])
      assert.equal(c.challenge or 'Bearer error="invalid_token"', headers["www-authenticate"])
      assert.equal('{"message":"' .. c.want .. '"}', body)
      assert.is_nil(req:ctx("jwt.sub"))
    end)
  end

  it("allows clock_skew_s of difference for exp", function()
    local p = plugin({ secret = SECRET, clock_skew_s = 30 })
    assert.equal("continue", p:call("request_headers", request(token('{"exp":' .. (NOW - 5) .. '}'))))
  end)

  it("accepts a token without exp when require_exp is false", function()
    local p = plugin({ secret = SECRET, require_exp = false })
    assert.equal("continue", p:call("request_headers", request(token('{"sub":"bob"}'))))
  end)

  describe("refuses a bad configuration", function()
    local cases = {
      { config = "header: X-Token\n",
        error = "config:1:1: plugin jwt: config.secret: required field missing" },
      { config = "secret: \"\"\n", error = "config:1:9: plugin jwt: config.secret: length must be at least 1" },
      { config = "secret: k\nclock_skew_s: 5000\n",
        error = "config:2:15: plugin jwt: config.clock_skew_s: value should be between 0 and 3600, got 5000" },
      { config = "secret: k\nrequire_exp: no\n",
        error = "config:2:14: plugin jwt: config.require_exp: expected a boolean, got \"no\"" },
      { config = "secret: k\nalgorithm: HS256\n",
        error = "config:2:12: plugin jwt: config.algorithm: unknown field" },
    }
    for _, c in ipairs(cases) do
      it((c.error:gsub("^.-config%.", "config.")), function()
        local p, err = harness.load(PATH, c.config)
        assert.is_nil(p)
        assert.equal(c.error, err)
      end)
    end
  end)
end)
