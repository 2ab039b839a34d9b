-- Origins that misbehave (RFC 9112 §6, §8; RFC 9110 §15.6.3, §15.6.5): a
-- malformed or missing response becomes 502, a response that never comes 504,
-- both complete responses of sluice's own; a response cut short after it
-- started is never passed off as complete: the client connection is closed
-- before the announced end.
--
-- Run: busted --lua=luajit -o spec/support/summary.lua spec/e2e/bad_origin_spec.lua
-- Each case gets its own origin (or mock) and proxy.

local h = require "spec.helpers"

local function quick_args(port, to_port)
  return { "--listen", "127.0.0.1:" .. port, "--to", "127.0.0.1:" .. to_port, "--workers", "1" }
end

local function connect(port)
  local conn = assert(h.connect(port))
  finally(function() conn:close() end)
  return conn
end

-- A response sluice made up must be complete on its own: Content-Length
-- framing that matches the body. Afterwards the connection is either closed
-- (announced with Connection: close, and nothing follows) or still usable:
-- `follow_up(conn)` then sends another request on it and checks the answer.
local function assert_complete_and_consistent(conn, resp, status, follow_up)
  assert.equals(status, resp.status)
  assert.is_nil(resp.headers["transfer-encoding"])
  assert.equals(tostring(#resp.body), resp.headers["content-length"])
  if (resp.headers.connection or ""):lower() == "close" then
    local rest, err = conn:read_all(2)
    assert(rest, "Connection: close, yet the connection stayed open (" .. tostring(err) .. ")")
    assert.equals("", rest)
  else
    assert.is_false(conn:is_closed(0.2), "closed without announcing Connection: close")
    follow_up(conn)
  end
end

describe("sluice in front of an origin that misbehaves", function()
  local origin, proxy

  after_each(function()
    if origin then origin:stop() end
    if proxy then proxy:stop() end
  end)

  describe("with the bundled origin", function()
    before_each(function()
      origin, proxy = nil, nil
      origin = h.start_origin { name = "flaky" }
      local port = h.free_port()
      proxy = h.start_proxy { port = port, args = quick_args(port, origin.port) }
    end)

    -- The next request on the same connection gets the origin's own answer,
    -- not a leftover of the broken response.
    local function origin_answers(conn)
      assert(conn:send(h.build_request("GET", "/name")))
      local resp = assert(conn:read_response())
      assert.equals(200, resp.status)
      assert.equals("flaky", resp.body)
    end

    local malformed = {
      { "/bad/status-line", "a status line with letters for digits" },
      { "/bad/cl-te", "both Content-Length and Transfer-Encoding" },
      { "/bad/two-cl", "two different Content-Length fields" },
      { "/bad/garbage", "garbage instead of a status line" },
      { "/bad/header-space", "a space between field name and colon" },
      { "/bad/chunk-size", "a chunk size that is not hex" },
    }
    for _, case in ipairs(malformed) do
      it("answers 502 for a response with " .. case[2] .. " (" .. case[1] .. ")", function()
        local conn = connect(proxy.port)
        assert(conn:send(h.build_request("GET", case[1])))
        local resp, err, partial = conn:read_response()
        assert(resp, "no complete response (" .. tostring(err) .. "), got: "
          .. tostring(partial and partial.raw or conn.buf))
        assert_complete_and_consistent(conn, resp, 502, origin_answers)
        -- Nothing of the broken head reaches the client (/bad/chunk-size
        -- sends a field with its head, in the same write as the bad chunk).
        assert.is_nil(resp.headers["x-origin-field"], "a field of the broken response leaked")
        -- The request did reach the origin: the 502 is about its answer.
        local line = "GET " .. case[1] .. " HTTP/1.1\r\n"
        assert.equals(line, origin:requests(1)[1]:sub(1, #line))
      end)
    end

    local cut_short = { 2000, 300000 }
    for _, n in ipairs(cut_short) do
      it("closes the client connection before the end of a " .. n .. "-byte Content-Length body the origin cut short", function()
        local conn = connect(proxy.port)
        assert(conn:send(h.build_request("GET", "/close-mid/" .. n)))
        local resp, err, partial = conn:read_response { timeout = 5 }
        assert.is_nil(resp, "a complete response arrived for a body the origin cut short")
        assert.equals("closed", err)
        assert.equals(200, partial.status)
        assert.equals(tostring(n), partial.headers["content-length"])
        assert.is_true(#partial.body < n)
        assert.equals(string.rep("x", #partial.body), partial.body)
        -- The proxy itself carries on.
        local next = assert(h.get(proxy.port, "/name"))
        assert.equals("flaky", next.body)
      end)
    end

    it("closes the client connection without a last chunk when the origin cuts a chunked body short", function()
      local conn = connect(proxy.port)
      assert(conn:send(h.build_request("GET", "/close-mid-chunked/20000")))
      local resp, err, partial = conn:read_response { timeout = 5 }
      assert.is_nil(resp, "a complete chunked response arrived for a body the origin cut short")
      assert.equals("closed", err)
      assert.equals(200, partial.status)
      assert.equals("chunked", partial.headers["transfer-encoding"])
      assert.is_true(#partial.body < 20000)
      assert.is_nil(partial.raw:find("\r\n0\r\n", 1, true), "a last chunk reached the client")
      local next = assert(h.get(proxy.port, "/name"))
      assert.equals("flaky", next.body)
    end)

    it("answers 502 when the origin closes without answering", function()
      local conn = connect(proxy.port)
      assert(conn:send(h.build_request("GET", "/close-before-response")))
      local resp, err, partial = conn:read_response()
      assert(resp, "no complete response (" .. tostring(err) .. "), got: "
        .. tostring(partial and partial.raw or conn.buf))
      assert_complete_and_consistent(conn, resp, 502, origin_answers)
      assert.is_true(#origin:requests(1) >= 1)
    end)
  end)

  describe("with an origin that is slower than timeouts.response", function()
    before_each(function()
      origin, proxy = nil, nil
      origin = h.start_origin { name = "slow" }
      local port = h.free_port()
      proxy = h.start_proxy {
        port = port,
        config = string.format([[
workers: 1
listen:
  - 127.0.0.1:%d
upstreams:
  app:
    backends:
      - 127.0.0.1:%d
    timeouts:
      response: 1s
]], port, origin.port),
      }
    end)

    it("answers 504 after timeouts.response when the origin never answers", function()
      local conn = connect(proxy.port)
      local t0 = h.now()
      assert(conn:send(h.build_request("GET", "/delay/5000")))
      local resp, err, partial = conn:read_response { timeout = 4 }
      assert(resp, "no complete response (" .. tostring(err) .. "), got: "
        .. tostring(partial and partial.raw or conn.buf))
      local waited = h.now() - t0
      assert.is_true(waited >= 0.9, "504 after only " .. waited .. " s")
      assert.is_true(waited < 3, "504 only after " .. waited .. " s")
      assert_complete_and_consistent(conn, resp, 504, function(c)
        assert(c:send(h.build_request("GET", "/name")))
        local next = assert(c:read_response())
        assert.equals("slow", next.body)
      end)
    end)

    it("never hands the late response of a timed-out request to the next request", function()
      local conn = connect(proxy.port)
      assert(conn:send(h.build_request("GET", "/delay/2000")))
      local resp = assert(conn:read_response { timeout = 4 })
      assert.equals(504, resp.status)
      -- The origin answers the first request at 2 s; a reused upstream
      -- connection would deliver that "delayed" to whoever asks next.
      local next
      if (resp.headers.connection or ""):lower() == "close" then
        next = assert(h.get(proxy.port, "/name", nil, { timeout = 4 }))
      else
        assert(conn:send(h.build_request("GET", "/name")))
        next = assert(conn:read_response { timeout = 4 })
      end
      assert.equals(200, next.status)
      assert.equals("slow", next.body)
      h.sleep(1.5)  -- past the origin's late answer
      local later = assert(h.get(proxy.port, "/name", nil, { timeout = 4 }))
      assert.equals("slow", later.body)
    end)
  end)

  describe("with nothing listening at the backend address", function()
    before_each(function()
      origin, proxy = nil, nil
      local port = h.free_port()
      proxy = h.start_proxy { port = port, args = quick_args(port, h.free_port()) }
    end)

    it("answers 502 when the connection to the origin is refused", function()
      local conn = connect(proxy.port)
      assert(conn:send(h.build_request("GET", "/name")))
      local resp, err, partial = conn:read_response()
      assert(resp, "no complete response (" .. tostring(err) .. "), got: "
        .. tostring(partial and partial.raw or conn.buf))
      assert_complete_and_consistent(conn, resp, 502, function(c)
        assert(c:send(h.build_request("GET", "/name")))
        local again = assert(c:read_response())
        assert.equals(502, again.status)
        assert.equals(tostring(#again.body), again.headers["content-length"])
      end)
    end)
  end)

  describe("with a mock origin crafting its response", function()
    local mock

    before_each(function()
      origin, proxy = nil, nil
      mock = h.mock_origin()
      local port = h.free_port()
      proxy = h.start_proxy { port = port, args = quick_args(port, mock.port) }
    end)

    after_each(function()
      if mock then mock:close() end
    end)

    local framings = {
      { "Transfer-Encoding before Content-Length",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n" },
      { "Content-Length before Transfer-Encoding",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" },
    }
    for _, case in ipairs(framings) do
      it("answers 502 and drops the origin connection for a response with " .. case[1], function()
        local conn = connect(proxy.port)
        assert(conn:send(h.build_request("GET", "/crafted")))
        local up = assert(mock:accept())
        local req = assert(up:read_request())
        assert.equals("/crafted", req.target)
        assert(up:send(case[2]))
        local resp, err, partial = conn:read_response()
        assert(resp, "no complete response (" .. tostring(err) .. "), got: "
          .. tostring(partial and partial.raw or conn.buf))
        assert.is_nil(resp.raw:find("hello", 1, true))
        assert_complete_and_consistent(conn, resp, 502, function(c)
          -- A fresh upstream connection must serve the next request.
          assert(c:send(h.build_request("GET", "/next")))
          local up2 = assert(mock:accept())
          assert.equals("/next", assert(up2:read_request()).target)
          assert(up2:send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
          local next = assert(c:read_response())
          assert.equals(200, next.status)
          assert.equals("ok", next.body)
        end)
        -- The broken connection is not kept for reuse.
        assert.is_true(up:is_closed(2), "the proxy kept the connection whose framing was broken")
      end)
    end
  end)
end)
