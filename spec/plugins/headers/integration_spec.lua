-- The headers plugin end to end: the real proxy in front of the bundled
-- origin, whose /echo answers with the raw request it received (and
-- Content-Type and X-Origin-Name fields of its own), so each case checks
-- what the origin got and what the client got.
--
-- Run: busted --lua=luajit spec/plugins/headers/integration_spec.lua
local h = require "spec.helpers"
local S = require "spec.plugins.support"

local start, parse_request = S.start, S.parse_request

-- The values of a response field called name (any case), in order.
local function values(resp, name)
  local t = {}
  for _, f in ipairs(resp.header_list) do
    if f.name:lower() == name:lower() then t[#t + 1] = f.value end
  end
  return t
end

describe("headers plugin", function()
  local origin

  lazy_setup(function()
    origin = h.start_origin()
  end)

  lazy_teardown(function()
    if origin then origin:stop() end
  end)

  describe("on the request to the origin", function()
    -- config: the plugin's config (YAML flow); sent: the client's fields;
    -- want: lower-case name -> the values the origin must get (false: none).
    local cases = {
      {
        name = "add appends a field, after the client's",
        config = "{request: {add: {X-Tag: two}}}",
        sent = { { "X-Tag", "one" } },
        want = { ["x-tag"] = { "one", "two" } },
      },
      {
        name = "set replaces every field of the name",
        config = "{request: {set: {X-Tag: mine}}}",
        sent = { { "X-Tag", "one" }, { "x-tag", "two" } },
        want = { ["x-tag"] = { "mine" } },
      },
      {
        name = "set adds the field when the client sent none",
        config = "{request: {set: {X-Tag: mine}}}",
        sent = {},
        want = { ["x-tag"] = { "mine" } },
      },
      {
        name = "remove drops every field of the name, in any case",
        config = "{request: {remove: [x-secret, X-Other]}}",
        sent = { { "X-Secret", "1" }, { "X-SECRET", "2" }, { "X-Keep", "k" } },
        want = { ["x-secret"] = false, ["x-other"] = false, ["x-keep"] = { "k" } },
      },
      {
        name = "rename moves every field, in order",
        config = "{request: {rename: {X-Old: X-New}}}",
        sent = { { "X-Old", "a" }, { "X-Mid", "m" }, { "x-old", "b" } },
        want = { ["x-old"] = false, ["x-new"] = { "a", "b" }, ["x-mid"] = { "m" } },
      },
      {
        name = "rename replaces fields of the new name",
        config = "{request: {rename: {X-Old: X-New}}}",
        sent = { { "X-New", "client" }, { "X-Old", "a" } },
        want = { ["x-old"] = false, ["x-new"] = { "a" } },
      },
      {
        name = "rename of an absent field changes nothing",
        config = "{request: {rename: {X-Old: X-New}}}",
        sent = { { "X-New", "client" } },
        want = { ["x-new"] = { "client" } },
      },
      {
        name = "renames happen at once: {a: b, b: a} swaps",
        config = "{request: {rename: {X-A: X-B, X-B: X-A}}}",
        sent = { { "X-A", "was-a" }, { "X-B", "was-b" } },
        want = { ["x-a"] = { "was-b" }, ["x-b"] = { "was-a" } },
      },
      {
        name = "two names renamed to one keep both values",
        config = "{request: {rename: {X-A: X-C, X-B: X-C}}}",
        sent = { { "X-A", "a" }, { "X-B", "b" } },
        want = { ["x-a"] = false, ["x-b"] = false, ["x-c"] = { "a", "b" } },
      },
      {
        name = "operations run as remove, rename, set, add",
        config = "{request: {remove: [X-A], rename: {X-B: X-A}, set: {X-C: set}, add: {X-C: added}}}",
        sent = { { "X-A", "client-a" }, { "X-B", "client-b" }, { "X-C", "client-c" } },
        want = { ["x-a"] = { "client-b" }, ["x-b"] = false, ["x-c"] = { "set", "added" } },
      },
      {
        name = "values are sent byte for byte (quoted numbers, spaces, UTF-8)",
        config = "{request: {set: {X-Num: \"42\", X-Text: \"a  b, c\", X-Utf: \"é\"}}}",
        sent = {},
        want = { ["x-num"] = { "42" }, ["x-text"] = { "a  b, c" }, ["x-utf"] = { "é" } },
      },
      {
        name = "response changes leave the request alone",
        config = "{response: {remove: [X-Tag], add: {X-Tag: resp}}}",
        sent = { { "X-Tag", "client" } },
        want = { ["x-tag"] = { "client" } },
      },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local proxy = start(origin, "  - name: headers\n    config: " .. c.config)
        finally(function() proxy:stop() end)
        local resp = assert(h.get(proxy.port, "/echo", c.sent))
        assert.equal(200, resp.status)
        local got = parse_request(resp.body)
        for name, want in pairs(c.want) do
          if want == false then
            assert.is_nil(got.headers[name], name .. " reached the origin")
          else
            assert.same(want, got.headers[name], name)
          end
        end
      end)
    end
  end)

  describe("on the response to the client", function()
    local cases = {
      {
        name = "add, set and remove",
        config = "{response: {add: {X-Frame-Options: DENY}, set: {Content-Type: text/x-echo}, "
                 .. "remove: [X-Origin-Name]}}",
        want = { ["x-frame-options"] = { "DENY" }, ["content-type"] = { "text/x-echo" },
                 ["x-origin-name"] = {} },
      },
      {
        name = "rename of a field the origin sent",
        config = "{response: {rename: {X-Origin-Name: X-Backend}}}",
        want = { ["x-backend"] = { "origin" }, ["x-origin-name"] = {} },
      },
      {
        name = "add keeps the origin's field and appends one",
        config = "{response: {add: {X-Origin-Name: proxy}}}",
        want = { ["x-origin-name"] = { "origin", "proxy" } },
      },
      {
        name = "request changes leave the response alone",
        config = "{request: {remove: [X-Origin-Name], set: {X-Frame-Options: x}}}",
        want = { ["x-origin-name"] = { "origin" }, ["x-frame-options"] = {} },
      },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local proxy = start(origin, "  - name: headers\n    config: " .. c.config)
        finally(function() proxy:stop() end)
        local resp = assert(h.get(proxy.port, "/echo"))
        assert.equal(200, resp.status)
        for name, want in pairs(c.want) do assert.same(want, values(resp, name), name) end
        -- the body is still what the origin sent
        assert.matches("^GET /echo HTTP/1.1\r\n", resp.body)
      end)
    end

    it("also changes another plugin's local reply (maintenance's 503)", function()
      local proxy = start(origin, table.concat({
        "  - maintenance",
        "  - name: headers",
        "    config: {response: {set: {X-Frame-Options: DENY}, remove: [Cache-Control]}}",
      }, "\n"))
      finally(function() proxy:stop() end)
      local resp = assert(h.get(proxy.port, "/echo"))
      assert.equal(503, resp.status)
      assert.same({ "DENY" }, values(resp, "X-Frame-Options"))
      assert.same({}, values(resp, "Cache-Control"))
    end)

    it("runs after request-id, so it can rename the id's response field", function()
      local proxy = start(origin, table.concat({
        "  - request-id",
        "  - name: headers",
        "    config: {response: {rename: {X-Request-Id: X-Trace-Id}}}",
      }, "\n"))
      finally(function() proxy:stop() end)
      local resp = assert(h.get(proxy.port, "/echo", { { "X-Request-Id", "abc" } }))
      assert.equal(200, resp.status)
      assert.same({ "abc" }, values(resp, "X-Trace-Id"))
      assert.same({}, values(resp, "X-Request-Id"))
      assert.same({ "abc" }, parse_request(resp.body).headers["x-request-id"])
    end)
  end)

  describe("refuses a bad configuration", function()
    -- config: the lines under `config:` (line 10 on); error: what follows
    -- "FILE:" in the message.
    local cases = {
      {
        name = "a field the proxy manages (Host)",
        config = "      request:\n        set: {Host: example.com}",
        error = "11:14: plugin headers: config.request.set: 'Host' is managed by the proxy "
                .. "and cannot be changed by a plugin",
      },
      {
        name = "a framing field (Content-Length) in remove",
        config = "      response:\n        remove: [X-A, content-length]",
        error = "11:23: plugin headers: config.response.remove[1]: 'content-length' is managed by the proxy",
      },
      {
        name = "a framing field as a rename target",
        config = "      request:\n        rename: {X-A: Transfer-Encoding}",
        error = "11:23: plugin headers: config.request.rename.X-A: 'Transfer-Encoding' is managed by the proxy",
      },
      {
        name = "a name that is not a token",
        config = "      request:\n        add: {\"X Tag\": v}",
        error = "11:24: plugin headers: config.request.add.X Tag: invalid key: invalid value \"X Tag\"",
      },
      {
        name = "an unquoted number as a value",
        config = "      request:\n        set: {X-Version: 2}",
        error = "11:26: plugin headers: config.request.set.X-Version: expected a string, got 2",
      },
      {
        name = "a value with a line break",
        config = "      response:\n        add: {X-A: \"a\\r\\nInjected: 1\"}",
        error = "11:20: plugin headers: config.response.add.X-A: a header value cannot contain CR, LF or NUL",
      },
      {
        name = "an unknown operation",
        config = "      request:\n        append: {X-A: b}",
        error = "11:17: plugin headers: config.request.append: unknown field",
      },
      {
        name = "remove given as a mapping",
        config = "      request:\n        remove: {X-A: b}",
        error = "11:17: plugin headers: config.request.remove: expected an array, got a map",
      },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", naming file:line:col, plugin and key path (-t and at start)", function()
        S.assert_config_error("  - name: headers\n    config:\n" .. c.config, c.error)
      end)
    end
  end)
end)
