-- The key-auth plugin end to end: the real proxy in front of the bundled
-- origin, whose /echo answers with the raw request it received. Every
-- request carries a unique X-Case, so a refused request can be checked
-- to have never reached the origin.
--
-- Run: busted --lua=luajit spec/plugins/key-auth/integration_spec.lua
local h = require "spec.helpers"
local S = require "spec.plugins.support"

local start, parse_request = S.start, S.parse_request

local send_case = S.sender("key-auth")

-- Sends GET target with the fields in hdrs (a list of pairs) and a unique
-- X-Case; returns the response and the case id.
local function send(proxy, target, hdrs, method)
  return send_case(proxy, method or "GET", target, hdrs)
end

-- Whether the origin logged the request of case id. An accepted request
-- sent after it is waited for first, so "no" means the origin never got it.
local function origin_got(origin, proxy, id, good)
  local resp, sentinel = send(proxy, "/echo", { good })
  assert.equal(200, resp.status)
  return S.origin_got_before(origin, id, sentinel)
end

local NO_KEY = '{"message":"No API key found in the request"}'
local BAD_KEY = '{"message":"Invalid API key"}'
local TWO_KEYS = '{"message":"More than one API key in the request"}'

describe("key-auth plugin", function()
  local origin

  lazy_setup(function()
    origin = h.start_origin()
  end)

  lazy_teardown(function()
    if origin then origin:stop() end
  end)

  describe("reading the key from X-Api-Key and ?apikey=", function()
    local proxy
    local GOOD = { "X-Api-Key", "alpha-key" }

    lazy_setup(function()
      proxy = start(origin, table.concat({
        "  - name: key-auth",
        "    config:",
        "      keys: [alpha-key, \"beta key\", \"3\"]",
        "      query_arg: apikey",
      }, "\n"))
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    -- target and sent (fields); an accepted request reaches the origin
    -- as sent; a refused one gets 401 and never reaches it.
    local accepted = {
      { name = "a listed key in the header", target = "/echo", sent = { { "X-Api-Key", "alpha-key" } } },
      { name = "the header name in another case", target = "/echo", sent = { { "x-api-key", "alpha-key" } } },
      { name = "a listed key in the query", target = "/echo?x=1&apikey=alpha-key", sent = {} },
      { name = "a key with a space, '+' encoded", target = "/echo?apikey=beta+key", sent = {} },
      { name = "a key with a space, %20 encoded", target = "/echo?apikey=beta%20key", sent = {} },
      { name = "a key written as a quoted number", target = "/echo", sent = { { "X-Api-Key", "3" } } },
      { name = "one key and an empty argument", target = "/echo?apikey=&b=1",
        sent = { { "X-Api-Key", "alpha-key" } } },
    }
    for _, c in ipairs(accepted) do
      it("lets through " .. c.name .. ", unchanged", function()
        local resp = send(proxy, c.target, c.sent)
        assert.equal(200, resp.status)
        local got = parse_request(resp.body)
        assert.equal("GET " .. c.target .. " HTTP/1.1", got.line)
        for _, p in ipairs(c.sent) do
          assert.same({ p[2] }, got.headers[p[1]:lower()])
        end
      end)
    end

    local refused = {
      { name = "no key", target = "/echo", sent = {}, body = NO_KEY },
      { name = "an empty header", target = "/echo", sent = { { "X-Api-Key", "" } }, body = NO_KEY },
      { name = "an empty argument", target = "/echo?apikey=", sent = {}, body = NO_KEY },
      { name = "a key in another header", target = "/echo", sent = { { "Authorization", "alpha-key" } },
        body = NO_KEY },
      { name = "a key in another argument", target = "/echo?api_key=alpha-key", sent = {}, body = NO_KEY },
      { name = "a wrong key", target = "/echo", sent = { { "X-Api-Key", "wrong" } }, body = BAD_KEY },
      { name = "a key in another case", target = "/echo", sent = { { "X-Api-Key", "ALPHA-KEY" } },
        body = BAD_KEY },
      { name = "a prefix of a key", target = "/echo", sent = { { "X-Api-Key", "alpha" } }, body = BAD_KEY },
      { name = "a key with more after it", target = "/echo", sent = { { "X-Api-Key", "alpha-key2" } },
        body = BAD_KEY },
      { name = "a wrong key in the query", target = "/echo?apikey=nope", sent = {}, body = BAD_KEY },
      { name = "the header twice", target = "/echo",
        sent = { { "X-Api-Key", "alpha-key" }, { "X-Api-Key", "alpha-key" } }, body = TWO_KEYS },
      { name = "a good and a bad header", target = "/echo",
        sent = { { "X-Api-Key", "wrong" }, { "X-Api-Key", "alpha-key" } }, body = TWO_KEYS },
      { name = "the argument twice", target = "/echo?apikey=alpha-key&apikey=beta+key", sent = {},
        body = TWO_KEYS },
      { name = "a key in both places", target = "/echo?apikey=alpha-key",
        sent = { { "X-Api-Key", "alpha-key" } }, body = TWO_KEYS },
    }
    for _, c in ipairs(refused) do
      it("answers 401 to " .. c.name .. ", and the origin gets nothing", function()
        local resp, id = send(proxy, c.target, c.sent)
        assert.equal(401, resp.status)
        assert.equal('Key realm="sluice"', resp.headers["www-authenticate"])
        assert.equal("application/json", resp.headers["content-type"])
        assert.equal(c.body, resp.body)
        assert.is_false(origin_got(origin, proxy, id, GOOD))
      end)
    end

    it("answers 401 without a body to HEAD", function()
      local resp = assert(h.request(proxy.port, h.build_request("HEAD", "/echo")))
      assert.equal(401, resp.status)
      assert.equal('Key realm="sluice"', resp.headers["www-authenticate"])
      assert.equal("", resp.body)
    end)

    it("keeps the connection usable after a 401", function()
      local conn = assert(h.connect(proxy.port))
      finally(function() conn:close() end)
      assert(conn:send(h.build_request("GET", "/echo")))
      local r1 = assert(conn:read_response())
      assert.equal(401, r1.status)
      assert(conn:send(h.build_request("GET", "/echo", { GOOD })))
      local r2 = assert(conn:read_response())
      assert.equal(200, r2.status)
    end)
  end)

  describe("with hide_credentials", function()
    local proxy

    lazy_setup(function()
      proxy = start(origin, table.concat({
        "  - name: key-auth",
        "    config: {keys: [k1], query_arg: apikey, hide_credentials: true}",
      }, "\n"))
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    local cases = {
      { name = "removes the header", target = "/echo", sent = { { "X-Api-Key", "k1" }, { "X-Other", "o" } },
        line = "GET /echo HTTP/1.1" },
      { name = "removes the argument, keeping the others byte for byte",
        target = "/echo?a=1&apikey=k1&b=%20x+y&c", line = "GET /echo?a=1&b=%20x+y&c HTTP/1.1" },
      { name = "removes the only argument, and the '?'", target = "/echo?apikey=k1",
        line = "GET /echo HTTP/1.1" },
      { name = "removes an empty argument of the same name too", target = "/echo?apikey=&x=1",
        sent = { { "X-Api-Key", "k1" } }, line = "GET /echo?x=1 HTTP/1.1" },
      { name = "removes an argument whose name is percent-encoded", target = "/echo?api%6Bey=k1&z=2",
        line = "GET /echo?z=2 HTTP/1.1" },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local resp = send(proxy, c.target, c.sent)
        assert.equal(200, resp.status)
        local got = parse_request(resp.body)
        assert.equal(c.line, got.line)
        assert.is_nil(got.headers["x-api-key"])
        if c.sent and c.sent[2] then assert.same({ "o" }, got.headers["x-other"]) end
      end)
    end
  end)

  describe("configured", function()
    it("with header \"\", reads the query only; the realm is configurable", function()
      local proxy = start(origin,
        "  - name: key-auth\n    config: {keys: [k1], header: \"\", query_arg: key, realm: my api}")
      finally(function() proxy:stop() end)
      local resp = send(proxy, "/echo", { { "X-Api-Key", "k1" } })
      assert.equal(401, resp.status)
      assert.equal('Key realm="my api"', resp.headers["www-authenticate"])
      assert.equal(NO_KEY, resp.body)
      resp = send(proxy, "/echo?key=k1")
      assert.equal(200, resp.status)
    end)

    it("with header: Authorization, takes its whole value as the key", function()
      local proxy = start(origin, "  - name: key-auth\n    config: {keys: [k1], header: Authorization}")
      finally(function() proxy:stop() end)
      assert.equal(200, send(proxy, "/echo", { { "Authorization", "k1" } }).status)
      assert.equal(401, send(proxy, "/echo", { { "Authorization", "Bearer k1" } }).status)
      assert.equal(401, send(proxy, "/echo", { { "X-Api-Key", "k1" } }).status)
    end)

    it("by default, does not read the query", function()
      local proxy = start(origin, "  - name: key-auth\n    config: {keys: [k1]}")
      finally(function() proxy:stop() end)
      local resp = send(proxy, "/echo?apikey=k1")
      assert.equal(401, resp.status)
      assert.equal(NO_KEY, resp.body)
    end)
  end)

  describe("refuses a bad configuration", function()
    local cases = {
      {
        name = "no keys at all (a name alone)",
        plugins = "  - key-auth",
        error = "plugin key-auth: config.keys: required field missing",
      },
      {
        name = "an empty keys list",
        plugins = "  - name: key-auth\n    config:\n      keys: []",
        error = "10:13: plugin key-auth: config.keys: number of items must be at least 1",
      },
      {
        name = "an empty key",
        plugins = "  - name: key-auth\n    config:\n      keys: [a, \"\"]",
        error = "10:17: plugin key-auth: config.keys[1]: length must be at least 1",
      },
      {
        name = "an unquoted number as a key",
        plugins = "  - name: key-auth\n    config:\n      keys: [a, 123]",
        error = "10:17: plugin key-auth: config.keys[1]: expected a string, got 123",
      },
      {
        name = "no place to read a key from",
        plugins = "  - name: key-auth\n    config:\n      keys: [a]\n      header: \"\"",
        error = "10:7: plugin key-auth: config: header and query_arg are both \"\"",
      },
      {
        name = "a header name that is not a token",
        plugins = "  - name: key-auth\n    config:\n      keys: [a]\n      header: X Api Key",
        error = "11:15: plugin key-auth: config.header: expected a header name",
      },
      {
        name = "a query argument name with '='",
        plugins = "  - name: key-auth\n    config:\n      keys: [a]\n      query_arg: a=b",
        error = "11:18: plugin key-auth: config.query_arg: a query argument name cannot contain",
      },
      {
        name = "a realm with a quote",
        plugins = "  - name: key-auth\n    config:\n      keys: [a]\n      realm: 'say \"hi\"'",
        error = "11:14: plugin key-auth: config.realm: a realm cannot contain",
      },
      {
        name = "a misspelt option",
        plugins = "  - name: key-auth\n    config:\n      keys: [a]\n      hide_credential: true",
        error = "11:24: plugin key-auth: config.hide_credential: unknown field",
      },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", naming file:line:col, plugin and key path (-t and at start)", function()
        S.assert_config_error(c.plugins, c.error)
      end)
    end
  end)
end)
