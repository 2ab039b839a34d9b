-- The body-transform plugin end to end: the real proxy in front of the
-- bundled origin, whose /echo answers with the raw request it received
-- (as text/plain, so the response side is shown on JSON local replies).
--
-- Run: busted --lua=luajit spec/plugins/body-transform/integration_spec.lua
if package.path:sub(1, 10) ~= "lua/?.lua;" then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
end
local h = require "spec.helpers"
local S = require "spec.plugins.support"
local json = require "sluice.json"

local start = S.start

-- The body of the request /echo sent back, and its Content-Length.
local function echoed(resp)
  local head, body = resp.body:match("^(.-)\r\n\r\n(.*)$")
  assert(head, resp.body)
  return body, head:match("\r\n[Cc]ontent%-[Ll]ength: (%d+)")
end

local function post(port, body, ct, target)
  return assert(h.request(port, h.build_request("POST", target or "/echo",
                                                { { "Content-Type", ct or "application/json" } },
                                                body)))
end

describe("body-transform plugin", function()
  local origin

  lazy_setup(function()
    origin = h.start_origin()
  end)

  lazy_teardown(function()
    if origin then origin:stop() end
  end)

  it("rewrites the JSON request body the origin gets, with its Content-Length", function()
    local proxy = start(origin, "  - name: body-transform\n    config: "
      .. "{request: {remove: [password], rename: {user: login}, add: {source: gateway}}}")
    finally(function() proxy:stop() end)
    local resp = post(proxy.port, '{"user":"ann","password":"secret","n":1}')
    assert.equal(200, resp.status)
    local body, len = echoed(resp)
    assert.same({ login = "ann", n = 1, source = "gateway" }, json.decode(body))
    assert.equal(tostring(#body), len)
  end)

  it("passes a body that is not JSON byte for byte", function()
    local proxy = start(origin, "  - name: body-transform\n    config: {request: {add: {a: \"1\"}}}")
    finally(function() proxy:stop() end)
    for _, c in ipairs { { "{broken", "application/json" }, { '{"x":1}', "text/plain" } } do
      local body = echoed(post(proxy.port, c[1], c[2]))
      assert.equal(c[1], body)
    end
  end)

  it("rewrites a JSON response, here another plugin's local reply", function()
    local proxy = start(origin, table.concat({
      "  - name: key-auth",
      "    config: {keys: [k1]}",
      "  - name: body-transform",
      "    config: {response: {rename: {message: error}, add: {docs: \"https://example.com\"}}}",
    }, "\n"))
    finally(function() proxy:stop() end)
    local resp = assert(h.get(proxy.port, "/echo"))
    assert.equal(401, resp.status)
    local doc = json.decode(resp.body)
    assert.equal("https://example.com", doc.docs)
    assert.is_string(doc.error)
    assert.is_nil(doc.message)
    assert.equal(tostring(#resp.body), resp.headers["content-length"])
    -- the origin's own text/plain answers are left alone
    resp = assert(h.get(proxy.port, "/echo", { { "X-Api-Key", "k1" } }))
    assert.equal(200, resp.status)
    assert.matches("^GET /echo HTTP/1.1\r\n", resp.body)
  end)

  it("buffers only the sides it has operations for", function()
    -- request operations only: a response over max_body_buffer still streams
    local port = h.free_port()
    local cfg = S.config(port, origin.port,
      "  - name: body-transform\n    config: {request: {add: {a: \"1\"}}}")
    local proxy = h.start_proxy { config = cfg .. "limits: {max_body_buffer: 1k}\n", port = port }
    finally(function() proxy:stop() end)
    local resp = assert(h.get(proxy.port, "/chunked/5000"))
    assert.equal(200, resp.status)
    assert.equal("chunked", resp.headers["transfer-encoding"])
    assert.equal(5000, #resp.body)
  end)

  describe("refuses a bad configuration", function()
    local cases = {
      {
        name = "an add value that is not a string",
        config = "      request:\n        add: {n: 2}",
        error = "11:18: plugin body-transform: config.request.add.n: expected a string, got 2",
      },
      {
        name = "an unknown operation",
        config = "      response:\n        replace: {a: b}",
        error = "11:18: plugin body-transform: config.response.replace: unknown field",
      },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", naming file:line:col, plugin and key path", function()
        S.assert_config_error("  - name: body-transform\n    config:\n" .. c.config, c.error)
      end)
    end
  end)
end)
