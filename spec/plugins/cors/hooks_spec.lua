-- The cors plugin's hooks, run by the plugin harness against requests
-- written here (the real core, no proxy): what a preflight gets back for
-- each configuration, what other responses get (Vary merged with the
-- origin's own), and the configurations it refuses, message for message.
-- The integration spec checks the same plugin through the running proxy.
--
-- Run: make build/libsluice.so && busted --lua=luajit spec/plugins/cors/
local harness = require "spec.plugin_harness"

local PATH = "plugins-lua/cors.lua"
local DEFAULT_METHODS = "GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS"

local function plugin(config)
  local p, err = harness.load(PATH, config)
  assert(p, err)
  return p
end

-- A request of method to /res with the fields in sent (a list of pairs).
local function request(method, sent)
  local lines = { method .. " /res HTTP/1.1", "Host: api.example" }
  for _, f in ipairs(sent) do lines[#lines + 1] = f[1] .. ": " .. f[2] end
  return assert(harness.request(table.concat(lines, "\r\n") .. "\r\n\r\n"))
end

local function preflight(origin, method, req_headers)
  local t = { { "Origin", origin }, { "Access-Control-Request-Method", method } }
  if req_headers then t[#t + 1] = { "Access-Control-Request-Headers", req_headers } end
  return t
end

-- The values of the field called name (any case) in a list of fields.
local function values(fields, name)
  local t = {}
  for _, f in ipairs(fields) do
    if f[1]:lower() == name:lower() then t[#t + 1] = f[2] end
  end
  return t
end

describe("cors", function()
  describe("answers a preflight itself", function()
    -- config: the plugin's config (nil: the defaults); sent: the
    -- preflight's fields; status; want: lower-case name -> the value of the
    -- reply's field (false: absent); body: the reply's body.
    local cases = {
      { name = "with the defaults: any origin, every default method, no credentials or max age",
        config = nil,
        sent = preflight("https://app.example", "PATCH"),
        status = 204,
        want = { ["access-control-allow-origin"] = "*",
                 ["access-control-allow-methods"] = DEFAULT_METHODS,
                 ["access-control-allow-headers"] = false,
                 ["access-control-allow-credentials"] = false,
                 ["access-control-max-age"] = false,
                 ["vary"] = false } },
      { name = "allowing the headers the preflight asks for when none are configured",
        config = nil,
        sent = preflight("https://app.example", "PUT", "X-Token, Content-Type"),
        status = 204,
        want = { ["access-control-allow-headers"] = "X-Token, Content-Type",
                 ["vary"] = "Access-Control-Request-Headers" } },
      { name = "with a list of origins, Vary naming Origin and the requested headers",
        config = { origins = { "https://app.example" } },
        sent = preflight("https://app.example", "GET", "X-Token"),
        status = 204,
        want = { ["access-control-allow-origin"] = "https://app.example",
                 ["access-control-allow-headers"] = "X-Token",
                 ["vary"] = "Origin, Access-Control-Request-Headers" } },
      { name = "sending the configured headers whatever the preflight asks, Vary naming only Origin",
        config = { origins = { "https://app.example" }, headers = { "Authorization", "X-Api-Key" } },
        sent = preflight("https://app.example", "GET", "X-Other"),
        status = 204,
        want = { ["access-control-allow-headers"] = "Authorization, X-Api-Key", ["vary"] = "Origin" } },
      { name = "sending the configured methods in their order",
        config = { methods = { "POST", "GET", "PURGE" } },
        sent = preflight("https://app.example", "PURGE"),
        status = 204,
        want = { ["access-control-allow-methods"] = "POST, GET, PURGE" } },
      { name = "sending a max_age of 0 (no caching of the preflight), not leaving it out",
        config = { max_age = 0 },
        sent = preflight("https://app.example", "GET"),
        status = 204,
        want = { ["access-control-max-age"] = "0" } },
      { name = "sending max_age and credentials for a listed origin",
        config = { origins = { "https://app.example" }, max_age = 86400, credentials = true },
        sent = preflight("https://app.example", "GET"),
        status = 204,
        want = { ["access-control-allow-origin"] = "https://app.example",
                 ["access-control-max-age"] = "86400",
                 ["access-control-allow-credentials"] = "true" } },
      { name = "echoing the origin with \"*\" and credentials, with Vary: Origin",
        config = { credentials = true },
        sent = preflight("https://any.example", "GET"),
        status = 204,
        want = { ["access-control-allow-origin"] = "https://any.example",
                 ["access-control-allow-credentials"] = "true", ["vary"] = "Origin" } },
      { name = "sending \"*\", without Vary, when \"*\" is listed with other origins",
        config = { origins = { "https://app.example", "*" } },
        sent = preflight("https://other.example", "GET"),
        status = 204,
        want = { ["access-control-allow-origin"] = "*", ["vary"] = false } },
      { name = "matching a configured origin written in capitals, echoing the request's spelling",
        config = { origins = { "HTTPS://App.Example:8443" } },
        sent = preflight("https://app.example:8443", "GET"),
        status = 204,
        want = { ["access-control-allow-origin"] = "https://app.example:8443" } },
      { name = "matching a request's Origin written in capitals, echoing it as sent",
        config = { origins = { "https://app.example" } },
        sent = preflight("HTTPS://APP.Example", "GET"),
        status = 204,
        want = { ["access-control-allow-origin"] = "HTTPS://APP.Example" } },
      { name = "allowing the opaque origin \"null\" when listed",
        config = { origins = { "null" } },
        sent = preflight("null", "GET"),
        status = 204,
        want = { ["access-control-allow-origin"] = "null", ["vary"] = "Origin" } },
      { name = "leaving exposed_headers out (they belong on the actual response)",
        config = { exposed_headers = { "X-Total" } },
        sent = preflight("https://app.example", "GET"),
        status = 204,
        want = { ["access-control-expose-headers"] = false } },
      { name = "refusing an origin not on the list with 403 and only Vary",
        config = { origins = { "https://app.example" }, credentials = true, max_age = 60 },
        sent = preflight("https://app.example.evil", "GET", "X-Token"),
        status = 403,
        want = { ["content-type"] = "application/json", ["vary"] = "Origin",
                 ["access-control-allow-origin"] = false,
                 ["access-control-allow-methods"] = false,
                 ["access-control-allow-headers"] = false,
                 ["access-control-allow-credentials"] = false,
                 ["access-control-max-age"] = false },
        body = '{"message":"CORS: origin not allowed"}' },
      { name = "refusing \"null\" when it is not listed",
        config = { origins = { "https://app.example" } },
        sent = preflight("null", "GET"),
        status = 403,
        want = { ["access-control-allow-origin"] = false },
        body = '{"message":"CORS: origin not allowed"}' },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local p = plugin(c.config)
        local req = request("OPTIONS", c.sent)
        assert.equal("respond", p:call("request_headers", req))
        local status, headers, body = req:reply()
        assert.equal(c.status, status)
        for name, want in pairs(c.want) do
          assert.equal(want or nil, headers[name], name)
        end
        assert.equal(c.body or "", body)
        assert.is_nil(req:upstream_head())
      end)
    end

    it("leaves its own reply as it is in response_headers (no second Vary or ACAO)", function()
      local p = plugin({ origins = { "https://app.example" }, exposed_headers = { "X-Total" } })
      local req = request("OPTIONS", preflight("https://app.example", "GET"))
      assert.equal("respond", p:call("request_headers", req))
      assert.equal("continue", p:call("response_headers", req))
      local fields = req:headers("response")
      assert.same({ "Origin" }, values(fields, "Vary"))
      assert.same({ "https://app.example" }, values(fields, "Access-Control-Allow-Origin"))
      assert.same({}, values(fields, "Access-Control-Expose-Headers"))
    end)
  end)

  describe("passes to the origin", function()
    -- method and sent: the request; config. Each goes upstream with its
    -- Origin, and the answer gets Access-Control-Allow-Origin (allow) but
    -- never the preflight-only fields.
    local cases = {
      { name = "an OPTIONS without Access-Control-Request-Method (not a preflight)",
        config = nil, method = "OPTIONS", sent = { { "Origin", "https://app.example" } }, allow = "*" },
      { name = "a GET that carries Access-Control-Request-Method (only OPTIONS is a preflight)",
        config = nil, method = "GET", sent = preflight("https://app.example", "PUT"), allow = "*" },
      { name = "a preflight with preflight_continue",
        config = { preflight_continue = true, max_age = 60 }, method = "OPTIONS",
        sent = preflight("https://app.example", "PUT", "X-Token"), allow = "*" },
      { name = "a preflight from an origin not on the list, with preflight_continue",
        config = { origins = { "https://app.example" }, preflight_continue = true }, method = "OPTIONS",
        sent = preflight("https://evil.example", "PUT"), allow = false },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local p = plugin(c.config)
        local req = request(c.method, c.sent)
        assert.equal("continue", p:call("request_headers", req))
        assert.is_nil(req:reply())
        local up = harness.parse_head(assert(req:upstream_head()))
        assert.equal(c.method .. " /res HTTP/1.1", up.line)
        assert.equal(c.sent[1][2], up.headers["origin"])
        req:respond_from_origin(200, { ["Content-Length"] = "0" })
        assert.equal("continue", p:call("response_headers", req))
        local head = harness.parse_head(assert(req:response_head()))
        assert.equal(c.allow or nil, head.headers["access-control-allow-origin"])
        assert.is_nil(head.headers["access-control-allow-methods"])
        assert.is_nil(head.headers["access-control-allow-headers"])
        assert.is_nil(head.headers["access-control-max-age"])
      end)
    end
  end)

  describe("on the origin's response", function()
    -- config; sent: the request's fields; origin: the origin's fields (a
    -- list); want: lower-case name -> the list of values the client gets.
    local LIST = { "https://app.example" }
    local cases = {
      { name = "sends the allowed origin back, with Vary: Origin",
        config = { origins = LIST }, sent = { { "Origin", "https://app.example" } }, origin = {},
        want = { ["access-control-allow-origin"] = { "https://app.example" }, ["vary"] = { "Origin" },
                 ["access-control-allow-credentials"] = {}, ["access-control-expose-headers"] = {} } },
      { name = "adds credentials and the exposed headers when configured",
        config = { origins = LIST, credentials = true, exposed_headers = { "X-Total", "X-Page" } },
        sent = { { "Origin", "https://app.example" } }, origin = {},
        want = { ["access-control-allow-credentials"] = { "true" },
                 ["access-control-expose-headers"] = { "X-Total, X-Page" } } },
      { name = "adds only Vary for an origin not on the list",
        config = { origins = LIST, credentials = true, exposed_headers = { "X-Total" } },
        sent = { { "Origin", "https://evil.example" } }, origin = {},
        want = { ["access-control-allow-origin"] = {}, ["vary"] = { "Origin" },
                 ["access-control-allow-credentials"] = {}, ["access-control-expose-headers"] = {} } },
      { name = "adds Vary: Origin to a request without Origin when the answer depends on it",
        config = { origins = LIST }, sent = {}, origin = {},
        want = { ["access-control-allow-origin"] = {}, ["vary"] = { "Origin" } } },
      { name = "adds nothing to a request without Origin with \"*\"",
        config = nil, sent = {}, origin = {},
        want = { ["access-control-allow-origin"] = {}, ["vary"] = {} } },
      { name = "sends \"*\" without Vary for any origin with the defaults",
        config = nil, sent = { { "Origin", "https://app.example" } }, origin = {},
        want = { ["access-control-allow-origin"] = { "*" }, ["vary"] = {} } },
      { name = "replaces an Access-Control-Allow-Origin the origin sent",
        config = { origins = LIST }, sent = { { "Origin", "https://app.example" } },
        origin = { { "Access-Control-Allow-Origin", "*" } },
        want = { ["access-control-allow-origin"] = { "https://app.example" } } },
      { name = "adds Origin to the origin's Vary in a field of its own",
        config = { origins = LIST }, sent = {}, origin = { { "Vary", "Accept-Encoding" } },
        want = { ["vary"] = { "Accept-Encoding", "Origin" } } },
      { name = "keeps a Vary that lists Origin already, in any case and spacing",
        config = { origins = LIST }, sent = {}, origin = { { "Vary", "accept-encoding ,  ORIGIN" } },
        want = { ["vary"] = { "accept-encoding ,  ORIGIN" } } },
      { name = "keeps Vary: Origin sent in the origin's second Vary field",
        config = { origins = LIST }, sent = {},
        origin = { { "Vary", "Accept-Encoding" }, { "Vary", "Origin" } },
        want = { ["vary"] = { "Accept-Encoding", "Origin" } } },
      { name = "keeps Vary: * (it covers Origin)",
        config = { origins = LIST }, sent = {}, origin = { { "Vary", "*" } },
        want = { ["vary"] = { "*" } } },
      { name = "adds Origin when the Vary only holds a longer name containing it",
        config = { origins = LIST }, sent = {}, origin = { { "Vary", "X-Origin" } },
        want = { ["vary"] = { "X-Origin", "Origin" } } },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local p = plugin(c.config)
        local req = request("GET", c.sent)
        assert.equal("continue", p:call("request_headers", req))
        local origin = { { "Content-Length", "0" } }
        for _, f in ipairs(c.origin) do origin[#origin + 1] = f end
        req:respond_from_origin(200, origin)
        assert.equal("continue", p:call("response_headers", req))
        local head = harness.parse_head(assert(req:response_head()))
        for name, want in pairs(c.want) do
          assert.same(want, values(head.fields, name), name)
        end
      end)
    end

    it("adds its fields to another plugin's local reply", function()
      local refuser = assert(harness.load_source("refuser", [[
        return { name = "refuser", priority = 1000,
                 request_headers = function()
                   return sluice.response.exit(401, { message = "no key" })
                 end }
      ]]))
      local p = plugin({ origins = { "https://app.example" }, credentials = true })
      local req = request("GET", { { "Origin", "https://app.example" } })
      assert.equal("continue", p:call("request_headers", req))
      assert.equal("respond", refuser:call("request_headers", req))
      assert.equal("continue", p:call("response_headers", req))
      local status, headers, body = req:reply()
      assert.equal(401, status)
      assert.equal("https://app.example", headers["access-control-allow-origin"])
      assert.equal("true", headers["access-control-allow-credentials"])
      assert.equal("Origin", headers["vary"])
      assert.equal('{"message":"no key"}', body)
    end)
  end)

  describe("takes a configuration", function()
    -- Origins it accepts, as browsers send them.
    for _, o in ipairs { "*", "null", "https://app.example", "http://localhost:3000",
                         "app-scheme+x.y://host", "http://[::1]:8080" } do
      it("with the origin " .. o, function()
        local p, err = harness.load(PATH, { origins = { o } })
        assert.is_not_nil(p, err)
      end)
    end
  end)

  describe("refuses a bad configuration", function()
    local BAD_ORIGIN = "expected \"*\", \"null\" or scheme://host[:port] without a path "
                       .. "(an Origin header never has one)"
    local TOKEN = "must match the pattern '^[%w!#$%%&'*+%-.^_`|~]+$'"
    -- config: a table, or YAML text; error: the whole message.
    local cases = {
      { name = "an empty origins list", config = { origins = {} },
        error = "plugin cors: config.origins: number of items must be at least 1" },
      { name = "origins given as a string", config = { origins = "*" },
        error = "plugin cors: config.origins: expected an array, got \"*\"" },
      { name = "an origin with a trailing slash", config = { origins = { "https://app.example/" } },
        error = "plugin cors: config.origins[0]: " .. BAD_ORIGIN },
      { name = "an origin without a scheme", config = { origins = { "*", "app.example" } },
        error = "plugin cors: config.origins[1]: " .. BAD_ORIGIN },
      { name = "an origin with a query", config = { origins = { "https://app.example?x" } },
        error = "plugin cors: config.origins[0]: " .. BAD_ORIGIN },
      { name = "an empty methods list", config = { methods = {} },
        error = "plugin cors: config.methods: number of items must be at least 1" },
      { name = "a method that is not a token", config = { methods = { "GET", "PO ST" } },
        error = "plugin cors: config.methods[1]: invalid value \"PO ST\": " .. TOKEN },
      { name = "a header name that is not a token", config = { headers = { "X:Token" } },
        error = "plugin cors: config.headers[0]: invalid value \"X:Token\": " .. TOKEN },
      { name = "an exposed header name that is not a token", config = { exposed_headers = { "X Total" } },
        error = "plugin cors: config.exposed_headers[0]: invalid value \"X Total\": " .. TOKEN },
      { name = "a max_age over a day", config = { max_age = 86401 },
        error = "plugin cors: config.max_age: value should be between 0 and 86400, got 86401" },
      { name = "a negative max_age", config = { max_age = -1 },
        error = "plugin cors: config.max_age: value should be between 0 and 86400, got -1" },
      { name = "a max_age that is not an integer", config = "max_age: 1.5",
        error = "config:1:10: plugin cors: config.max_age: expected an integer, got 1.5" },
      { name = "a quoted boolean for credentials", config = "credentials: \"true\"",
        error = "config:1:14: plugin cors: config.credentials: expected a boolean, got \"true\"" },
      { name = "a string for preflight_continue", config = { preflight_continue = "yes" },
        error = "plugin cors: config.preflight_continue: expected a boolean, got \"yes\"" },
      { name = "a misspelt key", config = { origin = { "*" } },
        error = "plugin cors: config.origin: unknown field" },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local p, err = harness.load(PATH, c.config)
        assert.is_nil(p)
        assert.equal(c.error, err)
      end)
    end
  end)
end)
