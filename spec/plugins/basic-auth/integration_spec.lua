-- The basic-auth plugin end to end: the real proxy in front of the bundled
-- origin, whose /echo answers with the raw request it received. Every
-- request carries a unique X-Case, so a refused request can be checked
-- to have never reached the origin. The SHA-256 users cover the padding
-- edges of the plugin's own SHA-256 (55, 64 and 119 bytes).
--
-- Run: busted --lua=luajit spec/plugins/basic-auth/integration_spec.lua
local h = require "spec.helpers"
local S = require "spec.plugins.support"
local mime = require "mime"

local start, parse_request = S.start, S.parse_request

local function basic(user_pass)
  return "Basic " .. (mime.b64(user_pass))
end

local send_case = S.sender("basic-auth")

-- Sends GET /echo with the fields in hdrs (a list of pairs) and a unique
-- X-Case; returns the response and the case id.
local function send(proxy, hdrs)
  return send_case(proxy, "GET", "/echo", hdrs)
end

-- Whether the origin logged the request of case id. An accepted request
-- sent after it is waited for first, so "no" means the origin never got it.
local function origin_got(origin, proxy, id, good)
  local resp, sentinel = send(proxy, { good })
  assert.equal(200, resp.status)
  return S.origin_got_before(origin, id, sentinel)
end

-- sha256 values from coreutils: printf '%s' PASSWORD | sha256sum
local USERS = table.concat({
  "  - name: basic-auth",
  "    config:",
  "      users:",
  "        alice: {password: \"wonder land\"}",
  -- hunter2
  "        bob: {sha256: f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7}",
  -- pepper .. s3cret
  "        carol: {sha256: ed94ab2a21f16d3f74de0539de726c74ea6f9e73ddd37feb6c1ebdb90bbb31e2, salt: pepper}",
  -- 55 x (one block, the largest), upper-case hex
  "        dave: {sha256: D5E285683CD4EFC02D021A5C62014694958901005D6F71E89E0989FAC77E4072}",
  -- 64 y (two blocks)
  "        erin: {sha256: ffbf30ab94107b2c14d75cfb455ec94f200400ddc5ce304e0c21894090db055f}",
  -- 119 z (the largest two-block message)
  "        frank: {sha256: de05957e72aca438f9b0c770cb2ee7fa0e58e08eb54536478db136d54c097abb}",
  "        \"zoë\": {password: \"a:b:c\"}",
}, "\n")

local REQUIRED = '{"message":"Authentication required"}'
local NOT_BASIC = '{"message":"Authentication required (Basic)"}'
local MALFORMED = '{"message":"Malformed Basic credentials"}'
local INVALID = '{"message":"Invalid user name or password"}'
local TWO = '{"message":"More than one Authorization header"}'

describe("basic-auth plugin", function()
  local origin

  lazy_setup(function()
    origin = h.start_origin()
  end)

  lazy_teardown(function()
    if origin then origin:stop() end
  end)

  describe("with plain and SHA-256 users", function()
    local proxy
    local GOOD = { "Authorization", basic("alice:wonder land") }

    lazy_setup(function()
      proxy = start(origin, USERS)
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    local accepted = {
      { name = "a plain password", auth = basic("alice:wonder land") },
      { name = "a SHA-256 password", auth = basic("bob:hunter2") },
      { name = "a salted SHA-256 password", auth = basic("carol:s3cret") },
      { name = "a 55-byte password (upper-case hex in the config)", auth = basic("dave:" .. ("x"):rep(55)) },
      { name = "a 64-byte password", auth = basic("erin:" .. ("y"):rep(64)) },
      { name = "a 119-byte password", auth = basic("frank:" .. ("z"):rep(119)) },
      { name = "a UTF-8 user name and a password with colons", auth = basic("zoë:a:b:c") },
      { name = "the scheme in lower case", auth = "basic " .. mime.b64("bob:hunter2") },
      { name = "spaces after the scheme", auth = "Basic    " .. mime.b64("bob:hunter2") },
    }
    for _, c in ipairs(accepted) do
      it("lets through " .. c.name .. ", Authorization kept", function()
        local resp = send(proxy, { { "Authorization", c.auth } })
        assert.equal(200, resp.status)
        assert.same({ c.auth }, parse_request(resp.body).headers["authorization"])
      end)
    end

    local refused = {
      { name = "no Authorization", sent = {}, body = REQUIRED },
      { name = "a Bearer token", sent = { { "Authorization", "Bearer abc" } }, body = NOT_BASIC },
      { name = "\"Basic\" without credentials", sent = { { "Authorization", "Basic" } }, body = NOT_BASIC },
      { name = "credentials that are not base64", sent = { { "Authorization", "Basic !!!!" } }, body = MALFORMED },
      { name = "base64 with a bad length", sent = { { "Authorization", "Basic YWJjZ" } }, body = MALFORMED },
      { name = "credentials without a colon", sent = { { "Authorization", basic("alice") } }, body = MALFORMED },
      { name = "a wrong password", sent = { { "Authorization", basic("alice:wonderland") } }, body = INVALID },
      { name = "an empty password", sent = { { "Authorization", basic("alice:") } }, body = INVALID },
      { name = "a user in another case", sent = { { "Authorization", basic("Alice:wonder land") } },
        body = INVALID },
      { name = "an unknown user", sent = { { "Authorization", basic("mallory:wonder land") } }, body = INVALID },
      { name = "an empty user", sent = { { "Authorization", basic(":wonder land") } }, body = INVALID },
      { name = "another user's password", sent = { { "Authorization", basic("bob:wonder land") } },
        body = INVALID },
      { name = "the stored hash as the password",
        sent = { { "Authorization", basic("bob:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7") } },
        body = INVALID },
      { name = "a salted user's password with the salt", sent = { { "Authorization", basic("carol:peppers3cret") } },
        body = INVALID },
      { name = "a password one byte short of the 55-byte one",
        sent = { { "Authorization", basic("dave:" .. ("x"):rep(54)) } }, body = INVALID },
      { name = "two Authorization fields",
        sent = { { "Authorization", basic("alice:wonder land") }, { "Authorization", basic("bob:hunter2") } },
        body = TWO },
    }
    for _, c in ipairs(refused) do
      it("answers 401 to " .. c.name .. ", and the origin gets nothing", function()
        local resp, id = send(proxy, c.sent)
        assert.equal(401, resp.status)
        assert.equal('Basic realm="sluice"', resp.headers["www-authenticate"])
        assert.equal("application/json", resp.headers["content-type"])
        assert.equal(c.body, resp.body)
        assert.is_false(origin_got(origin, proxy, id, GOOD))
      end)
    end
  end)

  describe("with hide_credentials and user_header", function()
    local proxy

    lazy_setup(function()
      proxy = start(origin, USERS .. "\n      hide_credentials: true\n      user_header: X-User\n"
                            .. "      realm: staff only")
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    it("sends the user name instead of the credentials", function()
      local resp = send(proxy, { { "Authorization", basic("carol:s3cret") } })
      assert.equal(200, resp.status)
      local got = parse_request(resp.body)
      assert.is_nil(got.headers["authorization"])
      assert.same({ "carol" }, got.headers["x-user"])
    end)

    it("replaces a user name the client sent", function()
      local resp = send(proxy, { { "X-User", "admin" }, { "Authorization", basic("bob:hunter2") },
                                 { "x-user", "root" } })
      assert.equal(200, resp.status)
      assert.same({ "bob" }, parse_request(resp.body).headers["x-user"])
    end)

    it("names the configured realm in the 401", function()
      local resp = send(proxy, { { "X-User", "admin" } })
      assert.equal(401, resp.status)
      assert.equal('Basic realm="staff only"', resp.headers["www-authenticate"])
    end)
  end)

  describe("refuses a bad configuration", function()
    local cases = {
      {
        name = "no users (a name alone)",
        plugins = "  - basic-auth",
        error = "plugin basic-auth: config.users: required field missing",
      },
      {
        name = "an empty users map",
        plugins = "  - name: basic-auth\n    config:\n      users: {}",
        error = "10:14: plugin basic-auth: config.users: number of entries must be at least 1",
      },
      {
        name = "a user with neither password nor sha256",
        plugins = "  - name: basic-auth\n    config:\n      users:\n        alice: {salt: x}",
        error = "11:16: plugin basic-auth: config.users.alice: needs a password or a sha256",
      },
      {
        name = "a user with both",
        plugins = "  - name: basic-auth\n    config:\n      users:\n"
                  .. "        alice: {password: a, sha256: f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7}",
        error = "11:16: plugin basic-auth: config.users.alice: has both a password and a sha256",
      },
      {
        name = "a salt with a plain password",
        plugins = "  - name: basic-auth\n    config:\n      users:\n        alice: {password: a, salt: x}",
        error = "11:16: plugin basic-auth: config.users.alice: a salt goes with a sha256",
      },
      {
        name = "a sha256 that is too short",
        plugins = "  - name: basic-auth\n    config:\n      users:\n        alice: {sha256: abc123}",
        error = "11:25: plugin basic-auth: config.users.alice.sha256: length must be at least 64",
      },
      {
        name = "a sha256 that is not hex",
        plugins = "  - name: basic-auth\n    config:\n      users:\n        alice: {sha256: "
                  .. ("g"):rep(64) .. "}",
        error = "11:25: plugin basic-auth: config.users.alice.sha256: invalid value",
      },
      {
        name = "an empty password",
        plugins = "  - name: basic-auth\n    config:\n      users:\n        alice: {password: \"\"}",
        error = "11:27: plugin basic-auth: config.users.alice.password: length must be at least 1",
      },
      {
        name = "a user name with a colon",
        plugins = "  - name: basic-auth\n    config:\n      users:\n        \"a:b\": {password: x}",
        error = "plugin basic-auth: config.users.a:b: invalid key",
      },
      {
        name = "an unquoted number as a password",
        plugins = "  - name: basic-auth\n    config:\n      users:\n        alice: {password: 1234}",
        error = "11:27: plugin basic-auth: config.users.alice.password: expected a string, got 1234",
      },
      {
        name = "a realm with a quote",
        plugins = "  - name: basic-auth\n    config:\n      users: {a: {password: x}}\n      realm: 'a\"b'",
        error = "11:14: plugin basic-auth: config.realm: a realm cannot contain",
      },
      {
        name = "a user_header that is not a token",
        plugins = "  - name: basic-auth\n    config:\n      users: {a: {password: x}}\n      user_header: X User",
        error = "11:20: plugin basic-auth: config.user_header: invalid value \"X User\"",
      },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", naming file:line:col, plugin and key path (-t and at start)", function()
        S.assert_config_error(c.plugins, c.error)
      end)
    end
  end)
end)
