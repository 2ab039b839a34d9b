-- spec/unit/plugin_harness_spec.lua: spec/plugin_harness.lua, the helper
-- that runs a plugin's hooks against a request built in the spec through
-- the real core (build/libsluice.so), with small plugins written here.

local harness = require "spec.plugin_harness"

local GET = "GET /a/b?x=1 HTTP/1.1\r\nHost: api.example\r\nX-Key: k1\r\n\r\n"

-- A plugin that does what its config says, in each phase.
local SOURCE = [[
local sluice = require "sluice"
local request, response = sluice.request, sluice.response

return {
  name = "probe",
  version = "0.1",
  priority = 10,
  schema = {
    fields = {
      { mode = { type = "string", default = "set",
                 one_of = { "set", "deny", "fail", "loop", "hog" } } },
      { value = { type = "string", default = "v" } },
    },
  },

  request_headers = function(conf, ctx)
    ctx.seen = request.get_header("X-Key")
    if conf.mode == "set" then
      request.set_header("X-Probe", conf.value)
      request.clear_header("X-Key")
      sluice.ctx.set("consumer", ctx.seen or "-")
    elseif conf.mode == "deny" then
      response.set_header("X-Why", "no")
      return response.exit(403, "go away\n", { ["Content-Type"] = "text/plain" })
    elseif conf.mode == "fail" then
      error("boom")
    elseif conf.mode == "loop" then
      while true do end
    elseif conf.mode == "hog" then
      local t = {}
      for i = 1, 1e9 do t[i] = { i } end
    end
  end,

  response_headers = function(conf, ctx)
    response.set_header("X-Seen", ctx.seen or "none")
    if response.get_status() == 403 then response.set_status(451) end
  end,
}
]]

local function probe(config, opts)
  return assert(harness.load_source("probe", SOURCE, config, opts))
end

local function request(raw)
  return assert(harness.request(raw or GET))
end

describe("the plugin harness", function()
  describe("runs request_headers", function()
    it("and shows the changed request head the origin receives", function()
      local p, req = probe({ mode = "set", value = "42" }), request()
      assert.equal("continue", p:call("request_headers", req))
      local head = harness.parse_head(req:upstream_head())
      assert.equal("GET /a/b?x=1 HTTP/1.1", head.line)
      assert.equal("42", head.headers["x-probe"])
      assert.is_nil(head.headers["x-key"])
      assert.equal("api.example", head.headers.host)
      assert.equal("127.0.0.1", head.headers["x-forwarded-for"])
      assert.equal("1.1 sluice", head.headers.via)
      assert.equal("k1", req:ctx("consumer"))
      assert.is_nil(req:reply())
    end)

    it("and reports a local reply with its status, fields and body", function()
      local p, req = probe({ mode = "deny" }), request()
      assert.equal("respond", p:call("request_headers", req))
      local status, headers, body = req:reply()
      assert.equal(403, status)
      assert.equal("no", headers["x-why"])
      assert.equal("text/plain", headers["content-type"])
      assert.equal("go away\n", body)
      local head, err = req:upstream_head()
      assert.is_nil(head)
      assert.matches("answered locally %(403%)", err)
    end)

    it("and returns a failing hook's message with its traceback", function()
      local p, req = probe({ mode = "fail" }), request()
      local action, err, budget = p:call("request_headers", req)
      assert.equal("error", action)
      assert.matches("^probe.lua:%d+: boom", err)
      assert.matches("traceback", err)
      assert.is_false(budget)
    end)

    it("and reports a hook killed by its CPU budget", function()
      local p, req = probe({ mode = "loop" }, { timeout_ms = 20 }), request()
      local action, err, budget = p:call("request_headers", req)
      assert.equal("error", action)
      assert.matches("budget exceeded", err)
      assert.is_true(budget)
      -- The VM survives the kill: the next hook runs (and is stopped) again.
      assert.same({ "error", err, true }, { p:call("request_headers", request()) })
    end)

    it("and reports a hook killed by its memory budget", function()
      local p, req = probe({ mode = "hog" }, { memory_limit_mb = 8, timeout_ms = 5000 }), request()
      local action, err, budget = p:call("request_headers", req)
      assert.equal("error", action)
      assert.matches("budget exceeded: memory", err)
      assert.is_true(budget)
    end)
  end)

  describe("runs response_headers", function()
    it("on the origin's response, and shows the head the client receives", function()
      local p, req = probe({ mode = "set" }), request()
      assert.equal("continue", p:call("request_headers", req))
      req:respond_from_origin(200, { ["Content-Type"] = "text/plain", ["Content-Length"] = "5" })
      assert.equal("continue", p:call("response_headers", req))
      local head = harness.parse_head(req:response_head())
      assert.equal(200, head.status)
      assert.equal("k1", head.headers["x-seen"])       -- ctx kept between the hooks
      assert.equal("text/plain", head.headers["content-type"])
      assert.equal("5", head.headers["content-length"])
    end)

    it("on a local reply, as the proxy does", function()
      local p, req = probe({ mode = "deny" }), request()
      assert.equal("respond", p:call("request_headers", req))
      assert.equal("continue", p:call("response_headers", req))
      local status, headers = req:reply()
      assert.equal(451, status)
      assert.equal("k1", headers["x-seen"])
      assert.equal("no", headers["x-why"])
    end)

    it("with a fresh ctx for every request", function()
      local p = probe({ mode = "set" })
      local first = request()
      assert.equal("continue", p:call("request_headers", first))
      local req = request("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
      req:respond_from_origin(204)
      assert.equal("continue", p:call("response_headers", req))
      assert.equal("none", harness.parse_head(req:response_head()).headers["x-seen"])
      first:free()
      req:free()
    end)
  end)

  describe("keeps the proxy's order", function()
    it("refusing response_headers before any response", function()
      local p, req = probe(), request()
      assert.error_matches(function() p:call("response_headers", req) end,
                           "there is no response yet")
    end)

    it("refusing request changes once the head went upstream", function()
      local p, req = probe(), request()
      req:upstream_head()
      assert.error_matches(function() p:call("request_headers", req) end,
                           "already went upstream")
    end)

    it("refusing an origin response after a local reply", function()
      local p, req = probe({ mode = "deny" }), request()
      p:call("request_headers", req)
      assert.error_matches(function() req:respond_from_origin(200) end, "answered locally")
    end)

    it("refusing unknown phases", function()
      local p, req = probe(), request()
      assert.error_matches(function() p:call("access", req) end, "unknown phase 'access'")
    end)
  end)

  describe("loads plugins as the proxy does", function()
    it("with their declared phases", function()
      local p = probe()
      assert.same({ request_headers = true, response_headers = true }, p.phases)
    end)

    it("reporting config errors at their place in a YAML config", function()
      local p, err = harness.load_source("probe", SOURCE, "value: v\nmode: sideways\n")
      assert.is_nil(p)
      assert.matches("^config:2:7: plugin probe: config.mode: ", err)
    end)

    it("reporting config errors of a table config", function()
      local p, err = harness.load_source("probe", SOURCE, { mode = 7 })
      assert.is_nil(p)
      assert.matches("^plugin probe: config.mode: ", err)
    end)

    it("reporting errors in the plugin's code", function()
      local p, err = harness.load_source("probe", "return { name = 'probe', priority = 1, ")
      assert.is_nil(p)
      assert.matches("^probe.lua:1: ", err)
    end)

    it("reporting a plugin file that is not there", function()
      local p, err = harness.load("plugins-lua/no-such-plugin.lua")
      assert.is_nil(p)
      assert.matches("plugin no%-such%-plugin: not found", err)
    end)
  end)

  describe("builds requests", function()
    it("with unique ids and the client address given", function()
      local a = request()
      local b = assert(harness.request(GET, { client = "192.0.2.9" }))
      assert.matches("^%x+$", a:id())
      assert.are_not.equal(a:id(), b:id())
      local head = harness.parse_head(b:upstream_head())
      assert.equal("192.0.2.9", head.headers["x-forwarded-for"])
    end)

    it("refusing what the proxy answers itself", function()
      local req, err = harness.request("GET / HTTP/1.1\r\n\r\n")
      assert.is_nil(req)
      assert.matches("^400 Bad Request: missing Host header", err)
      req, err = harness.request("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n")
      assert.is_nil(req)
      assert.matches("^405 ", err)
      req, err = harness.request("GET / HTTP/1.1\r\nHost: a\r\n")
      assert.is_nil(req)
      assert.matches("incomplete request head", err)
    end)
  end)
end)
