-- The rate-limit plugin end to end: the real proxy with two workers (so
-- two threads share each bucket through the shared dict) in front of the
-- bundled origin, once with plugins-lua/rate-limit.lua and once with the
-- native plugins-native/rate-limit.c (built by `make` next to
-- $SLUICE_LIB). Limits are chosen so that no assertion depends on how
-- fast a loaded machine runs: buckets refill per minute or per hour,
-- except in the one test that waits for a refill, which polls.
--
-- Run: busted --lua=luajit spec/plugins/rate-limit/integration_spec.lua
local h = require "spec.helpers"
local S = require "spec.plugins.support"

local ROOT = os.getenv("PWD")
local BUILD = (os.getenv("SLUICE_LIB") or "build/libsluice.so"):match("^(.*)/[^/]+$") or "build"
if BUILD:sub(1, 1) ~= "/" then BUILD = ROOT .. "/" .. BUILD end
local PLUGINS = ROOT .. "/plugins-lua, " .. BUILD .. "/plugins-native"

local send_case = S.sender("rate-limit")

local function send(proxy, target, hdrs)
  return send_case(proxy, "GET", target, hdrs)
end

-- Two workers, a 1m dict, `plugins` (YAML lines of the top-level plugins
-- list; nil for none) and `routes` (YAML lines, optional). Both kinds are
-- in plugin_paths: entries say which with kind.
local function start(origin, plugins, routes)
  local port = h.free_port()
  local config = table.concat({
    "workers: 2",
    "listen: [127.0.0.1:" .. port .. "]",
    "shared_dicts:",
    "  ratelimit: {size: 1m}",
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. origin.port .. "]",
    "plugin_paths: [" .. PLUGINS .. "]",
    routes or "",
    plugins and "plugins:" or "",
    plugins or "",
  }, "\n") .. "\n"
  return h.start_proxy { config = config, port = port }
end

local function json_body(resp)
  -- the body is a flat object of a string and a number
  local t = {}
  for k, v in resp.body:gmatch('"([%w_]+)":("?[^,"}]*"?)') do
    t[k] = v:match('^"(.*)"$') or tonumber(v)
  end
  return t
end

describe("rate-limit plugin", function()
  local origin

  lazy_setup(function()
    origin = h.start_origin()
  end)

  lazy_teardown(function()
    if origin then origin:stop() end
  end)

  for _, kind in ipairs({ "lua", "native" }) do
    describe("per client address, 5 a minute (" .. kind .. ")", function()
      local proxy

      lazy_setup(function()
        proxy = start(origin, table.concat({
          "  - name: rate-limit",
          "    kind: " .. kind,
          "    config: {rate: 5, per: minute}",
        }, "\n"))
      end)

      lazy_teardown(function()
        if proxy then proxy:stop() end
      end)

      it("lets the burst through with RateLimit headers, then answers 429", function()
        for remaining = 4, 0, -1 do
          local resp = send(proxy, "/echo")
          assert.equal(200, resp.status)
          assert.equal("5", resp.headers["ratelimit-limit"])
          assert.equal(tostring(remaining), resp.headers["ratelimit-remaining"])
          local reset = tonumber(resp.headers["ratelimit-reset"])
          assert.is_true(reset >= 1 and reset <= 60, tostring(reset))
        end
        local resp, id = send(proxy, "/echo")
        assert.equal(429, resp.status)
        assert.equal("application/json", resp.headers["content-type"])
        local body = json_body(resp)
        assert.equal("API rate limit exceeded", body.message)
        local retry = tonumber(resp.headers["retry-after"])
        assert.is_true(retry >= 1 and retry <= 12, tostring(retry))
        assert.equal(retry, body.retry_after)
        assert.equal("5", resp.headers["ratelimit-limit"])
        assert.equal("0", resp.headers["ratelimit-remaining"])
        assert.is_true(tonumber(resp.headers["ratelimit-reset"]) >= retry)
        -- the refused request never reached the origin
        assert.is_false(S.origin_has(origin, id))
      end)
    end)

    describe("shared by two workers (" .. kind .. ")", function()
      local proxy

      lazy_setup(function()
        proxy = start(origin, table.concat({
          "  - name: rate-limit",
          "    kind: " .. kind,
          "    config: {rate: 1, per: hour, burst: 10, key: header, header_name: X-Consumer}",
        }, "\n"))
      end)

      lazy_teardown(function()
        if proxy then proxy:stop() end
      end)

      it("counts concurrent requests on many connections exactly", function()
        -- 40 connections at once (spread over both workers' sockets by the
        -- kernel), all requests sent before any answer is read.
        local conns = {}
        for i = 1, 40 do
          conns[i] = assert(h.connect(proxy.port))
        end
        for i = 1, 40 do
          assert(conns[i]:send(h.build_request("GET", "/echo", { { "X-Consumer", "crowd" } })))
        end
        local counts = {}
        for i = 1, 40 do
          local resp = assert(conns[i]:read_response())
          counts[resp.status] = (counts[resp.status] or 0) + 1
          conns[i]:close()
        end
        assert.same({ [200] = 10, [429] = 30 }, counts)
      end)

      it("keeps one bucket per header value", function()
        for _ = 1, 10 do
          assert.equal(200, send(proxy, "/echo", { { "X-Consumer", "alice" } }).status)
        end
        assert.equal(429, send(proxy, "/echo", { { "X-Consumer", "alice" } }).status)
        local bob = send(proxy, "/echo", { { "X-Consumer", "bob" } })
        assert.equal(200, bob.status)
        assert.equal("9", bob.headers["ratelimit-remaining"])
      end)
    end)

    describe("per route (" .. kind .. ")", function()
      local proxy

      lazy_setup(function()
        proxy = start(origin, nil, table.concat({
          "routes:",
          "  - path: /a",
          "    upstream: app",
          "    plugins:",
          "      - name: rate-limit",
          "        kind: " .. kind,
          "        config: {rate: 2, per: hour, key: route}",
          "  - path: /b",
          "    upstream: app",
          "    plugins:",
          "      - name: rate-limit",
          "        kind: " .. kind,
          "        config: {rate: 2, per: hour, key: route}",
        }, "\n"))
      end)

      lazy_teardown(function()
        if proxy then proxy:stop() end
      end)

      it("shares a route's bucket between clients, and not between routes", function()
        assert.equal(200, send(proxy, "/a/1").status)
        assert.equal(200, send(proxy, "/a/2").status)
        assert.equal(429, send(proxy, "/a/3").status)
        local b = send(proxy, "/b/1")
        assert.equal(200, b.status)
        assert.equal("1", b.headers["ratelimit-remaining"])
      end)
    end)

    describe("refilling (" .. kind .. ")", function()
      local proxy

      lazy_setup(function()
        proxy = start(origin, table.concat({
          "  - name: rate-limit",
          "    kind: " .. kind,
          "    config: {rate: 4, per: second, burst: 2}",
        }, "\n"))
      end)

      lazy_teardown(function()
        if proxy then proxy:stop() end
      end)

      it("lets a refused client through again once tokens come back", function()
        local refused
        -- take the bucket empty (tokens may come back meanwhile: keep going)
        for _ = 1, 50 do
          local resp = send(proxy, "/echo")
          if resp.status == 429 then refused = resp break end
        end
        assert.truthy(refused, "never refused")
        assert.equal("1", refused.headers["retry-after"])
        local back = h.wait_until(function()
          local resp = send(proxy, "/echo")
          return resp.status == 200 and resp
        end, 10, 0.1)
        assert.truthy(back, "no token came back")
        assert.equal("2", back.headers["ratelimit-limit"])
      end)
    end)
  end

  it("refuses a configuration whose dict is not declared, naming it", function()
    -- S.config declares no shared dicts
    local _, t_code, t_out, s_code, s_out = S.check_bad(table.concat({
      "  - name: rate-limit",
      "    config: {rate: 1}",
    }, "\n"))
    for _, r in ipairs({ { t_code, t_out }, { s_code, s_out } }) do
      assert.are_not.equal(0, r[1])
      assert.are_not.equal(124, r[1])
      assert.truthy(r[2]:find("no shared dict named 'ratelimit'", 1, true), r[2])
    end
  end)

  it("refuses it with the native plugin too, at the entry's position", function()
    local path = h.write_tmp(table.concat({
      "workers: 1",
      "listen: [127.0.0.1:" .. h.free_port() .. "]",
      "upstreams:",
      "  app:",
      "    backends: [127.0.0.1:" .. origin.port .. "]",
      "plugin_paths: [" .. BUILD .. "/plugins-native]",
      "plugins:",
      "  - name: rate-limit",
      "    config: {rate: 1}",
    }, "\n") .. "\n")
    local want = path .. ":8:5: plugin rate-limit: no shared dict named 'ratelimit'"
    for _, cmd in ipairs({ " -t -c ", " -c " }) do
      local code, out = h.run("timeout 10 " .. h.quote(h.bin) .. cmd .. h.quote(path))
      assert.are_not.equal(0, code)
      assert.are_not.equal(124, code)
      assert.truthy(out:find(want, 1, true), out)
    end
  end)
end)
