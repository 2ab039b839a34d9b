-- The request-id plugin end to end: the real proxy in front of the bundled
-- origin, whose /echo answers with the raw request it received, so each
-- case checks both what the client got and what the origin got.
--
-- Run: busted --lua=luajit spec/plugins/request-id/integration_spec.lua
local h = require "spec.helpers"
local S = require "spec.plugins.support"

local start, parse_request = S.start, S.parse_request

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

describe("request-id plugin", function()
  local origin

  lazy_setup(function()
    origin = h.start_origin()
  end)

  lazy_teardown(function()
    if origin then origin:stop() end
  end)

  describe("with its defaults", function()
    local proxy

    lazy_setup(function()
      proxy = start(origin, "  - request-id")
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    -- sent: the client's X-Request-Id fields; want: "uuid" (a fresh one) or
    -- the id expected on both sides.
    local cases = {
      { name = "generates a UUID when the client sends none", sent = {}, want = "uuid" },
      { name = "keeps a well-formed id the client sent", sent = { "abc-123.XYZ_9" }, want = "abc-123.XYZ_9" },
      { name = "replaces an id with a space in it", sent = { "abc 123" }, want = "uuid" },
      { name = "replaces an id longer than max_length (200)", sent = { ("x"):rep(201) }, want = "uuid" },
      { name = "keeps an id of exactly max_length", sent = { ("y"):rep(200) }, want = ("y"):rep(200) },
      { name = "replaces an id with a non-ASCII byte", sent = { "caf\195\169" }, want = "uuid" },
      { name = "sends one field upstream when the client sent two", sent = { "first", "second" },
        want = "first" },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", on the request to the origin and on the response", function()
        local hdrs = {}
        for _, v in ipairs(c.sent) do hdrs[#hdrs + 1] = { "X-Request-Id", v } end
        local resp = assert(h.get(proxy.port, "/echo", hdrs))
        assert.equal(200, resp.status)
        local got = parse_request(resp.body).headers["x-request-id"]
        assert.is_table(got)
        assert.equal(1, #got)
        assert.equal(got[1], resp.headers["x-request-id"])
        if c.want == "uuid" then
          assert.matches(UUID, got[1])
        else
          assert.equal(c.want, got[1])
        end
      end)
    end

    it("gives every request a different id", function()
      local seen, n = {}, 0
      for _ = 1, 50 do
        local resp = assert(h.get(proxy.port, "/echo"))
        local id = resp.headers["x-request-id"]
        assert.matches(UUID, id)
        if not seen[id] then n = n + 1 end
        seen[id] = true
      end
      assert.equal(50, n)
    end)

    it("sets the id on responses without a body (HEAD, 204)", function()
      local resp = assert(h.request(proxy.port, h.build_request("HEAD", "/echo")))
      assert.equal(200, resp.status)
      assert.matches(UUID, resp.headers["x-request-id"])
      resp = assert(h.get(proxy.port, "/status/204"))
      assert.equal(204, resp.status)
      assert.matches(UUID, resp.headers["x-request-id"])
    end)
  end)

  describe("configured", function()
    -- plugins: the YAML list; check(resp, upstream request) for one
    -- request sent with X-Request-Id: client-id and X-Trace: client-trace.
    local cases = {
      {
        name = "with trust_incoming: false, replaces the client's id",
        plugins = "  - name: request-id\n    config: {trust_incoming: false}",
        check = function(resp, up)
          assert.matches(UUID, up.headers["x-request-id"][1])
          assert.equal(up.headers["x-request-id"][1], resp.headers["x-request-id"])
        end,
      },
      {
        name = "with another header and the sluice generator, uses sluice's own id",
        plugins = "  - name: request-id\n    config: {header: X-Correlation-Id, generator: sluice}",
        check = function(resp, up)
          assert.matches("^%x+$", up.headers["x-correlation-id"][1])
          assert.equal(16, #up.headers["x-correlation-id"][1])
          assert.equal(up.headers["x-correlation-id"][1], resp.headers["x-correlation-id"])
          -- the default header is left alone
          assert.same({ "client-id" }, up.headers["x-request-id"])
          assert.is_nil(resp.headers["x-request-id"])
        end,
      },
      {
        name = "with another header, keeps the client's value of that header",
        plugins = "  - name: request-id\n    config: {header: X-Trace}",
        check = function(resp, up)
          assert.same({ "client-trace" }, up.headers["x-trace"])
          assert.equal("client-trace", resp.headers["x-trace"])
        end,
      },
      {
        name = "with echo_downstream: false, sets the id upstream only",
        plugins = "  - name: request-id\n    config: {echo_downstream: false, trust_incoming: false}",
        check = function(resp, up)
          assert.matches(UUID, up.headers["x-request-id"][1])
          assert.is_nil(resp.headers["x-request-id"])
        end,
      },
      {
        name = "with max_length: 5, replaces a longer id",
        plugins = "  - name: request-id\n    config: {max_length: 5}",
        check = function(resp, up)
          assert.matches(UUID, up.headers["x-request-id"][1])
          assert.equal(up.headers["x-request-id"][1], resp.headers["x-request-id"])
        end,
      },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local proxy = start(origin, c.plugins)
        finally(function() proxy:stop() end)
        local resp = assert(h.get(proxy.port, "/echo",
          { { "X-Request-Id", "client-id" }, { "X-Trace", "client-trace" } }))
        assert.equal(200, resp.status)
        c.check(resp, parse_request(resp.body))
      end)
    end
  end)

  it("puts the id on another plugin's local reply (maintenance's 503)", function()
    local proxy = start(origin, "  - request-id\n  - maintenance")
    finally(function() proxy:stop() end)
    local resp = assert(h.get(proxy.port, "/echo", { { "X-Request-Id", "from-client" } }))
    assert.equal(503, resp.status)
    assert.equal("from-client", resp.headers["x-request-id"])
  end)

  describe("refuses a bad configuration", function()
    local cases = {
      {
        name = "a header name that is not a token",
        plugins = "  - name: request-id\n    config:\n      header: X Request Id",
        error = "10:15: plugin request-id: config.header: invalid value \"X Request Id\": must match",
      },
      {
        name = "an unknown generator",
        plugins = "  - name: request-id\n    config:\n      generator: uuid4",
        error = "10:18: plugin request-id: config.generator: expected one of: uuid, sluice; got \"uuid4\"",
      },
      {
        name = "a max_length out of range",
        plugins = "  - name: request-id\n    config:\n      max_length: 0",
        error = "10:19: plugin request-id: config.max_length: value should be between 1 and 1024, got 0",
      },
      {
        name = "a string for a boolean",
        plugins = "  - name: request-id\n    config:\n      trust_incoming: yes",
        error = "10:23: plugin request-id: config.trust_incoming: expected a boolean, got \"yes\"",
      },
      {
        name = "an unknown key",
        plugins = "  - name: request-id\n    config:\n      headr: X-Id",
        error = "10:14: plugin request-id: config.headr: unknown field",
      },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", naming file:line:col, plugin and key path (-t and at start)", function()
        S.assert_config_error(c.plugins, c.error)
      end)
    end
  end)
end)
