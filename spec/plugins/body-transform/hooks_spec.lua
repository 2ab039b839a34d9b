-- The body-transform plugin's hooks, run by the plugin harness against
-- requests written here (the real core, no proxy): which bodies it
-- touches, what each operation does, what it leaves alone.
--
-- Run: make build/libsluice.so && busted --lua=luajit spec/plugins/body-transform/
if package.path:sub(1, 10) ~= "lua/?.lua;" then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
end
local harness = require "spec.plugin_harness"
local json = require "sluice.json"

local PATH = "plugins-lua/body-transform.lua"

-- A POST of body with Content-Type ct (nil: none).
local function post(body, ct)
  local raw = "POST /orders HTTP/1.1\r\nHost: api.example\r\n"
  if ct then raw = raw .. "Content-Type: " .. ct .. "\r\n" end
  return assert(harness.request(raw .. "Content-Length: " .. #body .. "\r\n\r\n" .. body))
end

local function decoded(text)
  local v, err = json.decode(text)
  assert(v ~= nil, tostring(err) .. ": " .. text)
  return v
end

describe("body-transform", function()
  describe("on the request body", function()
    -- config: the request side; sent: the body; want: the decoded result.
    local cases = {
      { name = "add sets fields, replacing the client's value",
        config = { add = { source = "gateway", version = "2" } },
        sent = '{"id":1,"source":"client"}',
        want = { id = 1, source = "gateway", version = 2 } },
      { name = "add values are JSON text, or else plain strings",
        config = { add = { n = "2.5", t = "true", s = "sluice", q = '"2"', a = '["a",1]',
                           o = '{"k":null}', z = "null" } },
        sent = "{}",
        want = { n = 2.5, t = true, s = "sluice", q = "2", a = { "a", 1 }, o = { k = json.null },
                 z = json.null } },
      { name = "remove drops fields, absent ones are fine",
        config = { remove = { "password", "nope" } },
        sent = '{"user":"u","password":"p"}',
        want = { user = "u" } },
      { name = "rename moves a field, replacing one of the new name",
        config = { rename = { user = "login" } },
        sent = '{"user":"u","login":"old"}',
        want = { login = "u" } },
      { name = "renames happen at once: {a: b, b: a} swaps",
        config = { rename = { a = "b", b = "a" } },
        sent = '{"a":1,"b":2}',
        want = { a = 2, b = 1 } },
      { name = "operations run as remove, rename, add",
        config = { remove = { "a" }, rename = { b = "a" }, add = { b = "new" } },
        sent = '{"a":1,"b":2}',
        want = { a = 2, b = "new" } },
      { name = "nested values and arrays go through",
        config = { add = { x = "1" } },
        sent = '{"list":[1,{"k":[]}],"obj":{"deep":{"v":null}},"e":{}}',
        want = { list = { 1, { k = {} } }, obj = { deep = { v = json.null } }, e = {}, x = 1 } },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local p = assert(harness.load(PATH, { request = c.config }))
        local req = post(c.sent, "application/json")
        assert.equal("continue", p:call("request_body", req))
        local body = req:body()
        assert.same(c.want, decoded(body))
        local head = harness.parse_head(req:upstream_head())
        assert.equal(tostring(#body), head.headers["content-length"])
      end)
    end

    it("keeps empty arrays and objects as they were", function()
      local p = assert(harness.load(PATH, { request = { add = { x = "1" } } }))
      local req = post('{"arr":[],"obj":{}}', "application/json")
      assert.equal("continue", p:call("request_body", req))
      local body = req:body()
      assert.truthy(body:find('"arr":[]', 1, true), body)
      assert.truthy(body:find('"obj":{}', 1, true), body)
    end)

    it("transforms a chunked body and sends it with a Content-Length", function()
      local p = assert(harness.load(PATH, { request = { add = { x = "1" } } }))
      local req = assert(harness.request("POST / HTTP/1.1\r\nHost: a\r\n"
        .. "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"))
      assert.equal("continue", p:call("request_body", req))
      assert.same({ a = 1, x = 1 }, decoded(req:body()))
      local head = harness.parse_head(req:upstream_head())
      assert.equal(tostring(#req:body()), head.headers["content-length"])
      assert.is_nil(head.headers["transfer-encoding"])
    end)

    -- Bodies left byte for byte as they came.
    local untouched = {
      { name = "another content type", ct = "text/plain", body = '{"a":1}' },
      { name = "no content type", ct = nil, body = '{"a":1}' },
      { name = "invalid JSON (logged at debug)", ct = "application/json", body = '{"a":' },
      { name = "a JSON array", ct = "application/json", body = "[1,2]" },
      { name = "a JSON scalar", ct = "application/json", body = '"text"' },
      { name = "an empty body", ct = "application/json", body = "" },
    }
    for _, c in ipairs(untouched) do
      it("leaves alone " .. c.name, function()
        local p = assert(harness.load(PATH, { request = { add = { x = "1" } } }))
        local req = post(c.body, c.ct)
        assert.equal("continue", p:call("request_body", req))
        assert.equal(c.body, req:body())
      end)
    end

    it("leaves the bytes alone when no operation applies", function()
      local p = assert(harness.load(PATH, { request = { remove = { "absent" } } }))
      local text = '{ "b" : 1,\n  "a" : 2 }'
      local req = post(text, "application/json")
      assert.equal("continue", p:call("request_body", req))
      assert.equal(text, req:body())
    end)

    for _, ct in ipairs { "application/json; charset=utf-8", "Application/JSON",
                          "application/problem+json", "application/vnd.api+json" } do
      it("knows " .. ct .. " for JSON", function()
        local p = assert(harness.load(PATH, { request = { add = { x = "1" } } }))
        local req = post('{"a":1}', ct)
        assert.equal("continue", p:call("request_body", req))
        assert.same({ a = 1, x = 1 }, decoded(req:body()))
      end)
    end

    it("does nothing on the response when only the request is configured", function()
      local p = assert(harness.load(PATH, { request = { add = { x = "1" } } }))
      local req = post("{}", "application/json")
      req:respond_from_origin(200, { ["Content-Type"] = "application/json" }, '{"r":1}')
      assert.equal("continue", p:call("response_body", req))
      assert.equal('{"r":1}', req:body("response"))
    end)
  end)

  describe("on the response body", function()
    it("transforms the origin's JSON, sent with its new Content-Length", function()
      local p = assert(harness.load(PATH, {
        response = { remove = { "internal" }, rename = { id = "order_id" }, add = { api = "v2" } } }))
      local req = assert(harness.request("GET /orders/7 HTTP/1.1\r\nHost: a\r\n\r\n"))
      req:respond_from_origin(200, { ["Content-Type"] = "application/json",
                                     ["Content-Length"] = "33" },
                              '{"id":7,"internal":"x","total":3}')
      assert.equal("continue", p:call("response_body", req))
      local body = req:body("response")
      assert.same({ order_id = 7, total = 3, api = "v2" }, decoded(body))
      local head = harness.parse_head(req:response_head())
      assert.equal(tostring(#body), head.headers["content-length"])
    end)

    it("gets an empty body for HEAD and keeps the origin's Content-Length", function()
      local p = assert(harness.load(PATH, { response = { add = { x = "1" } } }))
      local req = assert(harness.request("HEAD /orders/7 HTTP/1.1\r\nHost: a\r\n\r\n"))
      req:respond_from_origin(200, { ["Content-Type"] = "application/json",
                                     ["Content-Length"] = "7" }, '{"a":1}')
      assert.equal("continue", p:call("response_body", req))
      assert.equal("", req:body("response"))
      assert.equal("7", harness.parse_head(req:response_head()).headers["content-length"])
    end)

    it("transforms another plugin's JSON local reply", function()
      local refuser = assert(harness.load_source("refuser", [[
        return { name = "refuser", priority = 2000,
                 request_headers = function()
                   return sluice.response.exit(401, { message = "no key" })
                 end }
      ]]))
      local p = assert(harness.load(PATH, { response = { rename = { message = "error" } } }))
      local req = assert(harness.request("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
      assert.equal("respond", refuser:call("request_headers", req))
      assert.equal("continue", p:call("response_body", req))
      local status, headers, body = req:reply()
      assert.equal(401, status)
      assert.equal("application/json", headers["content-type"])
      assert.same({ error = "no key" }, decoded(body))
    end)
  end)

  describe("in the harness, as in the proxy", function()
    it("request_body waits for the whole body", function()
      local p = assert(harness.load(PATH, { request = { add = { x = "1" } } }))
      local req = assert(harness.request("POST / HTTP/1.1\r\nHost: a\r\n"
        .. "Content-Type: application/json\r\nContent-Length: 10\r\n\r\n{}"))
      assert.has_error(function() p:call("request_body", req) end)
    end)

    it("request_headers cannot follow request_body", function()
      local p = assert(harness.load(PATH, { request = { add = { x = "1" } } }))
      local req = post("{}", "application/json")
      assert.equal("continue", p:call("request_body", req))
      assert.has_error(function() p:call("request_headers", req) end)
    end)

    it("a body declaration that is a function must return a body table", function()
      local p, err = harness.load_source("bad-body", [[
        return { name = "bad-body", priority = 1, body = function() return { request = "yes" } end }
      ]])
      assert.is_nil(p)
      assert.matches("'body' takes only request = true|false", err, 1, true)
      assert.matches("returned by body(conf)", err, 1, true)
    end)
  end)

  describe("refuses a bad configuration", function()
    local cases = {
      { name = "an unknown operation", config = { request = { set = { a = "1" } } },
        err = "config.request.set: unknown field" },
      { name = "remove given as a map", config = { response = { remove = { a = "b" } } },
        err = "config.response.remove: expected an array" },
      { name = "an add value that is not a string (quote JSON numbers)",
        config = "request:\n  add: {n: 2}",
        err = "config:2:12: plugin body-transform: config.request.add.n: expected a string, got 2" },
      { name = "an empty field name", config = { request = { remove = { "" } } },
        err = "config.request.remove[0]" },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local p, err = harness.load(PATH, c.config)
        assert.is_nil(p)
        assert.truthy(err:find(c.err, 1, true), err)
      end)
    end
  end)
end)
