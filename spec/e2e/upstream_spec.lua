-- Upstream side: keep-alive pools, stale connections, smooth weighted
-- round-robin, backends that refuse or hang, and upstream timeouts. Each
-- case starts its own origins and proxy (one worker, so one pool and one
-- balancer state), so counts and orders are its own.
local h = require "spec.helpers"
local socket = require "socket"

-- A one-upstream config. backends: list of { port =, weight = }; upstream:
-- extra lines for the upstream mapping (indented 4 spaces); top: extra
-- top-level lines.
local function start(backends, upstream, top)
  local port = h.free_port()
  local lines = {}
  for _, b in ipairs(backends) do
    lines[#lines + 1] = string.format("      - {address: 127.0.0.1:%d, weight: %d}", b.port, b.weight or 1)
  end
  return h.start_proxy { config = string.format([[
workers: 1
listen: ["127.0.0.1:%d"]
upstreams:
  app:
    backends:
%s
%s
%s]], port, table.concat(lines, "\n"), upstream or "", top or "") }
end

-- A port nobody listens on: connecting is refused at once.
local function closed_port() return h.free_port() end

-- A listener that never accepts, with its one-slot queue taken: Linux drops
-- further SYNs, so connecting hangs until the connecting side gives up.
local function black_hole()
  local srv = socket.tcp()
  assert(srv:bind("127.0.0.1", 0))
  assert(srv:listen(0))
  local _, port = srv:getsockname()
  local filler = socket.tcp()
  filler:settimeout(1)
  assert(filler:connect("127.0.0.1", port))
  local probe = socket.tcp()
  probe:settimeout(0.2)
  local ok = probe:connect("127.0.0.1", port)
  probe:close()
  assert(not ok, "the black hole accepted a connection: cannot emulate a connect timeout")
  return { port = tonumber(port), close = function() filler:close(); srv:close() end }
end

local function count_lines(text, needle)
  local n = 0
  for line in text:gmatch("[^\n]+") do
    if line:find(needle, 1, true) then n = n + 1 end
  end
  return n
end

describe("upstream connections", function()
  it("are reused for sequential requests", function()
    local o = h.start_origin { name = "ka" }
    local p = start { { port = o.port } }
    finally(function() p:stop(); o:stop() end)
    for i = 1, 10 do
      local resp = assert(h.get(p.port, "/size/" .. i))
      assert.equals(200, resp.status)
      assert.equals(string.rep("x", i), resp.body)
    end
    local reqs = o:requests(10)
    assert.equals(10, #reqs)
    for i, raw in ipairs(reqs) do
      assert.equals("GET /size/" .. i .. " HTTP/1.1\r\n", raw:match("^[^\n]*\n"))
    end
    assert.equals(1, o:connections())
  end)

  it("are not reused after the origin answered Connection: close", function()
    local mock = h.mock_origin()
    local p = start { { port = mock.port } }
    finally(function() p:stop(); mock:close() end)

    local c1 = assert(h.connect(p.port))
    assert(c1:send(h.build_request("GET", "/first")))
    local up1 = assert(mock:accept())
    assert.equals("GET /first HTTP/1.1", assert(up1:read_request()).request_line)
    -- the origin says close but leaves the socket open: the proxy must close it
    assert(up1:send("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\none"))
    local r1 = assert(c1:read_response())
    assert.equals(200, r1.status)
    assert.equals("one", r1.body)
    assert.is_true(up1:is_closed(2), "the proxy kept the connection the origin asked to close")

    local c2 = assert(h.connect(p.port))
    assert(c2:send(h.build_request("GET", "/second")))
    local up2 = assert(mock:accept(2), "the second request did not come on a new connection")
    assert.equals("GET /second HTTP/1.1", assert(up2:read_request()).request_line)
    assert(up2:send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"))
    assert.equals("two", assert(c2:read_response()).body)
    assert.is_nil(up1:read_some(0.1), "the second request went to the closed connection")
    c1:close()
    c2:close()
  end)

  it("are not reused after a close-delimited response", function()
    local o = h.start_origin { name = "eof" }
    local p = start { { port = o.port } }
    finally(function() p:stop(); o:stop() end)
    for _ = 1, 2 do
      local resp = assert(h.get(p.port, "/eof/100"))
      assert.equals(200, resp.status)
      assert.equals(string.rep("x", 100), resp.body)
    end
    assert.equals(2, #o:requests(2))
    assert.equals(2, o:connections())
  end)

  describe("that went stale in the pool", function()
    it("are retried once on a fresh connection when the origin closes on the next request", function()
      local mock = h.mock_origin()
      local p = start({ { port = mock.port } }, "    keepalive: {idle_timeout: 1h}")
      finally(function() p:stop(); mock:close() end)

      local c1 = assert(h.connect(p.port))
      finally(function() c1:close() end)
      assert(c1:send(h.build_request("GET", "/warm")))
      local up1 = assert(mock:accept())
      assert.equals("GET /warm HTTP/1.1", assert(up1:read_request()).request_line)
      assert(up1:send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"))
      assert.equals("one", assert(c1:read_response()).body)

      local conn = assert(h.connect(p.port))
      finally(function() conn:close() end)
      assert(conn:send(h.build_request("GET", "/next", { { "X-Case", "stale" } })))
      -- the pooled connection carries the request; the origin drops it unanswered
      local lost = assert(up1:read_request())
      assert.equals("GET /next HTTP/1.1", lost.request_line)
      up1:close()
      local up2 = assert(mock:accept(), "no retry on a fresh connection")
      local again = assert(up2:read_request())
      assert.equals(lost.raw, again.raw)
      assert(up2:send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"))
      local resp = assert(conn:read_response())
      assert.equals(200, resp.status)
      assert.equals("two", resp.body)
    end)

    it("do not fail a request sent just as the origin closed the idle connection", function()
      local mock = h.mock_origin()
      local p = start({ { port = mock.port } }, "    keepalive: {idle_timeout: 1h}")
      finally(function() p:stop(); mock:close() end)

      local c1 = assert(h.connect(p.port))
      assert(c1:send(h.build_request("GET", "/warm")))
      local up1 = assert(mock:accept())
      assert(up1:read_request())
      assert(up1:send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"))
      assert.equals("one", assert(c1:read_response()).body)
      c1:close()
      up1:close()
      local c2 = assert(h.connect(p.port))
      finally(function() c2:close() end)
      assert(c2:send(h.build_request("GET", "/next")))
      local up2 = assert(mock:accept())
      assert.equals("GET /next HTTP/1.1", assert(up2:read_request()).request_line)
      assert(up2:send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"))
      local resp = assert(c2:read_response())
      assert.equals(200, resp.status)
      assert.equals("two", resp.body)
    end)

    it("do not fail a request after the origin restarted", function()
      local o1 = h.start_origin { name = "before" }
      local p = start({ { port = o1.port } }, "    keepalive: {idle_timeout: 1h}")
      finally(function() p:stop() end)
      assert.equals("before", assert(h.get(p.port, "/name")).body)
      assert.equals(0, (o1:stop()))
      local o2 = h.start_origin { name = "after", port = o1.port }
      finally(function() o2:stop() end)
      local resp = assert(h.get(p.port, "/name"))
      assert.equals(200, resp.status)
      assert.equals("after", resp.body)
      assert.equals("GET /name HTTP/1.1\r\n", o2:requests(1)[1]:match("^[^\n]*\n"))
    end)
  end)
end)

describe("smooth weighted round-robin", function()
  local names = { "a", "b", "c" }
  local cases = {
    { weights = { 3, 1 }, order = "aabaaaba" },
    { weights = { 5, 1, 1 }, order = "aabacaa" },
    { weights = { 1, 1 }, order = "abab" },
  }
  for _, case in ipairs(cases) do
    it("spreads " .. #case.order .. " requests over weights " .. table.concat(case.weights, ",")
      .. " as " .. case.order, function()
      local origins, backends = {}, {}
      for i, w in ipairs(case.weights) do
        origins[i] = h.start_origin { name = names[i] }
        backends[i] = { port = origins[i].port, weight = w }
      end
      local p = start(backends)
      finally(function()
        p:stop()
        for _, o in ipairs(origins) do o:stop() end
      end)
      local got = {}
      for i = 1, #case.order do
        local resp = assert(h.get(p.port, "/name"))
        assert.equals(200, resp.status)
        got[i] = resp.body
      end
      assert.equals(case.order, table.concat(got))
      for i, o in ipairs(origins) do
        local want = select(2, case.order:gsub(names[i], ""))
        assert.equals(want, #o:requests(want), names[i] .. "'s share")
      end
    end)
  end
end)

describe("a backend refusing connections", function()
  it("is skipped, and warned about once while it cools down", function()
    local dead = closed_port()
    local o = h.start_origin { name = "live" }
    local p = start { { port = dead }, { port = o.port } }
    finally(function() p:stop(); o:stop() end)
    for _ = 1, 6 do
      local resp = assert(h.get(p.port, "/name"))
      assert.equals(200, resp.status)
      assert.equals("live", resp.body)
    end
    assert.equals(6, #o:requests(6))
    assert.equals(1, count_lines(p:log(), "127.0.0.1:" .. dead))
  end)

  it("is tried again after its cool-down", function()
    local dead = closed_port()
    local o = h.start_origin { name = "live" }
    local p = start({ { port = dead }, { port = o.port } }, "    fail_cooldown: 200ms")
    finally(function() p:stop(); o:stop() end)
    assert.equals("live", assert(h.get(p.port, "/name")).body)
    assert.equals(1, count_lines(p:log(), "127.0.0.1:" .. dead))
    h.sleep(0.4)
    for _ = 1, 2 do
      assert.equals("live", assert(h.get(p.port, "/name")).body)
    end
    assert.equals(2, count_lines(p:log(), "127.0.0.1:" .. dead))
    assert.equals(3, #o:requests(3))
  end)

  local down = {
    { name = "the only backend", n = 1 },
    { name = "every backend", n = 2 },
  }
  for _, case in ipairs(down) do
    it("gives 502 when it is " .. case.name, function()
      local backends, ports = {}, {}
      for i = 1, case.n do
        ports[i] = closed_port()
        backends[i] = { port = ports[i] }
      end
      local p = start(backends)
      finally(function() p:stop() end)
      local resp = assert(h.get(p.port, "/name"))
      assert.equals(502, resp.status)
      for _, port in ipairs(ports) do
        assert.equals(1, count_lines(p:log(), "127.0.0.1:" .. port))
      end
    end)
  end
end)

describe("upstream timeouts", function()
  -- A backend whose connect hangs (see black_hole) with connect: 300ms.
  local cases = {
    { name = "gives 504 when the only backend does not accept within the connect timeout",
      live = false, status = 504 },
    { name = "moves on to the next backend when one does not accept within the connect timeout",
      live = true, status = 200 },
  }
  for _, case in ipairs(cases) do
    it(case.name, function()
      local hole = black_hole()
      local backends = { { port = hole.port } }
      local o
      if case.live then
        o = h.start_origin { name = "live" }
        backends[2] = { port = o.port }
      end
      local p = start(backends, "    timeouts: {connect: 300ms}")
      finally(function()
        p:stop()
        if o then o:stop() end
        hole.close()
      end)
      local t0 = h.now()
      local resp = assert(h.get(p.port, "/name"))
      local took = h.now() - t0
      assert.equals(case.status, resp.status)
      assert.is_true(took >= 0.25 and took < 2, string.format("answered after %.2f s", took))
      if case.live then
        assert.equals("live", resp.body)
        assert.equals(1, #o:requests(1))
      end
      assert.equals(1, count_lines(p:log(), "127.0.0.1:" .. hole.port))
    end)
  end

  it("give 504 when the response head does not come within the response timeout", function()
    local o = h.start_origin { name = "slow" }
    local p = start({ { port = o.port } }, "    timeouts: {response: 300ms}")
    finally(function() p:stop(); o:stop() end)
    local t0 = h.now()
    local resp = assert(h.get(p.port, "/delay/3000"))
    local took = h.now() - t0
    assert.equals(504, resp.status)
    assert.is_true(took >= 0.25 and took < 2, string.format("answered after %.2f s", took))
    assert.equals("GET /delay/3000 HTTP/1.1\r\n", o:requests(1)[1]:match("^[^\n]*\n"))
  end)

  it("close the client connection when the body stalls past the response timeout", function()
    local o = h.start_origin { name = "slow" }
    local p = start({ { port = o.port } }, "    timeouts: {response: 300ms}")
    finally(function() p:stop(); o:stop() end)
    local resp, err, partial = h.get(p.port, "/slow/100000/2000", nil, { timeout = 3 })
    assert.is_nil(resp)
    assert.equals("closed", err)
    assert.equals(200, partial.status)
    assert.equals("100000", partial.headers["content-length"])
    assert.is_true(#partial.body < 100000)
    assert.equals("GET /slow/100000/2000 HTTP/1.1\r\n", o:requests(1)[1]:match("^[^\n]*\n"))
  end)
end)
