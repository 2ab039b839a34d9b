-- The maintenance plugin's hooks, run by the plugin harness against
-- requests written here (the real core, no proxy): the page each template,
-- content type and message make, its status and fields, which client
-- addresses the allow-list lets through (IPv4, IPv6, mapped, prefixes
-- that are not a multiple of 16), and the configurations it refuses,
-- message for message. The integration spec checks the same plugin
-- through the running proxy.
--
-- Run: make build/libsluice.so && busted --lua=luajit spec/plugins/maintenance/
local harness = require "spec.plugin_harness"

local PATH = "plugins-lua/maintenance.lua"

local DEFAULT_MESSAGE = "The service is down for maintenance. Please try again later."
local DEFAULT_PAGE = table.concat({
  "<!DOCTYPE html>",
  "<html lang=\"en\">",
  "<head><meta charset=\"utf-8\"><title>Down for maintenance</title></head>",
  "<body>",
  "<h1>Down for maintenance</h1>",
  "<p>" .. DEFAULT_MESSAGE .. "</p>",
  "</body>",
  "</html>",
  "",
}, "\n")

local function plugin(config)
  local p, err = harness.load(PATH, config)
  assert(p, err)
  return p
end

local function request(client, method)
  return assert(harness.request((method or "GET") .. " /shop HTTP/1.1\r\nHost: shop.example\r\n\r\n",
                                { client = client }))
end

describe("maintenance", function()
  describe("answers with the page", function()
    -- config (nil: the defaults); status, want (lower-case name -> value,
    -- false: absent) and body of the reply.
    local cases = {
      { name = "with the defaults: 503, the HTML page, no-store and no Retry-After",
        config = nil, status = 503,
        want = { ["content-type"] = "text/html; charset=utf-8", ["cache-control"] = "no-store",
                 ["retry-after"] = false },
        body = DEFAULT_PAGE },
      { name = "with the configured status, even a 2xx",
        config = { status = 200, template = "ok" }, status = 200,
        want = { ["cache-control"] = "no-store" }, body = "ok" },
      { name = "with Retry-After and ${retry_after} from retry_after",
        config = { retry_after = 3600, template = "back in ${retry_after}s" }, status = 503,
        want = { ["retry-after"] = "3600" }, body = "back in 3600s" },
      { name = "with a retry_after of 0, sent rather than left out",
        config = { retry_after = 0, template = "[${retry_after}]" }, status = 503,
        want = { ["retry-after"] = "0" }, body = "[0]" },
      { name = "with ${retry_after} empty when retry_after is not set",
        config = { template = "[${retry_after}]" }, status = 503,
        want = { ["retry-after"] = false }, body = "[]" },
      { name = "with every placeholder, each as often as it appears",
        config = { status = 502, retry_after = 5, message = "m",
                   template = "${status} ${status} ${retry_after} ${message}${message}" },
        status = 502, body = "502 502 5 mm" },
      { name = "with a template without placeholders as it is, '$' not before '{' as text",
        config = { template = "$5 $ {status} $status {status}$\n" }, status = 503,
        body = "$5 $ {status} $status {status}$\n" },
      { name = "with the message escaped as HTML for an HTML type",
        config = { message = [[<b>"Tom" & 'Jerry'</b>]] }, status = 503,
        body = (DEFAULT_PAGE:gsub(DEFAULT_MESSAGE:gsub("%p", "%%%0"),
          "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;")) },
      { name = "with the message escaped as XML for an XML type",
        config = { content_type = "application/xml", message = "a<b & c>d",
                   template = "<m>${message}</m>" },
        status = 503, want = { ["content-type"] = "application/xml" },
        body = "<m>a&lt;b &amp; c&gt;d</m>" },
      { name = "with the message escaped as a JSON string for a JSON type",
        config = { content_type = "application/problem+json; charset=utf-8",
                   message = "say \"hi\"\\\n\tnow </x>",
                   template = "{\"status\": ${status}, \"message\": \"${message}\"}" },
        status = 503, want = { ["content-type"] = "application/problem+json; charset=utf-8" },
        body = "{\"status\": 503, \"message\": \"say \\\"hi\\\"\\\\\\u000a\\u0009now </x>\"}" },
      { name = "with the message as it is for another type",
        config = { content_type = "text/plain", message = "<a href=\"x\">&</a>\n",
                   template = "${message}" },
        status = 503, want = { ["content-type"] = "text/plain" }, body = "<a href=\"x\">&</a>\n" },
      { name = "with the type compared without regard to case",
        config = { content_type = "Text/HTML", message = "<x>", template = "${message}" },
        status = 503, want = { ["content-type"] = "Text/HTML" }, body = "&lt;x&gt;" },
      { name = "with placeholders in the message left as text, not expanded",
        config = { message = "${status} ${retry_after}", retry_after = 9, template = "${message}" },
        status = 503, body = "${status} ${retry_after}" },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local p = plugin(c.config)
        local req = request()
        assert.equal("respond", p:call("request_headers", req))
        local status, headers, body = req:reply()
        assert.equal(c.status, status)
        for name, want in pairs(c.want or {}) do
          assert.equal(want or nil, headers[name], name)
        end
        assert.equal(c.body, body)
        assert.is_nil(req:upstream_head())
      end)
    end

    it("to every method", function()
      local p = plugin({ template = "down" })
      for _, m in ipairs { "POST", "DELETE", "OPTIONS", "PATCH" } do
        local req = request(nil, m)
        assert.equal("respond", p:call("request_headers", req), m)
        local status, _, body = req:reply()
        assert.equal(503, status, m)
        assert.equal("down", body, m)
      end
    end)
  end)

  describe("with an allow-list", function()
    -- allow: the list; client: the client's address; through: whether its
    -- request goes to the origin (else it gets the page).
    local cases = {
      { allow = { "192.0.2.7" }, client = "192.0.2.7", through = true },
      { allow = { "192.0.2.7" }, client = "192.0.2.8", through = false },
      { allow = { "192.0.2.7/32" }, client = "192.0.2.7", through = true },
      { allow = { "10.0.0.0/8" }, client = "10.255.255.255", through = true },
      { allow = { "10.0.0.0/8" }, client = "11.0.0.0", through = false },
      { allow = { "192.0.2.0/25" }, client = "192.0.2.127", through = true },
      { allow = { "192.0.2.0/25" }, client = "192.0.2.128", through = false },
      { allow = { "10.1.2.3/8" }, client = "10.9.9.9", through = true },   -- host bits ignored
      { allow = { "0.0.0.0/0" }, client = "203.0.113.1", through = true },
      { allow = { "0.0.0.0/0" }, client = "2001:db8::1", through = false },
      { allow = { "198.51.100.0/24", "192.0.2.7" }, client = "192.0.2.7", through = true },
      { allow = { "::1" }, client = "::1", through = true },
      { allow = { "::1" }, client = "127.0.0.1", through = false },
      { allow = { "2001:db8::/32" }, client = "2001:db8:ffff::1", through = true },
      { allow = { "2001:db8::/32" }, client = "2001:db9::1", through = false },
      { allow = { "2001:db8::/20" }, client = "2001:fff::1", through = true },
      { allow = { "2001:db8::/20" }, client = "2001:1000::1", through = false },
      { allow = { "2001:db8:0:0:0:0:0:7" }, client = "2001:db8::7", through = true },
      { allow = { "::/0" }, client = "2001:db8::7", through = true },
      { allow = { "::/0" }, client = "192.0.2.7", through = false },
      { allow = { "192.0.2.0/24" }, client = "::ffff:192.0.2.9", through = true },
      { allow = { "::ffff:192.0.2.9" }, client = "192.0.2.9", through = true },
      { allow = { "2001:db8::/32" }, client = "::ffff:192.0.2.9", through = false },
    }
    for _, c in ipairs(cases) do
      local what = c.through and " goes to the origin" or " gets the page"
      it("[" .. table.concat(c.allow, ", ") .. "]: " .. c.client .. what, function()
        local p = plugin({ allow = c.allow })
        local req = request(c.client)
        if c.through then
          assert.equal("continue", p:call("request_headers", req))
          assert.is_nil(req:reply())
          assert.equal("GET /shop HTTP/1.1", harness.parse_head(assert(req:upstream_head())).line)
        else
          assert.equal("respond", p:call("request_headers", req))
          assert.equal(503, (req:reply()))
        end
      end)
    end
  end)

  describe("refuses a bad configuration", function()
    local PLACEHOLDER = "): use ${status}, ${retry_after} or ${message}"
    local ADDRESS = "expected an IP address or a network (192.0.2.7, 192.0.2.0/24, 2001:db8::/32)"
    -- config: a table, or YAML text; error: the whole message.
    local cases = {
      { name = "a status below 200", config = { status = 199 },
        error = "plugin maintenance: config.status: value should be between 200 and 599, got 199" },
      { name = "a status above 599", config = { status = 600 },
        error = "plugin maintenance: config.status: value should be between 200 and 599, got 600" },
      { name = "a quoted status", config = "status: \"503\"",
        error = "config:1:9: plugin maintenance: config.status: expected an integer, got \"503\"" },
      { name = "a retry_after over a year", config = { retry_after = 31536001 },
        error = "plugin maintenance: config.retry_after: value should be between 0 and 31536000, "
                .. "got 31536001" },
      { name = "an unknown placeholder", config = { template = "<p>${reason}</p>" },
        error = "plugin maintenance: config.template: unknown placeholder at byte 4 (${reason}</p>"
                .. PLACEHOLDER },
      { name = "a placeholder in another case", config = { template = "${Status}" },
        error = "plugin maintenance: config.template: unknown placeholder at byte 1 (${Status}"
                .. PLACEHOLDER },
      { name = "an empty placeholder", config = { template = "a ${} b" },
        error = "plugin maintenance: config.template: unknown placeholder at byte 3 (${} b" .. PLACEHOLDER },
      { name = "an unclosed placeholder after a good one", config = { template = "${status} ${message" },
        error = "plugin maintenance: config.template: unknown placeholder at byte 11 (${message"
                .. PLACEHOLDER },
      { name = "an empty content type", config = { content_type = "" },
        error = "plugin maintenance: config.content_type: length must be at least 1" },
      { name = "a content type with a line break", config = { content_type = "text/plain\nX-A: 1" },
        error = "plugin maintenance: config.content_type: cannot contain CR, LF or NUL" },
      { name = "an address that is not one", config = { allow = { "10.0.0.1", "10.0.0.256" } },
        error = "plugin maintenance: config.allow[1]: " .. ADDRESS },
      { name = "an address with a first byte over 255", config = { allow = { "256.0.0.1" } },
        error = "plugin maintenance: config.allow[0]: " .. ADDRESS },
      { name = "a host name", config = { allow = { "localhost" } },
        error = "plugin maintenance: config.allow[0]: " .. ADDRESS },
      { name = "an IPv4 prefix over 32", config = { allow = { "10.0.0.0/33" } },
        error = "plugin maintenance: config.allow[0]: " .. ADDRESS },
      { name = "an IPv6 prefix over 128", config = { allow = { "2001:db8::/129" } },
        error = "plugin maintenance: config.allow[0]: " .. ADDRESS },
      { name = "a network without its prefix length", config = { allow = { "10.0.0.0/" } },
        error = "plugin maintenance: config.allow[0]: " .. ADDRESS },
      { name = "an IPv6 address with two '::'", config = { allow = { "2001::db8::1" } },
        error = "plugin maintenance: config.allow[0]: " .. ADDRESS },
      { name = "an IPv6 address with '::' and eight groups besides",
        config = { allow = { "1:2:3:4::5:6:7:8" } },
        error = "plugin maintenance: config.allow[0]: " .. ADDRESS },
      { name = "an IPv6 address with nine groups", config = { allow = { "1:2:3:4:5:6:7:8:9" } },
        error = "plugin maintenance: config.allow[0]: " .. ADDRESS },
      { name = "a misspelt key", config = { allowed = { "10.0.0.1" } },
        error = "plugin maintenance: config.allowed: unknown field" },
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
