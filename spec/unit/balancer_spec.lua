-- The balancer phase through the plugin harness (spec/plugin_harness.lua,
-- the core as a library): sluice.balancer and the native host table's
-- balancer functions on real requests, one set of cases for both kinds
-- (spec/fixtures/plugins/balancer-probe.lua and
-- spec/fixtures/native/balancer-probe.c behave alike), then the Lua
-- module's own rules (arguments, phases, what set_upstream drops).
-- The proxy itself: spec/e2e/balancer_spec.lua.
--
-- Run: busted --lua=luajit spec/unit/balancer_spec.lua

if package.path:sub(1, 10) ~= "lua/?.lua;" then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
end

local harness = require "spec.plugin_harness"
local json = require "sluice.json"

local UPSTREAMS = {
  app = { "127.0.0.1:9001", { address = "127.0.0.1:9002", weight = 3 } },
  other = { "127.0.0.1:9101" },
}

local function request(headers)
  local raw = "GET /x HTTP/1.1\r\nHost: a\r\n"
  for name, value in pairs(headers or {}) do raw = raw .. name .. ": " .. value .. "\r\n" end
  return assert(harness.request(raw .. "\r\n", { upstreams = UPSTREAMS, upstream = "app" }))
end

local function upstream_fields(req)
  return harness.parse_head(assert(req:upstream_head())).headers
end

local KINDS = {
  lua = "spec/fixtures/plugins/balancer-probe.lua",
  native = harness.fixtures_dir .. "/balancer-probe.so",
}

for _, kind in ipairs { "lua", "native" } do
  describe("a " .. kind .. " balancer plugin", function()
    local p = assert(harness.load(KINDS[kind]))

    it("sees the route's upstream and its backends, and leaves the pick to the round robin", function()
      local req = request()
      assert.equal("continue", p:call("balancer", req))
      assert.same({ "app", nil }, { req:balancer() })
      local f = upstream_fields(req)
      assert.equal("app", f["x-balanced-upstream"])
      assert.equal("127.0.0.1:9001=1/up,127.0.0.1:9002=3/up", f["x-backends"])
    end)

    it("pins one of the upstream's backends", function()
      local req = request { ["X-Backend"] = "127.0.0.1:9002" }
      assert.equal("continue", p:call("balancer", req))
      assert.same({ "app", "127.0.0.1:9002" }, { req:balancer() })
      assert.is_nil(upstream_fields(req)["x-balancer-error"])
    end)

    it("moves the request to another upstream, and picks among its backends", function()
      local req = request { ["X-Upstream"] = "other", ["X-Backend"] = "127.0.0.1:9101" }
      assert.equal("continue", p:call("balancer", req))
      assert.same({ "other", "127.0.0.1:9101" }, { req:balancer() })
      local f = upstream_fields(req)
      assert.equal("other", f["x-balanced-upstream"])
      assert.equal("127.0.0.1:9101=1/up", f["x-backends"])
    end)

    it("cannot name an address the upstream does not list", function()
      for _, addr in ipairs { "10.0.0.1:80", "127.0.0.1:9101", "127.0.0.1:90010", "127.0.0.1" } do
        local req = request { ["X-Backend"] = addr }
        assert.equal("continue", p:call("balancer", req))
        assert.same({ "app", nil }, { req:balancer() })
        assert.equal("not a backend", upstream_fields(req)["x-balancer-error"], addr)
      end
    end)

    it("cannot name an upstream the configuration lacks, and answers itself", function()
      local req = request { ["X-Upstream"] = "nope" }
      assert.equal("respond", p:call("balancer", req))
      local status, _, body = req:reply()
      assert.equal(503, status)
      assert.equal("unknown upstream", body)
      assert.same({ "app", nil }, { req:balancer() })
    end)

    it("cannot use the balancer outside its phase", function()
      local req = request { ["X-Early"] = "1" }
      assert.equal("continue", p:call("request_headers", req))
      assert.equal("refused", upstream_fields(req)["x-early-result"])
      assert.same({ "app", nil }, { req:balancer() })
    end)

    it("runs only before the request goes upstream", function()
      local req = request()
      req:upstream_head()
      assert.has_error(function() p:call("balancer", req) end,
                       "call: balancer: the request head already went upstream")
    end)
  end)
end

describe("sluice.balancer", function()
  -- Runs body in a balancer hook and answers 200 with what it returned
  -- (JSON), or 500 with the error it raised.
  local function run(body, headers)
    local src = [[
local sluice = require "sluice"
local balancer = sluice.balancer
return {
  name = "bal-user", version = "1", priority = 1,
  balancer = function()
    local ok, a, b = pcall(function() ]] .. body .. [[ end)
    if not ok then return sluice.response.exit(500, tostring(a)) end
    return sluice.response.exit(200, sluice.json.encode({ a == nil and sluice.null or a,
                                                           b == nil and sluice.null or b }))
  end,
  response_headers = function()
    local ok, err = pcall(balancer.upstream)
    sluice.response.set_header("X-Late", ok and "allowed" or err)
  end,
}
]]
    local p = assert(harness.load_source("bal-user", src))
    local req = request(headers)
    assert.equal("respond", p:call("balancer", req))
    local status, _, out = req:reply()
    return status, status == 200 and json.decode(out) or out, req, p
  end

  it("lists backends as address, weight, healthy and cooldown_ms", function()
    local status, out = run("return balancer.backends()")
    assert.equal(200, status)
    assert.same({
      { address = "127.0.0.1:9001", weight = 1, healthy = true, cooldown_ms = 0 },
      { address = "127.0.0.1:9002", weight = 3, healthy = true, cooldown_ms = 0 },
    }, out[1])
  end)

  it("returns nil and a message for an unknown upstream or backend", function()
    local _, out = run("return balancer.set_upstream('nope')")
    assert.same({ json.null, "no upstream named 'nope'" }, out)
    _, out = run("return balancer.set_backend('10.0.0.1:80')")
    assert.same({ json.null, "'10.0.0.1:80' is not a backend of upstream 'app'" }, out)
  end)

  it("drops a chosen backend when the upstream changes, not when it stays", function()
    local _, _, req = run("balancer.set_backend('127.0.0.1:9002'); balancer.set_upstream('app')")
    assert.same({ "app", "127.0.0.1:9002" }, { req:balancer() })
    _, _, req = run("balancer.set_backend('127.0.0.1:9002'); balancer.set_upstream('other')")
    assert.same({ "other", nil }, { req:balancer() })
  end)

  it("checks backends against the current upstream, letters without case", function()
    local _, out, req = run("assert(balancer.set_upstream('other')) "
                            .. "return balancer.set_backend('127.0.0.1:9001')")
    assert.same({ json.null, "'127.0.0.1:9001' is not a backend of upstream 'other'" }, out)
    assert.same({ "other", nil }, { req:balancer() })
  end)

  it("raises on arguments that are not strings", function()
    for _, call in ipairs { "balancer.set_upstream(1)", "balancer.set_backend()",
                            "balancer.set_backend({})" } do
      local status, err = run(call)
      assert.equal(500, status)
      assert.matches("sluice%.balancer%.set_%a+: bad argument #1 %(string expected", err)
    end
  end)

  it("raises in any other phase", function()
    local _, _, req, p = run("return balancer.upstream()")
    assert.equal("continue", p:call("response_headers", req))
    local _, headers = req:reply()
    assert.matches("sluice.balancer.upstream: not available in the response_headers phase",
                   headers["x-late"], 1, true)
  end)
end)
