-- One spec, two plugins: plugins-lua/rate-limit.lua and
-- plugins-native/rate-limit.c run the same cases, unchanged, through
-- spec/plugin_harness.lua (the real API, loader and shared dicts, via
-- build/libsluice.so), without starting the proxy. What one kind does, the
-- other must do: the same statuses, fields, bodies and config messages.
--
-- Run: busted --lua=luajit spec/plugins/rate-limit/both_kinds_spec.lua
-- (after `make`, which builds the native plugin next to the library).

if package.path:sub(1, 10) ~= "lua/?.lua;" then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
end

local harness = require "spec.plugin_harness"
local json = require "sluice.json"
local socket = require "socket"

local KINDS = {
  { kind = "lua", path = "plugins-lua/rate-limit.lua" },
  { kind = "native", path = harness.native_dir .. "/rate-limit.so" },
}
local DICTS = { ratelimit = "1m" }

-- Each test counts in buckets of its own: the dicts outlive a test, and an
-- instance of each kind with the same settings and namespace would share
-- buckets (the last test shows it), so namespaces carry the kind.
local serial = 0
local function loader(k)
  return function(config, dicts)
    serial = serial + 1
    config.namespace = k.kind .. ":" .. (config.namespace or ("t" .. serial))
    local p, err = harness.load(k.path, config, { shared_dicts = dicts or DICTS })
    if p then assert.equal(k.kind, p.kind) end
    return p, err
  end
end

-- One request through request_headers (and response_headers, from the
-- origin or on the 429). Returns status, headers (lower-case names), body.
local function hit(p, opts)
  opts = opts or {}
  local head = "GET " .. (opts.path or "/") .. " HTTP/1.1\r\nHost: a\r\n"
  for name, v in pairs(opts.headers or {}) do head = head .. name .. ": " .. v .. "\r\n" end
  local req = assert(harness.request(head .. "\r\n", { client = opts.client }))
  local action, err = p:call("request_headers", req)
  assert(action ~= "error", err)
  if action == "continue" then req:respond_from_origin(200, {}) end
  assert.equal("continue", (p:call("response_headers", req)))
  local status, headers, body
  if action == "respond" then
    status, headers, body = req:reply()
  else
    local h = harness.parse_head(req:response_head())
    status, headers = h.status, h.headers
  end
  req:free()
  return status, headers, body
end

for _, k in ipairs(KINDS) do
  local load = loader(k)

  describe("rate-limit plugin (" .. k.kind .. ")", function()
    describe("configuration", function()
      local bad = {
        { "no rate", {}, "config.rate: required field missing" },
        { "a rate of 0", { rate = 0 }, "config.rate: must be more than 0" },
        { "an unknown period", { rate = 1, per = "day" }, "config.per:" },
        { "a burst of 0", { rate = 1, burst = 0 }, "config.burst:" },
        { "an unknown key", { rate = 1, key = "cookie" }, "config.key:" },
        { "key header without header_name", { rate = 1, key = "header" },
          "key is 'header': set header_name" },
        { "a header name that is not a token", { rate = 1, key = "header", header_name = "a b" },
          "config.header_name: expected a header name" },
      }
      for _, c in ipairs(bad) do
        it("refuses " .. c[1], function()
          local p, err = load(c[2])
          assert.is_nil(p)
          assert.truthy(err:find(c[3], 1, true), err)
        end)
      end

      it("refuses a dict the configuration does not declare, naming it", function()
        local p, err = load({ rate = 1, dict = "limits" })
        assert.is_nil(p)
        assert.truthy(err:find("no shared dict named 'limits'", 1, true), err)
      end)
    end)

    describe("a bucket of 3 filled at 1 per minute", function()
      local p

      before_each(function()
        p = assert(load({ rate = 1, per = "minute", burst = 3 }))
      end)

      it("lets the burst through, counting down RateLimit-Remaining", function()
        for remaining = 2, 0, -1 do
          local status, h = hit(p)
          assert.equal(200, status)
          assert.equal("3", h["ratelimit-limit"])
          assert.equal(tostring(remaining), h["ratelimit-remaining"])
          -- the bucket is full again once the tokens taken are back
          assert.equal(tostring(60 * (3 - remaining)), h["ratelimit-reset"])
          assert.is_nil(h["retry-after"])
        end
      end)

      it("answers 429 after the burst, with Retry-After and a JSON body", function()
        for _ = 1, 3 do assert.equal(200, (hit(p))) end
        local status, h, body = hit(p)
        assert.equal(429, status)
        assert.equal("application/json", h["content-type"])
        assert.same({ message = "API rate limit exceeded", retry_after = 60 }, json.decode(body))
        assert.equal("60", h["retry-after"])
        assert.equal("3", h["ratelimit-limit"])
        assert.equal("0", h["ratelimit-remaining"])
        assert.equal("180", h["ratelimit-reset"])
        -- a refused request takes no token: the next one is refused the same way
        local status2, h2 = hit(p)
        assert.equal(429, status2)
        assert.equal("60", h2["retry-after"])
      end)

      it("keeps a bucket per client address", function()
        for _ = 1, 3 do hit(p, { client = "192.0.2.1" }) end
        assert.equal(429, (hit(p, { client = "192.0.2.1" })))
        assert.equal(200, (hit(p, { client = "192.0.2.2" })))
        assert.equal(200, (hit(p, { client = "2001:db8::1" })))
      end)
    end)

    it("refills: a refused client gets through again once a token is back", function()
      -- 20 per second: a token every 50 ms
      local p = assert(load({ rate = 20, burst = 1 }))
      assert.equal(200, (hit(p)))
      assert.equal(429, (hit(p)))
      socket.sleep(0.3)
      assert.equal(200, (hit(p)))
    end)

    it("keys on a header, and on the address without it", function()
      local p = assert(load({ rate = 1, per = "hour", burst = 1, key = "header",
                              header_name = "X-Consumer" }))
      assert.equal(200, (hit(p, { headers = { ["X-Consumer"] = "alice" } })))
      assert.equal(429, (hit(p, { headers = { ["X-Consumer"] = "alice" } })))
      assert.equal(200, (hit(p, { headers = { ["X-Consumer"] = "bob" } })))
      -- same address, no header: the address's own bucket
      assert.equal(200, (hit(p)))
      assert.equal(429, (hit(p)))
      -- a header value equal to an address does not share that address's bucket
      assert.equal(200, (hit(p, { headers = { ["X-Consumer"] = "127.0.0.1" } })))
    end)

    it("keys on the route: every client shares it", function()
      local p = assert(load({ rate = 1, per = "hour", burst = 2, key = "route" }))
      assert.equal(200, (hit(p, { client = "192.0.2.1", path = "/a" })))
      assert.equal(200, (hit(p, { client = "192.0.2.2", path = "/b" })))
      assert.equal(429, (hit(p, { client = "192.0.2.3", path = "/c" })))
    end)

    it("keeps instances with other limits, or another namespace, apart", function()
      local a = assert(load({ rate = 1, per = "hour", burst = 1, namespace = "same" }))
      local b = assert(load({ rate = 2, per = "hour", burst = 1, namespace = "same" }))
      local c = assert(load({ rate = 1, per = "hour", burst = 1, namespace = "other" }))
      local a2 = assert(load({ rate = 1, per = "hour", burst = 1, namespace = "same" }))
      assert.equal(200, (hit(a)))
      assert.equal(200, (hit(b)))
      assert.equal(200, (hit(c)))
      assert.equal(429, (hit(a2)))       -- same settings, same namespace: one bucket
    end)

    it("hides the RateLimit headers when asked, not Retry-After", function()
      local p = assert(load({ rate = 1, per = "hour", burst = 1, hide_client_headers = true }))
      local _, h = hit(p)
      assert.is_nil(h["ratelimit-limit"])
      local status, h2 = hit(p)
      assert.equal(429, status)
      assert.is_nil(h2["ratelimit-remaining"])
      assert.equal("3600", h2["retry-after"])
    end)

    it("defaults the burst to the rate, rounded up", function()
      local p = assert(load({ rate = 2.5 }))
      local _, h = hit(p)
      assert.equal("3", h["ratelimit-limit"])
      assert.equal("2", h["ratelimit-remaining"])
    end)

    describe("when the dict fails (a key bigger than the dict)", function()
      local huge = string.rep("k", 9000)

      it("lets the request through by default, without headers", function()
        local p = assert(load({ rate = 1, burst = 1, key = "header", header_name = "X-K",
                                dict = "tiny" }, { tiny = "8k" }))
        harness.log_level("error")
        local status, h = hit(p, { headers = { ["X-K"] = huge } })
        harness.log_level("warn")
        assert.equal(200, status)
        assert.is_nil(h["ratelimit-limit"])
      end)

      it("fails the request with fault_tolerant: false", function()
        local p = assert(load({ rate = 1, burst = 1, key = "header", header_name = "X-K",
                                dict = "tiny", fault_tolerant = false }, { tiny = "8k" }))
        local req = assert(harness.request("GET / HTTP/1.1\r\nHost: a\r\nX-K: " .. huge
                                           .. "\r\n\r\n"))
        local action, err = p:call("request_headers", req)
        assert.equal("error", action)
        assert.truthy(err:find("dict tiny: no memory", 1, true), err)
        req:free()
      end)
    end)
  end)
end

describe("rate-limit plugins of both kinds", function()
  it("share a bucket when their settings and namespace are the same", function()
    local config = { rate = 1, per = "hour", burst = 2, namespace = "both-kinds" }
    local lua = assert(harness.load(KINDS[1].path, config, { shared_dicts = DICTS }))
    local native = assert(harness.load(KINDS[2].path, config, { shared_dicts = DICTS }))
    local _, h = hit(lua)
    assert.equal("1", h["ratelimit-remaining"])
    local _, h2 = hit(native)
    assert.equal("0", h2["ratelimit-remaining"])
    assert.equal(429, (hit(lua)))
    assert.equal(429, (hit(native)))
  end)
end)
