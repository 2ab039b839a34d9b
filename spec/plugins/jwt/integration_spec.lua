-- The native jwt plugin (plugins-native/jwt.c, built by `make` next to
-- $SLUICE_LIB) end to end: the real proxy in front of the bundled origin,
-- whose /echo answers with the raw request it received. Every request
-- carries a unique X-Case, so a refused request can be checked to have
-- never reached the origin. A small Lua plugin after jwt sends the
-- token's sub (sluice.ctx "jwt.sub") to the origin, to show it crosses
-- from the C plugin to a Lua one in the proxy. Tokens are signed here with
-- the openssl CLI; jwt_spec.lua has the harness-level cases.
--
-- Run: busted --lua=luajit spec/plugins/jwt/integration_spec.lua
local h = require "spec.helpers"
local S = require "spec.plugins.support"

local parse_request = S.parse_request

local ROOT = os.getenv("PWD")
local BUILD = (os.getenv("SLUICE_LIB") or "build/libsluice.so"):match("^(.*)/[^/]+$") or "build"
if BUILD:sub(1, 1) ~= "/" then BUILD = ROOT .. "/" .. BUILD end

local SECRET = "s3cr3t"

local function shell(cmd)
  local f = assert(io.popen(cmd))
  local out = f:read("*a")
  f:close()
  return out
end

local function b64url(s)
  local out = shell("printf '%s' '" .. s:gsub("'", "'\\''") .. "' | base64 -w0")
  return (out:gsub("=", ""):gsub("+", "-"):gsub("/", "_"))
end

-- A token of payload (JSON text), signed with secret.
local function token(payload, secret)
  local input = b64url('{"alg":"HS256","typ":"JWT"}') .. "." .. b64url(payload)
  local sig = shell("printf '%s' '" .. input .. "' | openssl dgst -sha256 -hmac '"
                    .. (secret or SECRET) .. "' -binary | base64 -w0")
  return input .. "." .. (sig:gsub("=", ""):gsub("+", "-"):gsub("/", "_"))
end

local NOW = os.time()
local GOOD = token('{"sub":"alice","exp":' .. (NOW + 3600) .. '}')

-- The Lua plugin that passes jwt.sub on, in a directory of its own.
local SUB_PLUGIN = [[
local sluice = require "sluice"
return {
  name = "sub-header",
  priority = 1000,
  request_headers = function()
    local sub = sluice.ctx.get("jwt.sub")
    if sub then sluice.request.set_header("X-Jwt-Sub", sub) end
  end,
}
]]

-- The proxy's configuration: one worker, the origin as the only upstream,
-- the native plugins and dir in plugin_paths, then `plugins` (YAML lines of
-- the plugins list, from line 8).
local function config(port, origin_port, dir, plugins)
  return table.concat({
    "workers: 1",
    "listen: [127.0.0.1:" .. port .. "]",
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. origin_port .. "]",
    "plugin_paths: [" .. BUILD .. "/plugins-native, " .. dir .. "]",
    "plugins:",
    plugins,
  }, "\n") .. "\n"
end

local send_case = S.sender("jwt")

describe("jwt plugin (native)", function()
  local origin, dir

  lazy_setup(function()
    origin = h.start_origin()
    dir = shell("mktemp -d /tmp/sluice-jwt-spec-XXXXXX"):gsub("%s+$", "")
    local f = assert(io.open(dir .. "/sub-header.lua", "wb"))
    f:write(SUB_PLUGIN)
    f:close()
  end)

  lazy_teardown(function()
    if origin then origin:stop() end
    if dir then
      os.remove(dir .. "/sub-header.lua")
      os.remove(dir)
    end
  end)

  local function start(plugins)
    local port = h.free_port()
    return h.start_proxy { config = config(port, origin.port, dir, plugins), port = port }
  end

  describe("with the defaults", function()
    local proxy

    lazy_setup(function()
      proxy = start(table.concat({
        "  - name: jwt",
        "    kind: native",
        "    config: {secret: " .. SECRET .. "}",
        "  - sub-header",
      }, "\n"))
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    -- Whether the origin logged the request of case id. An accepted
    -- request sent after it is waited for first, so "no" means the origin
    -- never got it.
    local function origin_got(id)
      local resp, sentinel = send_case(proxy, "GET", "/echo", { { "Authorization", "Bearer " .. GOOD } })
      assert.equal(200, resp.status)
      return S.origin_got_before(origin, id, sentinel)
    end

    it("lets a valid bearer token through, Authorization kept, its sub passed to a Lua plugin", function()
      local resp = send_case(proxy, "GET", "/echo", { { "Authorization", "Bearer " .. GOOD } })
      assert.equal(200, resp.status)
      local got = parse_request(resp.body)
      assert.equal("GET /echo HTTP/1.1", got.line)
      assert.same({ "Bearer " .. GOOD }, got.headers["authorization"])
      assert.same({ "alice" }, got.headers["x-jwt-sub"])
    end)

    it("lets a valid token in ?jwt= through, the query as sent", function()
      local tok = token('{"sub":"bob","exp":' .. (NOW + 3600) .. '}')
      local resp = send_case(proxy, "GET", "/echo?a=1&jwt=" .. tok)
      assert.equal(200, resp.status)
      local got = parse_request(resp.body)
      assert.equal("GET /echo?a=1&jwt=" .. tok .. " HTTP/1.1", got.line)
      assert.same({ "bob" }, got.headers["x-jwt-sub"])
    end)

    it("shares no jwt.sub for a token without sub (the client's X-Jwt-Sub goes through as sent)", function()
      local tok = token('{"exp":' .. (NOW + 3600) .. '}')
      local resp = send_case(proxy, "GET", "/echo", { { "Authorization", "Bearer " .. tok },
                                                      { "X-Jwt-Sub", "forged" } })
      assert.equal(200, resp.status)
      assert.same({ "forged" }, parse_request(resp.body).headers["x-jwt-sub"])
    end)

    -- hdrs and target: the request; challenge and message: the 401's.
    local refused = {
      { name = "a request without a token", target = "/echo", hdrs = {},
        challenge = "Bearer", message = "missing token" },
      { name = "another scheme than Bearer", target = "/echo",
        hdrs = { { "Authorization", "Basic " .. GOOD } }, challenge = "Bearer", message = "missing token" },
      { name = "a token signed with another secret", target = "/echo",
        hdrs = { { "Authorization", "Bearer " .. token('{"exp":' .. (NOW + 3600) .. '}', "other") } },
        challenge = 'Bearer error="invalid_token"', message = "invalid signature" },
      { name = "an expired token", target = "/echo",
        hdrs = { { "Authorization", "Bearer " .. token('{"exp":' .. (NOW - 60) .. '}') } },
        challenge = 'Bearer error="invalid_token"', message = "token expired" },
      { name = "a token without exp", target = "/echo",
        hdrs = { { "Authorization", "Bearer " .. token('{"sub":"alice"}') } },
        challenge = 'Bearer error="invalid_token"', message = "token has no exp claim" },
      { name = "a malformed token in the query", target = "/echo?jwt=abc.def",
        hdrs = {}, challenge = 'Bearer error="invalid_token"', message = "malformed token" },
    }
    for _, c in ipairs(refused) do
      it("answers 401 to " .. c.name .. ", and the origin gets nothing", function()
        local resp, id = send_case(proxy, "GET", c.target, c.hdrs)
        assert.equal(401, resp.status)
        assert.equal(c.challenge, resp.headers["www-authenticate"])
        assert.equal("application/json", resp.headers["content-type"])
        assert.equal('{"message":"' .. c.message .. '"}', resp.body)
        assert.is_false(origin_got(id))
      end)
    end

    it("keeps the connection usable after a 401", function()
      local conn = assert(h.connect(proxy.port))
      finally(function() conn:close() end)
      assert(conn:send(h.build_request("GET", "/echo")))
      assert.equal(401, assert(conn:read_response()).status)
      assert(conn:send(h.build_request("GET", "/echo", { { "Authorization", "Bearer " .. GOOD } })))
      assert.equal(200, assert(conn:read_response()).status)
    end)
  end)

  it("with hide_credentials and another header, reads it and keeps it from the origin", function()
    local proxy = start(table.concat({
      "  - name: jwt",
      "    kind: native",
      "    config: {secret: " .. SECRET .. ", header: X-Token, query: \"\", hide_credentials: true}",
    }, "\n"))
    finally(function() proxy:stop() end)
    local resp = send_case(proxy, "GET", "/echo", { { "X-Token", "Bearer " .. GOOD }, { "X-Other", "o" } })
    assert.equal(200, resp.status)
    local got = parse_request(resp.body)
    assert.is_nil(got.headers["x-token"])
    assert.same({ "o" }, got.headers["x-other"])
    -- query "" turns the query off; Authorization is not read any more
    resp = send_case(proxy, "GET", "/echo?jwt=" .. GOOD, { { "Authorization", "Bearer " .. GOOD } })
    assert.equal(401, resp.status)
    assert.equal('{"message":"missing token"}', resp.body)
  end)

  describe("refuses a bad configuration", function()
    -- plugins: the YAML lines of the plugins list (from line 8); error:
    -- what follows "FILE:" in the output of sluice -t and at start.
    local cases = {
      { name = "no secret",
        plugins = "  - name: jwt\n    kind: native\n    config: {header: X-Token}",
        error = "10:13: plugin jwt: config.secret: required field missing" },
      { name = "a clock_skew_s over an hour",
        plugins = "  - name: jwt\n    kind: native\n    config:\n      secret: k\n      clock_skew_s: 3601",
        error = "12:21: plugin jwt: config.clock_skew_s: value should be between 0 and 3600, got 3601" },
      { name = "an unknown field",
        plugins = "  - name: jwt\n    kind: native\n    config:\n      secret: k\n      alg: HS512",
        error = "12:12: plugin jwt: config.alg: unknown field" },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", naming file:line:col, plugin and key path (-t and at start)", function()
        local path = h.write_tmp(config(h.free_port(), 9, dir, c.plugins))
        for _, cmd in ipairs({ " -t -c ", " -c " }) do
          local code, out = h.run("timeout 10 " .. h.quote(h.bin) .. cmd .. h.quote(path))
          assert.are_not.equal(0, code)
          assert.are_not.equal(124, code)
          assert.truthy(out:find(path .. ":" .. c.error, 1, true), out)
        end
      end)
    end
  end)
end)
