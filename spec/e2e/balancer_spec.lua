-- The balancer phase in the running proxy (docs/PLUGINS.md "sluice.balancer"):
-- a plugin routes a request to another configured upstream or pins one of
-- its backends, never an address the configuration lacks; the phase runs
-- once, after request_body when the body is buffered; a pinned backend
-- that cannot be reached is 502 and is not retried elsewhere, and the next
-- requests' plugins see it cooling down; connections to a pinned backend
-- come from the same pool and count in the same metrics as the round
-- robin's.
--
-- The same cases run against the Lua and the native balancer-probe
-- (spec/fixtures/plugins/balancer-probe.lua, spec/fixtures/native/
-- balancer-probe.c: X-Upstream and X-Backend headers say where to go). Two
-- plugins are written here: hash-by-header, a consistent-hashing example
-- built on balancer.backends(), and body-router, which routes on the
-- buffered request body. Origins answer with X-Origin-Name; /echo sends
-- back the request as the origin got it.
--
-- Run: busted --lua=luajit spec/e2e/balancer_spec.lua
local h = require "spec.helpers"
local prom = require "spec.support.prometheus"

local ROOT = os.getenv("PWD")
local BUILD = (os.getenv("SLUICE_LIB") or "build/libsluice.so"):match("^(.*)/[^/]+$") or "build"
if BUILD:sub(1, 1) ~= "/" then BUILD = ROOT .. "/" .. BUILD end
local NATIVE_FIX, LUA_FIX = BUILD .. "/fixtures-native", ROOT .. "/spec/fixtures/plugins"

-- Consistent hashing by a header (rendezvous hashing, FNV-1a): every
-- request with the same X-User goes to the same backend while it is
-- healthy; a backend cooling down is left out, which moves only its keys.
-- Without the header the round robin picks.
local HASH_BY_HEADER = [[
local sluice = require "sluice"
local balancer, request = sluice.balancer, sluice.request
local bxor, lshift, tobit = bit.bxor, bit.lshift, bit.tobit
local byte = string.byte

local function fnv1a(s)
  local h = tobit(2166136261)
  for i = 1, #s do
    h = bxor(h, byte(s, i))
    h = tobit(lshift(h, 24) + h * 403)      -- * 16777619, exactly, mod 2^32
  end
  return h
end

return {
  name = "hash-by-header", version = "1", priority = 5,
  schema = { fields = { { header = { type = "string", default = "X-User" } } } },
  balancer = function(conf)
    local key = request.get_header(conf.header)
    if not key then return end
    local best, best_score
    for _, b in ipairs(balancer.backends()) do
      if b.healthy then
        local score = fnv1a(key .. "|" .. b.address)
        if not best or score > best_score then best, best_score = b.address, score end
      end
    end
    if best then assert(balancer.set_backend(best)) end
  end,
}
]]

-- Routes on the whole request body: the balancer runs after request_body.
local BODY_ROUTER = [[
local sluice = require "sluice"
return {
  name = "body-router", version = "1", priority = 5,
  body = { request = true },
  request_body = function(_, ctx)
    ctx.target = sluice.request.get_body():match("^to=(%w+)$")
  end,
  balancer = function(_, ctx)
    if ctx.target then assert(sluice.balancer.set_upstream(ctx.target)) end
  end,
}
]]

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The request /echo sent back: its head fields (lower-case name -> value).
local function echoed(resp)
  local head = assert(resp.body:match("^(.-\r\n)\r\n"), "not an echoed request: " .. resp.body)
  local fields = {}
  for name, value in head:gmatch("\n([^:\r\n]+): ([^\r\n]*)") do fields[name:lower()] = value end
  return fields
end

describe("the balancer phase", function()
  local alpha, beta, gamma, evil, dead_port, pdir

  lazy_setup(function()
    alpha = h.start_origin { name = "alpha" }
    beta = h.start_origin { name = "beta" }
    gamma = h.start_origin { name = "gamma" }
    evil = h.start_origin { name = "evil" }       -- in no upstream: must never be reached
    dead_port = h.free_port()                     -- nobody listens: connects are refused
    pdir = os.tmpname()
    os.remove(pdir)
    assert(os.execute("mkdir -p " .. h.quote(pdir)))
    write(pdir .. "/hash-by-header.lua", HASH_BY_HEADER)
    write(pdir .. "/body-router.lua", BODY_ROUTER)
  end)

  lazy_teardown(function()
    for _, o in ipairs { alpha, beta, gamma, evil } do o:stop() end
    os.remove(pdir .. "/hash-by-header.lua")
    os.remove(pdir .. "/body-router.lua")
    os.remove(pdir)
  end)

  local function addr(o) return "127.0.0.1:" .. (type(o) == "table" and o.port or o) end

  -- Starts a proxy with the upstreams app (alpha, beta), other (gamma) and
  -- mixed (alpha, the dead port), a catch-all route to app, an admin
  -- listener and the given plugins (YAML lines of the list).
  local function start(plugins)
    local port, aport = h.free_port(), h.free_port()
    local proxy = h.start_proxy { port = port, config = table.concat({
      "workers: 1",
      "listen: [127.0.0.1:" .. port .. "]",
      "admin: {listen: 127.0.0.1:" .. aport .. "}",
      "upstreams:",
      "  app:",
      "    backends: [" .. addr(alpha) .. ", " .. addr(beta) .. "]",
      "  other:",
      "    backends: [" .. addr(gamma) .. "]",
      "  mixed:",
      "    backends: [" .. addr(alpha) .. ", " .. addr(dead_port) .. "]",
      "routes:",
      "  - {path: /, upstream: app}",
      "plugin_paths: [" .. table.concat({ pdir, LUA_FIX, NATIVE_FIX }, ", ") .. "]",
      "plugins:",
      plugins,
    }, "\n") .. "\n" }
    assert(h.wait_until(function() return h.is_listening(aport) end), "no admin listener")
    return proxy, port, aport
  end

  for _, kind in ipairs { "lua", "native" } do
    describe("with a " .. kind .. " plugin routing by headers", function()
      local proxy, port, aport

      lazy_setup(function()
        proxy, port, aport = start("  - {name: balancer-probe, kind: " .. kind .. "}")
      end)

      lazy_teardown(function()
        if proxy then proxy:stop() end
      end)

      local function get(path, headers, conn)
        if conn then
          assert(conn:send(h.build_request("GET", path, headers)))
          return assert(conn:read_response())
        end
        return assert(h.get(port, path, headers))
      end

      it("sends each request to the backend it names", function()
        for _, o in ipairs { beta, alpha, beta, beta, alpha } do
          local resp = get("/name", { ["X-Backend"] = addr(o) })
          assert.equal(200, resp.status)
          assert.equal(o.name, resp.headers["x-origin-name"])
        end
      end)

      it("leaves the pick to the round robin without one", function()
        local seen = {}
        for _ = 1, 4 do
          local resp = get("/echo")
          assert.equal(200, resp.status)
          seen[resp.headers["x-origin-name"]] = (seen[resp.headers["x-origin-name"]] or 0) + 1
          local f = echoed(resp)
          assert.equal("app", f["x-balanced-upstream"])
          assert.equal(addr(alpha) .. "=1/up," .. addr(beta) .. "=1/up", f["x-backends"])
        end
        assert.same({ alpha = 2, beta = 2 }, seen)
      end)

      it("moves a request to another upstream", function()
        local resp = get("/echo", { ["X-Upstream"] = "other" })
        assert.equal(200, resp.status)
        assert.equal("gamma", resp.headers["x-origin-name"])
        assert.equal("other", echoed(resp)["x-balanced-upstream"])
        assert.equal(addr(gamma) .. "=1/up", echoed(resp)["x-backends"])
      end)

      it("answers itself when the upstream it names does not exist", function()
        local resp = get("/name", { ["X-Upstream"] = "nope" })
        assert.equal(503, resp.status)
        assert.equal("unknown upstream", resp.body)
      end)

      it("gets an error for an address outside the upstream, which is never connected to", function()
        local before = #evil:requests()
        for _, a in ipairs { addr(evil), addr(gamma), "localhost:" .. evil.port } do
          local resp = get("/echo", { ["X-Backend"] = a })
          assert.equal(200, resp.status)
          assert.is_truthy(({ alpha = true, beta = true })[resp.headers["x-origin-name"]])
          assert.equal("not a backend", echoed(resp)["x-balancer-error"])
        end
        assert.equal(0, evil:connections())
        assert.equal(before, #evil:requests())
      end)

      it("cannot use the balancer outside its phase", function()
        local resp = get("/echo", { ["X-Early"] = "1" })
        assert.equal(200, resp.status)
        assert.equal("refused", echoed(resp)["x-early-result"])
      end)

      it("takes a pinned backend's connection from its pool, and counts it as usual", function()
        local function reused(f)
          return prom.value(f, "sluice_upstream_requests_total",
                            { upstream = "app", backend = addr(beta), connection = "reused" }) or 0
        end
        local function other(f)
          return prom.sum(f, "sluice_upstream_requests_total",
                          { upstream = "other", backend = addr(gamma) })
        end
        local before = prom.parse(assert(h.get(aport, "/metrics")).body)
        local conns = beta:connections()
        local conn = assert(h.connect(port))
        finally(function() conn:close() end)
        for _ = 1, 3 do
          assert.equal("beta", get("/name", { ["X-Backend"] = addr(beta) }, conn).headers["x-origin-name"])
        end
        assert.equal("gamma", get("/name", { ["X-Upstream"] = "other" }, conn).headers["x-origin-name"])
        local after = prom.parse(assert(h.get(aport, "/metrics")).body)
        assert.is_true(beta:connections() - conns <= 1)
        assert.is_true(reused(after) - reused(before) >= 2)
        assert.equal(1, other(after) - other(before))
      end)

      it("does not retry a pinned backend that refuses elsewhere, and then reports it down", function()
        local hits = #alpha:requests()
        local resp = get("/name", { ["X-Upstream"] = "mixed", ["X-Backend"] = addr(dead_port) })
        assert.equal(502, resp.status)
        assert.equal(hits, #alpha:requests())
        resp = get("/echo", { ["X-Upstream"] = "mixed" })
        assert.equal(200, resp.status)
        assert.equal("alpha", resp.headers["x-origin-name"])
        assert.equal(addr(alpha) .. "=1/up," .. addr(dead_port) .. "=1/down", echoed(resp)["x-backends"])
      end)
    end)
  end

  describe("with a consistent-hash plugin built on balancer.backends()", function()
    local proxy, port

    lazy_setup(function()
      proxy, port = start("  - hash-by-header")
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    local function origin_of(user)
      local resp = assert(h.get(port, "/name", { ["X-User"] = user }))
      return resp.status == 200 and resp.headers["x-origin-name"] or resp.status
    end

    it("sends every request of a key to the same backend, and spreads keys over them", function()
      local seen = {}
      for i = 1, 20 do
        local first = origin_of("user" .. i)
        for _ = 1, 3 do assert.equal(first, origin_of("user" .. i)) end
        seen[first] = true
      end
      assert.same({ alpha = true, beta = true }, seen)
    end)
  end)

  describe("with a consistent-hash plugin and a backend that is down", function()
    local proxy, port

    lazy_setup(function()
      -- app is alpha, beta and the dead port here.
      port = h.free_port()
      proxy = h.start_proxy { port = port, config = table.concat({
        "workers: 1",
        "listen: [127.0.0.1:" .. port .. "]",
        "upstreams:",
        "  app:",
        "    backends: [" .. addr(alpha) .. ", " .. addr(beta) .. ", " .. addr(dead_port) .. "]",
        "plugin_paths: [" .. pdir .. "]",
        "plugins: [hash-by-header]",
      }, "\n") .. "\n" }
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    it("answers 502 once for the dead backend's keys, then moves only those", function()
      local first = {}
      for i = 1, 40 do
        local resp = assert(h.get(port, "/name", { ["X-User"] = "user" .. i }))
        first[i] = resp.status == 200 and resp.headers["x-origin-name"] or resp.status
      end
      local moved = 0
      for i = 1, 40 do
        local resp = assert(h.get(port, "/name", { ["X-User"] = "user" .. i }))
        assert.equal(200, resp.status)
        local now = resp.headers["x-origin-name"]
        if first[i] == 502 then
          moved = moved + 1
        else
          assert.equal(first[i], now, "user" .. i .. " moved")
        end
        assert.equal(now, assert(h.get(port, "/name", { ["X-User"] = "user" .. i })).headers["x-origin-name"])
      end
      -- With 3 backends and 40 keys, some land on the dead one (all but
      -- certainly: (2/3)^40 < 1e-7).
      assert.is_true(moved > 0)
    end)
  end)

  describe("with a plugin that routes on the buffered body", function()
    local proxy, port

    lazy_setup(function()
      proxy, port = start("  - body-router")
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    it("runs the balancer after request_body", function()
      local resp = assert(h.request(port, h.build_request("POST", "/name", {}, "to=other")))
      assert.equal(200, resp.status)
      assert.equal("gamma", resp.headers["x-origin-name"])
      resp = assert(h.request(port, h.build_request("POST", "/echo", {}, "to=app")))
      assert.equal(200, resp.status)
      assert.is_truthy(({ alpha = true, beta = true })[resp.headers["x-origin-name"]])
      assert.matches("\r\n\r\nto=app$", resp.body)
    end)
  end)
end)
