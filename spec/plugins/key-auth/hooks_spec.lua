-- The key-auth plugin's hooks, run by the plugin harness against requests
-- written here (the real core, no proxy): where it reads a key, what the
-- origin gets with and without hide_credentials, the 401 for each refusal,
-- and the configurations it refuses, message for message. The integration
-- spec checks the same plugin through the running proxy.
--
-- Run: make build/libsluice.so && busted --lua=luajit spec/plugins/key-auth/
local harness = require "spec.plugin_harness"

local PATH = "plugins-lua/key-auth.lua"

local NO_KEY = '{"message":"No API key found in the request"}'
local BAD_KEY = '{"message":"Invalid API key"}'
local TWO_KEYS = '{"message":"More than one API key in the request"}'

local function plugin(config)
  local p, err = harness.load(PATH, config)
  assert(p, err)
  return p
end

-- GET target with the fields in sent (a list of pairs).
local function request(target, sent)
  local lines = { "GET " .. target .. " HTTP/1.1", "Host: api.example" }
  for _, f in ipairs(sent or {}) do lines[#lines + 1] = f[1] .. ": " .. f[2] end
  return assert(harness.request(table.concat(lines, "\r\n") .. "\r\n\r\n"))
end

-- The values of the field called name (any case) in a list of fields.
local function values(fields, name)
  local t = {}
  for _, f in ipairs(fields) do
    if f[1]:lower() == name:lower() then t[#t + 1] = f[2] end
  end
  return t
end

describe("key-auth", function()
  describe("lets a request with a known key through", function()
    -- config; target and sent: the request; line: the request line the
    -- origin gets; want: lower-case name -> its values upstream ({}: none).
    local cases = {
      { name = "a key in X-Api-Key (the default header), kept for the origin",
        config = { keys = { "k1", "k2" } },
        target = "/orders", sent = { { "X-Api-Key", "k2" } },
        line = "GET /orders HTTP/1.1", want = { ["x-api-key"] = { "k2" } } },
      { name = "a key in the configured header, whatever the case of its name",
        config = { keys = { "k1" }, header = "X-Token" },
        target = "/orders", sent = { { "x-TOKEN", "k1" } },
        line = "GET /orders HTTP/1.1", want = { ["x-token"] = { "k1" } } },
      { name = "a key in the query argument, the query kept for the origin",
        config = { keys = { "k1" }, query_arg = "apikey" },
        target = "/orders?a=1&apikey=k1", sent = {},
        line = "GET /orders?a=1&apikey=k1 HTTP/1.1" },
      { name = "a key in the query, decoding %XX and '+'",
        config = { keys = { "a b&c" }, query_arg = "apikey" },
        target = "/orders?apikey=a+b%26c", sent = {},
        line = "GET /orders?apikey=a+b%26c HTTP/1.1" },
      { name = "a key in the query with header \"\", ignoring X-Api-Key",
        config = { keys = { "k1" }, header = "", query_arg = "key" },
        target = "/orders?key=k1", sent = { { "X-Api-Key", "not-a-key" } },
        line = "GET /orders?key=k1 HTTP/1.1", want = { ["x-api-key"] = { "not-a-key" } } },
      { name = "a key in the header and an empty argument of the same name",
        config = { keys = { "k1" }, query_arg = "apikey" },
        target = "/orders?apikey=&x=1", sent = { { "X-Api-Key", "k1" } },
        line = "GET /orders?apikey=&x=1 HTTP/1.1" },
      { name = "with hide_credentials, without the header",
        config = { keys = { "k1" }, hide_credentials = true },
        target = "/orders", sent = { { "X-Api-Key", "k1" }, { "X-Other", "o" } },
        line = "GET /orders HTTP/1.1", want = { ["x-api-key"] = {}, ["x-other"] = { "o" } } },
      { name = "with hide_credentials, without the argument, the rest of the query byte for byte",
        config = { keys = { "k1" }, query_arg = "apikey", hide_credentials = true },
        target = "/orders?a=%41+b&apikey=k1&c", sent = {},
        line = "GET /orders?a=%41+b&c HTTP/1.1" },
      { name = "with hide_credentials, without the '?' when the argument was all the query",
        config = { keys = { "k1" }, query_arg = "apikey", hide_credentials = true },
        target = "/orders?apikey=k1", sent = {}, line = "GET /orders HTTP/1.1" },
      { name = "with hide_credentials, without a percent-encoded argument name",
        config = { keys = { "k1" }, query_arg = "apikey", hide_credentials = true },
        target = "/orders?%61pikey=k1&z=2", sent = {}, line = "GET /orders?z=2 HTTP/1.1" },
      { name = "with hide_credentials, without empty arguments of the name beside a header key",
        config = { keys = { "k1" }, query_arg = "apikey", hide_credentials = true },
        target = "/orders?apikey&x=1&apikey=", sent = { { "X-Api-Key", "k1" } },
        line = "GET /orders?x=1 HTTP/1.1", want = { ["x-api-key"] = {} } },
      { name = "with hide_credentials and a key in the header, a query without the argument byte for byte",
        config = { keys = { "k1" }, query_arg = "apikey", hide_credentials = true },
        target = "/orders?a=1&&b=%20&", sent = { { "X-Api-Key", "k1" } },
        line = "GET /orders?a=1&&b=%20& HTTP/1.1", want = { ["x-api-key"] = {} } },
      { name = "with hide_credentials, without the empty parts around the argument it removes",
        config = { keys = { "k1" }, query_arg = "apikey", hide_credentials = true },
        target = "/orders?a=1&&apikey=k1&", sent = {}, line = "GET /orders?a=1 HTTP/1.1" },
      { name = "with header \"\" and hide_credentials, X-Api-Key left for the origin",
        config = { keys = { "k1" }, header = "", query_arg = "key", hide_credentials = true },
        target = "/orders?key=k1", sent = { { "X-Api-Key", "k1" } },
        line = "GET /orders HTTP/1.1", want = { ["x-api-key"] = { "k1" } } },
      { name = "with hide_credentials and a key in the query, the query of other names untouched",
        config = { keys = { "k1" }, query_arg = "apikey", hide_credentials = true },
        target = "/orders?apikeys=1&my_apikey=2&apikey=k1", sent = {},
        line = "GET /orders?apikeys=1&my_apikey=2 HTTP/1.1" },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local p = plugin(c.config)
        local req = request(c.target, c.sent)
        assert.equal("continue", p:call("request_headers", req))
        assert.is_nil(req:reply())
        local head = harness.parse_head(assert(req:upstream_head()))
        assert.equal(c.line, head.line)
        for name, want in pairs(c.want or {}) do
          assert.same(want, values(head.fields, name), name)
        end
      end)
    end
  end)

  describe("answers 401 itself", function()
    -- config; target and sent: the request; body: the reply's body;
    -- challenge: its WWW-Authenticate.
    local QUERY = { keys = { "k1", "k2" }, query_arg = "apikey" }
    local cases = {
      { name = "to a request without a key", config = QUERY, target = "/", body = NO_KEY },
      { name = "to an empty header", config = QUERY, target = "/", sent = { { "X-Api-Key", "" } },
        body = NO_KEY },
      { name = "to an empty argument", config = QUERY, target = "/?apikey=", body = NO_KEY },
      { name = "to an argument without '='", config = QUERY, target = "/?apikey", body = NO_KEY },
      { name = "to a key in the query when query_arg is not set (the default)",
        config = { keys = { "k1" } }, target = "/?apikey=k1", body = NO_KEY },
      { name = "to a key after an empty argument name when query_arg is not set",
        config = { keys = { "k1" } }, target = "/?=k1", body = NO_KEY },
      { name = "to a key in X-Api-Key when header is \"\"",
        config = { keys = { "k1" }, header = "", query_arg = "key" }, target = "/",
        sent = { { "X-Api-Key", "k1" } }, body = NO_KEY },
      { name = "to a key in another header than the configured one",
        config = { keys = { "k1" }, header = "X-Token" }, target = "/",
        sent = { { "X-Api-Key", "k1" } }, body = NO_KEY },
      { name = "to an unknown key", config = QUERY, target = "/", sent = { { "X-Api-Key", "k3" } },
        body = BAD_KEY },
      { name = "to a known key in another case", config = QUERY, target = "/",
        sent = { { "X-Api-Key", "K1" } }, body = BAD_KEY },
      { name = "to an unknown key in the query", config = QUERY, target = "/?apikey=nope",
        body = BAD_KEY },
      { name = "to two keys in the header, even both known", config = QUERY, target = "/",
        sent = { { "X-Api-Key", "k1" }, { "X-Api-Key", "k2" } }, body = TWO_KEYS },
      { name = "to two arguments", config = QUERY, target = "/?apikey=k1&apikey=k1", body = TWO_KEYS },
      { name = "to a key in the header and one in the query", config = QUERY, target = "/?apikey=k1",
        sent = { { "X-Api-Key", "k1" } }, body = TWO_KEYS },
      { name = "with the configured realm",
        config = { keys = { "k1" }, realm = "orders api" }, target = "/", body = NO_KEY,
        challenge = 'Key realm="orders api"' },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", and nothing goes upstream", function()
        local p = plugin(c.config)
        local req = request(c.target, c.sent)
        assert.equal("respond", p:call("request_headers", req))
        local status, headers, body = req:reply()
        assert.equal(401, status)
        assert.equal(c.challenge or 'Key realm="sluice"', headers["www-authenticate"])
        assert.equal("application/json", headers["content-type"])
        assert.equal(c.body, body)
        assert.is_nil(req:upstream_head())
      end)
    end
  end)

  describe("refuses a bad configuration", function()
    -- config: a table, or YAML text; error: the whole message.
    local cases = {
      { name = "no keys", config = { header = "X-Key" },
        error = "plugin key-auth: config.keys: required field missing" },
      { name = "an empty keys list", config = { keys = {} },
        error = "plugin key-auth: config.keys: number of items must be at least 1" },
      { name = "an empty key", config = { keys = { "a", "" } },
        error = "plugin key-auth: config.keys[1]: length must be at least 1" },
      { name = "a key with a control byte", config = { keys = { "a\tb" } },
        error = "plugin key-auth: config.keys[0]: a key cannot contain control bytes" },
      { name = "an unquoted number as a key", config = "keys: [a, 123]",
        error = "config:1:11: plugin key-auth: config.keys[1]: expected a string, got 123" },
      { name = "header and query_arg both \"\"", config = { keys = { "a" }, header = "" },
        error = "plugin key-auth: config: header and query_arg are both \"\": there is nowhere "
                .. "to read a key from" },
      { name = "a header name that is not a token", config = { keys = { "a" }, header = "X Api Key" },
        error = "plugin key-auth: config.header: expected a header name, or \"\" to not read keys "
                .. "from a header" },
      { name = "a query argument name with '&'", config = { keys = { "a" }, query_arg = "a&b" },
        error = "plugin key-auth: config.query_arg: a query argument name cannot contain '&', '=', "
                .. "'#', spaces or control bytes" },
      { name = "a query argument name with a space", config = { keys = { "a" }, query_arg = "api key" },
        error = "plugin key-auth: config.query_arg: a query argument name cannot contain '&', '=', "
                .. "'#', spaces or control bytes" },
      { name = "a realm with a backslash", config = { keys = { "a" }, realm = "a\\b" },
        error = "plugin key-auth: config.realm: a realm cannot contain '\"', '\\' or control bytes" },
      { name = "a string for hide_credentials", config = { keys = { "a" }, hide_credentials = "yes" },
        error = "plugin key-auth: config.hide_credentials: expected a boolean, got \"yes\"" },
      { name = "a misspelt key", config = { keys = { "a" }, query = "apikey" },
        error = "plugin key-auth: config.query: unknown field" },
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
