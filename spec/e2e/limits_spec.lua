-- Request limits and client timeouts (docs/CONFIG.md "limits", "timeouts"):
-- a request over a limit is answered by sluice itself (414, 431, 413, 408)
-- with Connection: close, the connection is closed, and the origin never
-- gets a complete message. Requests just inside each limit still pass.
--
-- Run: busted --lua=luajit -o spec/support/summary.lua spec/e2e/limits_spec.lua
-- Each case gets its own origin and proxy, so the origin's log holds exactly
-- what that case caused.

local h = require "spec.helpers"
local E = require "spec.e2e.support"

local X = string.rep

local MAX_LINE, MAX_HEADER_SIZE, MAX_HEADERS, MAX_BODY = 1024, 4096, 20, 1000

local CONFIG = [[
workers: 1
listen:
  - 127.0.0.1:%d
upstreams:
  app:
    backends:
      - 127.0.0.1:%d
limits:
  max_request_line: %d
  max_header_size: %d
  max_headers: %d
  max_body_size: %d
timeouts:
  client_header: 1s
  keepalive: 1s
]]

-- expect_refusal(conn, status, timeout): one response, `status` with
-- Connection: close, then the close. origin_record(proxy, origin): what the
-- origin got, read once the proxy is stopped. (spec/e2e/support.lua)
local expect_refusal, origin_record = E.expect_refusal, E.origin_record

local function assert_origin_untouched(proxy, origin)
  local seen = origin_record(proxy, origin)
  assert.same({}, seen.requests)
  assert.same({}, seen.partials)
  assert.equals(0, seen.connections)
end

-- Data bytes of a chunked body that may be cut anywhere, and whether the
-- last chunk was among them.
local function chunked_data_len(body)
  local total, pos = 0, 1
  while pos <= #body do
    local size, after = body:match("^(%x+)[^\r\n]*\r\n()", pos)
    if not size then break end
    local n = tonumber(size, 16)
    if n == 0 then return total, true end
    total = total + math.min(n, #body - after + 1)
    pos = after + n + 2
  end
  return total, false
end

local function chunk(data)
  return string.format("%x\r\n%s\r\n", #data, data)
end

describe("sluice enforcing request limits and client timeouts", function()
  local origin, proxy

  before_each(function()
    origin, proxy = nil, nil
    origin = h.start_origin { name = "behind" }
    local port = h.free_port()
    proxy = h.start_proxy {
      port = port,
      config = string.format(CONFIG, port, origin.port, MAX_LINE, MAX_HEADER_SIZE, MAX_HEADERS, MAX_BODY),
    }
  end)

  after_each(function()
    if origin then origin:stop() end
    if proxy then proxy:stop() end
  end)

  local function send(raw)
    local conn = assert(h.connect(proxy.port))
    finally(function() conn:close() end)
    assert(conn:send(raw))
    return conn
  end

  -- A request within every limit reaches the origin whole.
  local function expect_forwarded(raw, body)
    local conn = send(raw)
    local resp = assert(conn:read_response())
    assert.equals(200, resp.status)
    local reqs = origin:requests(1)
    assert.equals(1, #reqs)
    assert.equals(reqs[1], resp.body)
    if body then
      assert.equals(body, reqs[1]:sub(-#body))
    end
    return reqs[1]
  end

  describe("on the request line", function()
    it("answers 414 and closes, forwarding nothing, when the request line exceeds max_request_line", function()
      local conn = send("GET /echo/" .. X("a", MAX_LINE + 100) .. " HTTP/1.1\r\nHost: example.test\r\n\r\n")
      expect_refusal(conn, 414)
      assert_origin_untouched(proxy, origin)
    end)

    it("forwards a request line well within max_request_line", function()
      local target = "/echo/" .. X("a", MAX_LINE - 100)
      local got = expect_forwarded("GET " .. target .. " HTTP/1.1\r\nHost: example.test\r\n\r\n")
      assert.equals("GET " .. target .. " HTTP/1.1\r\n", got:sub(1, #target + 15))
    end)
  end)

  describe("on the header fields", function()
    local too_large = {
      { "a single field larger than max_header_size",
        { { "X-Big", X("b", MAX_HEADER_SIZE + 100) } } },
      { "fields that together exceed max_header_size, each of them small",
        (function()
          local list = {}
          for i = 1, 10 do list[i] = { "X-Part-" .. i, X("p", 500) } end
          return list
        end)() },
    }
    for _, case in ipairs(too_large) do
      it("answers 431 and closes, forwarding nothing, for " .. case[1], function()
        expect_refusal(send(h.build_request("GET", "/echo", case[2])), 431)
        assert_origin_untouched(proxy, origin)
      end)
    end

    it("answers 431 and closes, forwarding nothing, for one field more than max_headers", function()
      local list = {}   -- Host is added by build_request and counts too
      for i = 1, MAX_HEADERS do list[i] = { "X-N-" .. i, "v" } end
      expect_refusal(send(h.build_request("GET", "/echo", list)), 431)
      assert_origin_untouched(proxy, origin)
    end)

    it("forwards exactly max_headers fields", function()
      local list = {}
      for i = 1, MAX_HEADERS - 1 do list[i] = { "X-N-" .. i, "v" } end
      local got = expect_forwarded(h.build_request("GET", "/echo", list))
      assert.truthy(got:find("\r\nX-N-" .. (MAX_HEADERS - 1) .. ": v\r\n", 1, true))
    end)

    it("forwards fields well within max_header_size", function()
      local got = expect_forwarded(h.build_request("GET", "/echo", { { "X-Big", X("b", MAX_HEADER_SIZE - 1000) } }))
      assert.truthy(got:find("\r\nX-Big: " .. X("b", MAX_HEADER_SIZE - 1000) .. "\r\n", 1, true))
    end)
  end)

  describe("on the body", function()
    local declared = {
      { "a Content-Length one byte over max_body_size, body sent", MAX_BODY + 1, true },
      { "a Content-Length of a terabyte, answered without waiting for the body", 1000000000000, false },
    }
    for _, case in ipairs(declared) do
      it("answers 413 and closes, forwarding nothing, for " .. case[1], function()
        local body = case[3] and X("b", case[2]) or ""
        local conn = send("POST /echo HTTP/1.1\r\nHost: example.test\r\nContent-Length: " .. case[2]
          .. "\r\n\r\n" .. body)
        expect_refusal(conn, 413)
        assert_origin_untouched(proxy, origin)
      end)
    end

    it("forwards a Content-Length body of exactly max_body_size", function()
      local body = X("b", MAX_BODY)
      expect_forwarded(h.build_request("POST", "/echo", nil, body), "\r\n\r\n" .. body)
    end)

    it("answers 413 and closes when a chunked body grows past max_body_size, and the origin never gets all of it", function()
      local part = X("c", 400)
      local conn = send("POST /echo HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. chunk(part))
      -- Pauses let the proxy stream the first chunks on before the limit is hit.
      h.sleep(0.1)
      assert(conn:send(chunk(part)))
      h.sleep(0.1)
      assert(conn:send(chunk(part) .. "0\r\n\r\n"))
      expect_refusal(conn, 413)
      local seen = origin_record(proxy, origin)
      assert.same({}, seen.requests)
      for _, p in ipairs(seen.partials) do
        local head_end = p:find("\r\n\r\n", 1, true)
        if head_end then
          local data, last = chunked_data_len(p:sub(head_end + 4))
          assert.is_false(last, "the origin got the last chunk: " .. p)
          assert.is_true(data <= MAX_BODY, "the origin got " .. data .. " body bytes")
        end
      end
    end)

    it("forwards a chunked body of exactly max_body_size", function()
      local got = expect_forwarded("POST /echo HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. chunk(X("c", 600)) .. chunk(X("c", MAX_BODY - 600)) .. "0\r\n\r\n")
      local head_end = got:find("\r\n\r\n", 1, true)
      local data, last = chunked_data_len(got:sub(head_end + 4))
      assert.equals(MAX_BODY, data)
      assert.is_true(last)
    end)
  end)

  describe("on slow and idle clients", function()
    it("answers 408 and closes, forwarding nothing, when half a head waits past client_header", function()
      local t0 = h.now()
      local conn = send("GET /echo HTTP/1.1\r\nHost: example.test\r\n")
      expect_refusal(conn, 408, 4)
      local waited = h.now() - t0
      assert.is_true(waited >= 0.9, "408 after only " .. waited .. " s")
      assert.is_true(waited < 3, "408 only after " .. waited .. " s")
      assert_origin_untouched(proxy, origin)
    end)

    it("answers 408 when a head keeps trickling in for longer than client_header", function()
      local t0 = h.now()
      local conn = send("GET /echo HTTP/1.1\r\nHost: example.test\r\n")
      -- A line every 0.2 s: each read is quick, the whole head is not.
      -- Stop as soon as the proxy says something, so no reset destroys it.
      for i = 1, 20 do
        if conn:is_closed(0.2) or #conn.buf >= conn.pos then break end
        if not conn:send("X-Trickle-" .. i .. ": v\r\n") then break end
      end
      expect_refusal(conn, 408, 4)
      local waited = h.now() - t0
      assert.is_true(waited >= 0.9, "408 after only " .. waited .. " s")
      assert.is_true(waited < 3, "408 only after " .. waited .. " s")
      assert_origin_untouched(proxy, origin)
    end)

    it("closes an idle keep-alive connection after timeouts.keepalive without sending anything", function()
      local conn = send(h.build_request("GET", "/name"))
      local resp = assert(conn:read_response())
      assert.equals(200, resp.status)
      assert.equals("behind", resp.body)
      assert.not_equals("close", (resp.headers.connection or ""):lower())
      assert.is_false(conn:is_closed(0.5), "closed well before the keep-alive timeout")
      assert.is_true(conn:is_closed(2.5), "still open 3 s after the response")
      -- is_closed keeps whatever arrived meanwhile: there must be nothing.
      assert.equals("", conn:read_all(0))
      assert.equals(1, #origin:requests())
    end)
  end)
end)
