-- The cors plugin end to end: the real proxy in front of the bundled
-- origin, whose /echo answers with the raw request it received. Every
-- request carries a unique X-Case, so a case can check that a preflight
-- answered by the proxy never reached the origin.
--
-- Run: busted --lua=luajit spec/plugins/cors/integration_spec.lua
local h = require "spec.helpers"
local S = require "spec.plugins.support"

local start = S.start

local send_case = S.sender("cors")

-- Sends method /echo with the fields in hdrs (a list of pairs) and a
-- unique X-Case; returns the response and the case id.
local function send(proxy, method, hdrs)
  return send_case(proxy, method, "/echo", hdrs)
end

-- Whether the origin logged the request of case id. A request sent after
-- it (and answered by the origin) is waited for first, so "no" means the
-- origin never got it.
local function origin_got(origin, proxy, id)
  local _, sentinel = send(proxy, "GET", { { "Origin", "https://sentinel.example" } })
  return S.origin_got_before(origin, id, sentinel)
end

local DEFAULT_METHODS = "GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS"

local function preflight(origin_value, method, req_headers)
  local t = { { "Origin", origin_value }, { "Access-Control-Request-Method", method } }
  if req_headers then t[#t + 1] = { "Access-Control-Request-Headers", req_headers } end
  return t
end

describe("cors plugin", function()
  local origin

  lazy_setup(function()
    origin = h.start_origin()
  end)

  lazy_teardown(function()
    if origin then origin:stop() end
  end)

  describe("answers a preflight itself", function()
    -- config: the plugin's config (YAML flow, "" for the defaults); sent:
    -- the preflight's fields; status and want: the answer's status and
    -- fields (lower-case name -> value, false: absent).
    local cases = {
      {
        name = "with the defaults: any origin, the request's headers allowed",
        config = "",
        sent = preflight("https://app.example", "PUT", "X-Token, Content-Type"),
        status = 204,
        want = {
          ["access-control-allow-origin"] = "*",
          ["access-control-allow-methods"] = DEFAULT_METHODS,
          ["access-control-allow-headers"] = "X-Token, Content-Type",
          ["access-control-allow-credentials"] = false,
          ["access-control-max-age"] = false,
          ["vary"] = "Access-Control-Request-Headers",
        },
      },
      {
        name = "with the defaults and no Access-Control-Request-Headers",
        config = "",
        sent = preflight("https://app.example", "GET"),
        status = 204,
        want = {
          ["access-control-allow-origin"] = "*",
          ["access-control-allow-headers"] = false,
          ["vary"] = false,
        },
      },
      {
        name = "for a listed origin, with credentials, max_age, methods and headers",
        config = "{origins: [https://app.example, \"http://localhost:3000\"], credentials: true, "
                 .. "max_age: 600, methods: [GET, POST], headers: [X-Token, Content-Type]}",
        sent = preflight("http://localhost:3000", "POST", "X-Other"),
        status = 204,
        want = {
          ["access-control-allow-origin"] = "http://localhost:3000",
          ["access-control-allow-methods"] = "GET, POST",
          ["access-control-allow-headers"] = "X-Token, Content-Type",
          ["access-control-allow-credentials"] = "true",
          ["access-control-max-age"] = "600",
          ["vary"] = "Origin",
        },
      },
      {
        name = "for a listed origin written in another case, echoing the request's",
        config = "{origins: [https://app.example]}",
        sent = preflight("https://APP.example", "GET"),
        status = 204,
        want = { ["access-control-allow-origin"] = "https://APP.example", ["vary"] = "Origin" },
      },
      {
        name = "with \"*\" and credentials, echoing the origin (\"*\" is not allowed with credentials)",
        config = "{credentials: true}",
        sent = preflight("https://any.example", "DELETE"),
        status = 204,
        want = {
          ["access-control-allow-origin"] = "https://any.example",
          ["access-control-allow-credentials"] = "true",
          ["vary"] = "Origin",
        },
      },
      {
        name = "refusing an origin not on the list with 403",
        config = "{origins: [https://app.example]}",
        sent = preflight("https://evil.example", "GET"),
        status = 403,
        want = {
          ["access-control-allow-origin"] = false,
          ["access-control-allow-methods"] = false,
          ["vary"] = "Origin",
          ["content-type"] = "application/json",
        },
        body = '{"message":"CORS: origin not allowed"}',
      },
      {
        name = "refusing an origin that only differs by scheme or port",
        config = "{origins: [https://app.example]}",
        sent = preflight("http://app.example", "GET"),
        status = 403,
        want = { ["access-control-allow-origin"] = false },
        body = '{"message":"CORS: origin not allowed"}',
      },
    }
    for _, c in ipairs(cases) do
      it(c.name .. "; the origin never sees it", function()
        local plugins = c.config == "" and "  - cors" or ("  - name: cors\n    config: " .. c.config)
        local proxy = start(origin, plugins)
        finally(function() proxy:stop() end)
        local resp, id = send(proxy, "OPTIONS", c.sent)
        assert.equal(c.status, resp.status)
        for name, want in pairs(c.want) do
          assert.equal(want or nil, resp.headers[name], name)
        end
        assert.equal(c.body or "", resp.body)
        assert.is_false(origin_got(origin, proxy, id))
      end)
    end
  end)

  describe("passes to the origin", function()
    it("a preflight, with preflight_continue, adding the CORS fields to its answer", function()
      local proxy = start(origin, "  - name: cors\n    config: {preflight_continue: true}")
      finally(function() proxy:stop() end)
      local resp, id = send(proxy, "OPTIONS", preflight("https://app.example", "PUT"))
      assert.equal(200, resp.status)
      assert.matches("^OPTIONS /echo HTTP/1.1\r\n", resp.body)
      assert.equal("*", resp.headers["access-control-allow-origin"])
      assert.is_nil(resp.headers["access-control-allow-methods"])
      assert.is_true(origin_got(origin, proxy, id))
    end)

    it("an OPTIONS without Access-Control-Request-Method (not a preflight)", function()
      local proxy = start(origin, "  - cors")
      finally(function() proxy:stop() end)
      local resp, id = send(proxy, "OPTIONS", { { "Origin", "https://app.example" } })
      assert.equal(200, resp.status)
      assert.matches("^OPTIONS /echo HTTP/1.1\r\n", resp.body)
      assert.equal("*", resp.headers["access-control-allow-origin"])
      assert.is_true(origin_got(origin, proxy, id))
    end)
  end)

  describe("on other requests", function()
    -- sent: the request's fields; want: the response's (false: absent).
    local cases = {
      {
        name = "adds the fields for a listed origin",
        config = "{origins: [https://app.example], exposed_headers: [X-Total, X-Page]}",
        sent = { { "Origin", "https://app.example" } },
        want = {
          ["access-control-allow-origin"] = "https://app.example",
          ["access-control-expose-headers"] = "X-Total, X-Page",
          ["access-control-allow-credentials"] = false,
          ["access-control-allow-methods"] = false,
          ["vary"] = "Origin",
        },
      },
      {
        name = "adds Access-Control-Allow-Credentials when configured",
        config = "{origins: [https://app.example], credentials: true}",
        sent = { { "Origin", "https://app.example" } },
        want = {
          ["access-control-allow-origin"] = "https://app.example",
          ["access-control-allow-credentials"] = "true",
        },
      },
      {
        name = "adds nothing but Vary for an origin not on the list",
        config = "{origins: [https://app.example]}",
        sent = { { "Origin", "https://evil.example" } },
        want = { ["access-control-allow-origin"] = false, ["vary"] = "Origin" },
      },
      {
        name = "adds Vary: Origin without an Origin when the answer depends on it",
        config = "{origins: [https://app.example]}",
        sent = {},
        want = { ["access-control-allow-origin"] = false, ["vary"] = "Origin" },
      },
      {
        name = "adds no Vary with \"*\" (the answer is the same for every origin)",
        config = "{origins: [\"*\"]}",
        sent = { { "Origin", "https://app.example" } },
        want = { ["access-control-allow-origin"] = "*", ["vary"] = false },
      },
      {
        name = "with \"*\" and credentials, echoes the origin with Vary",
        config = "{credentials: true}",
        sent = { { "Origin", "https://app.example" } },
        want = {
          ["access-control-allow-origin"] = "https://app.example",
          ["access-control-allow-credentials"] = "true",
          ["vary"] = "Origin",
        },
      },
    }
    for _, c in ipairs(cases) do
      it(c.name .. "; the request reaches the origin as sent", function()
        local proxy = start(origin, "  - name: cors\n    config: " .. c.config)
        finally(function() proxy:stop() end)
        local resp = send(proxy, "GET", c.sent)
        assert.equal(200, resp.status)
        for name, want in pairs(c.want) do
          assert.equal(want or nil, resp.headers[name], name)
        end
        for _, p in ipairs(c.sent) do
          assert.truthy(resp.body:find("\r\n" .. p[1] .. ": " .. p[2] .. "\r\n", 1, true))
        end
      end)
    end
  end)

  describe("with key-auth", function()
    local proxy

    lazy_setup(function()
      proxy = start(origin, table.concat({
        "  - name: cors",
        "    config: {origins: [https://app.example]}",
        "  - name: key-auth",
        "    config: {keys: [secret]}",
      }, "\n"))
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    it("answers a preflight without a key (cors runs first)", function()
      local resp = send(proxy, "OPTIONS", preflight("https://app.example", "GET", "X-Api-Key"))
      assert.equal(204, resp.status)
      assert.equal("https://app.example", resp.headers["access-control-allow-origin"])
      assert.equal("X-Api-Key", resp.headers["access-control-allow-headers"])
    end)

    it("adds its fields to the 401, so the page can read it", function()
      local resp, id = send(proxy, "GET", { { "Origin", "https://app.example" } })
      assert.equal(401, resp.status)
      assert.equal("https://app.example", resp.headers["access-control-allow-origin"])
      assert.equal("Origin", resp.headers["vary"])
      assert.is_false(origin_got(origin, proxy, id))
    end)

    it("adds its fields to the origin's answer when the key is right", function()
      local resp = send(proxy, "GET", { { "Origin", "https://app.example" }, { "X-Api-Key", "secret" } })
      assert.equal(200, resp.status)
      assert.equal("https://app.example", resp.headers["access-control-allow-origin"])
    end)
  end)

  describe("refuses a bad configuration", function()
    local cases = {
      {
        name = "an origin with a path",
        config = "      origins: [https://app.example/]",
        error = "10:17: plugin cors: config.origins[0]: expected \"*\", \"null\" or scheme://host[:port]",
      },
      {
        name = "an origin without a scheme",
        config = "      origins: [\"*\", app.example]",
        error = "10:22: plugin cors: config.origins[1]: expected \"*\"",
      },
      {
        name = "an empty origins list",
        config = "      origins: []",
        error = "10:16: plugin cors: config.origins: number of items must be at least 1",
      },
      {
        name = "a method that is not a token",
        config = "      methods: [GET, \"PO ST\"]",
        error = "10:22: plugin cors: config.methods[1]: invalid value \"PO ST\"",
      },
      {
        name = "a max_age over a day",
        config = "      max_age: 86401",
        error = "10:16: plugin cors: config.max_age: value should be between 0 and 86400, got 86401",
      },
      {
        name = "a quoted boolean",
        config = "      credentials: \"true\"",
        error = "10:20: plugin cors: config.credentials: expected a boolean, got \"true\"",
      },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", naming file:line:col, plugin and key path (-t and at start)", function()
        S.assert_config_error("  - name: cors\n    config:\n" .. c.config, c.error)
      end)
    end
  end)
end)
