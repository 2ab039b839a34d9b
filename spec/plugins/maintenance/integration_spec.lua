-- The maintenance plugin end to end: the real proxy in front of the bundled
-- origin, whose /echo answers with the raw request it received. Every
-- request carries a unique X-Case, so a case can check that a request
-- answered with the maintenance page never reached the origin.
--
-- Run: busted --lua=luajit spec/plugins/maintenance/integration_spec.lua
local h = require "spec.helpers"
local S = require "spec.plugins.support"

local start = S.start

local send_case = S.sender("maintenance")

-- Sends method /echo with a unique X-Case; returns the response and the id.
local function send(proxy, method, body)
  return send_case(proxy, method or "GET", "/echo", nil, body)
end

-- Whether the origin logged the request of case id, after waiting a
-- moment: the maintenance page leaves no request to wait for instead.
local function origin_got(origin, id)
  local found = h.wait_until(function() return S.origin_has(origin, id) end, 0.3)
  return found == true
end

local DEFAULT_PAGE = table.concat({
  "<!DOCTYPE html>",
  "<html lang=\"en\">",
  "<head><meta charset=\"utf-8\"><title>Down for maintenance</title></head>",
  "<body>",
  "<h1>Down for maintenance</h1>",
  "<p>The service is down for maintenance. Please try again later.</p>",
  "</body>",
  "</html>",
  "",
}, "\n")

describe("maintenance plugin", function()
  local origin

  lazy_setup(function()
    origin = h.start_origin()
  end)

  lazy_teardown(function()
    if origin then origin:stop() end
  end)

  describe("answers every request with the page", function()
    -- config: the plugin's config (YAML flow, "" for the defaults); status,
    -- want (fields, false: absent) and body of the answer.
    local cases = {
      {
        name = "with the defaults: 503 and an HTML page",
        config = "",
        status = 503,
        want = {
          ["content-type"] = "text/html; charset=utf-8",
          ["cache-control"] = "no-store",
          ["retry-after"] = false,
        },
        body = DEFAULT_PAGE,
      },
      {
        name = "escaping the message for HTML",
        config = "{message: \"Back at <b>noon</b> & 'soon'\", retry_after: 3600}",
        status = 503,
        want = { ["retry-after"] = "3600" },
        body = DEFAULT_PAGE:gsub("The service is.-later%.",
          "Back at &lt;b&gt;noon&lt;/b&gt; &amp; &#39;soon&#39;"),
      },
      {
        name = "from a JSON template, escaping the message for JSON",
        config = "{status: 500, retry_after: 120, content_type: application/json, "
                 .. "message: \"say \\\"hi\\\"\\n\", "
                 .. "template: '{\"status\": ${status}, \"retry_after\": ${retry_after}, "
                 .. "\"message\": \"${message}\"}'}",
        status = 500,
        want = { ["content-type"] = "application/json", ["retry-after"] = "120" },
        body = '{"status": 500, "retry_after": 120, "message": "say \\"hi\\"\\u000a"}',
      },
      {
        name = "from a plain text template, the message as is, ${retry_after} empty when unset",
        config = "{status: 418, content_type: text/plain, message: \"<as is> & more\", "
                 .. "template: \"${status}: ${message} [${retry_after}] $ {x} $x\\n\"}",
        status = 418,
        want = { ["content-type"] = "text/plain", ["retry-after"] = false },
        body = "418: <as is> & more [] $ {x} $x\n",
      },
    }
    for _, c in ipairs(cases) do
      it(c.name .. "; the origin gets nothing", function()
        local plugins = c.config == "" and "  - maintenance"
          or ("  - name: maintenance\n    config: " .. c.config)
        local proxy = start(origin, plugins)
        finally(function() proxy:stop() end)
        local resp, id = send(proxy)
        assert.equal(c.status, resp.status)
        for name, want in pairs(c.want) do
          assert.equal(want or nil, resp.headers[name], name)
        end
        assert.equal(c.body, resp.body)
        assert.is_false(origin_got(origin, id))
      end)
    end

    describe("for any method", function()
      local proxy

      lazy_setup(function()
        proxy = start(origin, "  - name: maintenance\n    config: {retry_after: 60}")
      end)

      lazy_teardown(function()
        if proxy then proxy:stop() end
      end)

      it("HEAD gets the status and fields without the page", function()
        local resp, id = send(proxy, "HEAD")
        assert.equal(503, resp.status)
        assert.equal("60", resp.headers["retry-after"])
        assert.equal(tostring(#DEFAULT_PAGE), resp.headers["content-length"])
        assert.equal("", resp.body)
        assert.is_false(origin_got(origin, id))
      end)

      it("POST with a body gets the page", function()
        local resp, id = send(proxy, "POST", ("b"):rep(1000))
        assert.equal(503, resp.status)
        assert.equal(DEFAULT_PAGE, resp.body)
        assert.is_false(origin_got(origin, id))
      end)
    end)
  end)

  describe("lets an allowed client through", function()
    -- The specs' client is 127.0.0.1.
    local cases = {
      { allow = "[127.0.0.1]", through = true },
      { allow = "[10.0.0.0/8, 127.0.0.0/8]", through = true },
      { allow = "[127.0.0.1/32]", through = true },
      { allow = "[0.0.0.0/0]", through = true },
      { allow = "[\"::ffff:127.0.0.1\"]", through = true },
      { allow = "[127.0.0.2]", through = false },
      { allow = "[10.0.0.0/8, 127.0.1.0/24]", through = false },
      { allow = "[\"::1\", \"::/0\"]", through = false },
    }
    for _, c in ipairs(cases) do
      local what = c.through and "passes" or "gets the page"
      it("allow: " .. c.allow .. " - 127.0.0.1 " .. what, function()
        local proxy = start(origin, "  - name: maintenance\n    config: {allow: " .. c.allow .. "}")
        finally(function() proxy:stop() end)
        local resp = send(proxy)
        if c.through then
          assert.equal(200, resp.status)
          assert.matches("^GET /echo HTTP/1.1\r\n", resp.body)
        else
          assert.equal(503, resp.status)
        end
      end)
    end
  end)

  it("leaves a preflight to cors and adds CORS fields to the page", function()
    local proxy = start(origin, "  - maintenance\n  - name: cors\n    config: {origins: [https://app.example]}")
    finally(function() proxy:stop() end)
    local resp = assert(h.request(proxy.port, h.build_request("OPTIONS", "/echo", {
      { "Origin", "https://app.example" }, { "Access-Control-Request-Method", "GET" } })))
    assert.equal(204, resp.status)
    resp = assert(h.get(proxy.port, "/echo", { { "Origin", "https://app.example" } }))
    assert.equal(503, resp.status)
    assert.equal("https://app.example", resp.headers["access-control-allow-origin"])
  end)

  describe("refuses a bad configuration", function()
    local cases = {
      {
        name = "a status below 200",
        config = "      status: 100",
        error = "10:15: plugin maintenance: config.status: value should be between 200 and 599, got 100",
      },
      {
        name = "a status above 599",
        config = "      status: 600",
        error = "10:15: plugin maintenance: config.status: value should be between 200 and 599, got 600",
      },
      {
        name = "an unknown placeholder",
        config = "      template: \"${status} ${reason}\"",
        error = "10:17: plugin maintenance: config.template: unknown placeholder at byte 11 (${reason}): use ${status}, ${retry_after} or ${message}",
      },
      {
        name = "an unclosed placeholder",
        config = "      template: \"${message\"",
        error = "10:17: plugin maintenance: config.template: unknown placeholder at byte 1",
      },
      {
        name = "a negative retry_after",
        config = "      retry_after: -1",
        error = "10:20: plugin maintenance: config.retry_after: value should be between 0 and 31536000, got -1",
      },
      {
        name = "a duration for retry_after",
        config = "      retry_after: 10m",
        error = "10:20: plugin maintenance: config.retry_after: expected an integer, got \"10m\"",
      },
      {
        name = "a content type with a line break",
        config = "      content_type: \"text/plain\\r\\nX-Injected: 1\"",
        error = "10:21: plugin maintenance: config.content_type: cannot contain CR, LF or NUL",
      },
      {
        name = "an address that is not one",
        config = "      allow: [127.0.0.1, 300.0.0.1]",
        error = "10:26: plugin maintenance: config.allow[1]: expected an IP address or a network",
      },
      {
        name = "a prefix longer than the address",
        config = "      allow: [\"2001:db8::/129\"]",
        error = "10:15: plugin maintenance: config.allow[0]: expected an IP address or a network",
      },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", naming file:line:col, plugin and key path (-t and at start)", function()
        S.assert_config_error("  - name: maintenance\n    config:\n" .. c.config, c.error)
      end)
    end
  end)
end)
