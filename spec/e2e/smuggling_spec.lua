-- Request framing and smuggling (RFC 9112 §2.2, §3, §5, §6, §7.1): every
-- request sluice cannot frame beyond doubt gets 400 with Connection: close,
-- the connection is closed after it, and the origin receives nothing of that
-- request. Next to the rules, positive controls show that the valid forms
-- closest to each rule still reach the origin, re-framed cleanly.
--
-- Run: busted --lua=luajit -o spec/support/summary.lua spec/e2e/smuggling_spec.lua
-- Each case gets its own origin and proxy, so the origin's log holds exactly
-- what that case caused. Every refusal runs twice: on a cold proxy, and with
-- an idle pooled upstream connection ready, over which a routed head could
-- be written to the origin at once, before the rest of the request is read.

local h = require "spec.helpers"
local E = require "spec.e2e.support"

-- The origin path every case asks for: /echo answers with the raw request it
-- received, so a request that got through would also be visible to the client.
local POST = "POST /echo HTTP/1.1\r\nHost: example.test\r\n"
local GET = "GET /echo HTTP/1.1\r\nHost: example.test\r\n"

-- Sends raw on a fresh connection and checks the whole answer: exactly one
-- response with `status` and Connection: close, then the close, with no
-- byte after the response (E.expect_refusal, which also closes our side).
local function expect_refusal(port, raw, status)
  local conn = assert(h.connect(port))
  finally(function() conn:close() end)
  assert(conn:send(raw))
  return E.expect_refusal(conn, status)
end

-- What the origin got, read once the proxy is stopped (spec/e2e/support.lua).
local origin_record = E.origin_record

-- Warms the proxy's upstream pool: one request on a connection of its own,
-- answered in full, leaves an idle upstream connection behind. Returns the
-- origin's request record, for assert_origin_untouched.
local function warm_pool(port, origin)
  local resp = assert(h.get(port, "/name"))
  assert.equals(200, resp.status)
  local reqs = origin:requests(1)
  assert.equals(1, #reqs)
  return reqs[1]
end

-- Nothing of the request reached the origin: no request and no partial, and
-- no new connection. `warmed`: the record warm_pool left (then exactly that
-- request and that one connection are expected). `connected_ok`: the request
-- failed in its body, after its head was routed, so a connection the proxy
-- opened ahead is allowed as long as not one byte went through it.
local function assert_origin_untouched(proxy, origin, warmed, connected_ok)
  local seen = origin_record(proxy, origin)
  assert.same(warmed and { warmed } or {}, seen.requests)
  assert.same({}, seen.partials)
  if not connected_ok then
    assert.equals(warmed and 1 or 0, seen.connections)
  end
end

-- A raw request as the origin logged it: request line, fields (lowercase
-- names, in order) and body bytes as they were on the wire.
local function parse_raw(raw)
  local head_end = raw:find("\r\n\r\n", 1, true)
  assert(head_end, "no end of head in: " .. raw)
  local lines = {}
  for line in raw:sub(1, head_end + 1):gmatch("([^\r\n]*)\r\n") do
    lines[#lines + 1] = line
  end
  local fields = {}
  for i = 2, #lines do
    local name, value = lines[i]:match("^([^:]+):[ \t]*(.-)[ \t]*$")
    assert(name, "malformed field line from the proxy: " .. lines[i])
    fields[#fields + 1] = { name = name:lower(), value = value }
  end
  return { line = lines[1], fields = fields, body = raw:sub(head_end + 4) }
end

local function values(msg, name)
  local out = {}
  for _, f in ipairs(msg.fields) do
    if f.name == name then out[#out + 1] = f.value end
  end
  return out
end

-- Decodes a chunked body strictly: every size line is bare hex (no chunk
-- extension, no whitespace), every chunk ends in CRLF, and there is a last
-- chunk. Returns the data and what follows the last-chunk line (the trailer
-- section and its final CRLF).
local function decode_clean_chunked(body)
  local data, pos = {}, 1
  while true do
    local size_line, after = body:match("^([^\r\n]*)\r\n()", pos)
    assert(size_line, "no chunk size line at byte " .. pos .. " of: " .. body)
    assert(size_line:match("^%x+$"), "chunk size line is not bare hex: '" .. size_line .. "'")
    local n = tonumber(size_line, 16)
    if n == 0 then
      return table.concat(data), body:sub(after)
    end
    data[#data + 1] = body:sub(after, after + n - 1)
    assert.equals("\r\n", body:sub(after + n, after + n + 1))
    pos = after + n + 2
  end
end

describe("sluice facing requests it cannot frame safely", function()
  local origin, proxy

  before_each(function()
    origin, proxy = nil, nil
    origin = h.start_origin { name = "behind" }
    local port = h.free_port()
    proxy = h.start_proxy {
      port = port,
      args = { "--listen", "127.0.0.1:" .. port, "--to", "127.0.0.1:" .. origin.port, "--workers", "1" },
    }
  end)

  after_each(function()
    if origin then origin:stop() end
    if proxy then proxy:stop() end
  end)

  -- Every table below: { name, raw request, stage = "body" when the error
  -- is in the body (see assert_origin_untouched) }.
  local function refused_with_400(cases)
    for _, case in ipairs(cases) do
      it("answers 400 and closes, forwarding nothing, for " .. case[1], function()
        expect_refusal(proxy.port, case[2], 400)
        assert_origin_untouched(proxy, origin, nil, case.stage == "body")
      end)
      it("answers 400 and closes, forwarding nothing even over a pooled upstream connection, for "
          .. case[1], function()
        local warmed = warm_pool(proxy.port, origin)
        expect_refusal(proxy.port, case[2], 400)
        assert_origin_untouched(proxy, origin, warmed, case.stage == "body")
      end)
    end
  end

  describe("when Content-Length and Transfer-Encoding come together (RFC 9112 §6.1, §6.3)", function()
    refused_with_400 {
      { "Content-Length before Transfer-Encoding",
        POST .. "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX" },
      { "Transfer-Encoding before Content-Length",
        POST .. "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX" },
    }
  end)

  describe("when Transfer-Encoding is anything but a lone chunked", function()
    refused_with_400 {
      { "Transfer-Encoding: gzip, chunked",
        POST .. "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" },
      { "Transfer-Encoding: chunked, gzip (chunked not last)",
        POST .. "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n" },
      { "Transfer-Encoding: identity",
        POST .. "Transfer-Encoding: identity\r\n\r\nhello" },
      { "Transfer-Encoding: chunked, chunked",
        POST .. "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" },
      { "two Transfer-Encoding fields, gzip then chunked",
        POST .. "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" },
      { "two Transfer-Encoding fields, both chunked",
        POST .. "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" },
      { "Transfer-Encoding in an HTTP/1.0 request",
        "POST /echo HTTP/1.0\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" },
    }
  end)

  describe("when Content-Length is repeated or malformed (RFC 9112 §6.3, RFC 9110 §8.6)", function()
    refused_with_400 {
      { "two different Content-Length fields",
        POST .. "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" },
      { "two equal Content-Length fields",
        POST .. "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" },
      { "a Content-Length list of equal values",
        POST .. "Content-Length: 5, 5\r\n\r\nhello" },
      { "Content-Length: 5x", POST .. "Content-Length: 5x\r\n\r\nhello" },
      { "Content-Length: -1", POST .. "Content-Length: -1\r\n\r\nhello" },
      { "Content-Length: +5", POST .. "Content-Length: +5\r\n\r\nhello" },
      { "a blank Content-Length", POST .. "Content-Length: \r\n\r\nhello" },
      { "Content-Length: 0x10", POST .. "Content-Length: 0x10\r\n\r\n0123456789abcdef" },
      { "Content-Length: 2^64 (18446744073709551616)",
        POST .. "Content-Length: 18446744073709551616\r\n\r\nhello" },
      { "a Content-Length of 30 digits",
        POST .. "Content-Length: 100000000000000000000000000005\r\n\r\nhello" },
    }
  end)

  describe("when the chunked framing is broken (RFC 9112 §7.1)", function()
    local CHUNKED = POST .. "Transfer-Encoding: chunked\r\n\r\n"
    refused_with_400 {
      { "a chunk size that is not hex (zz)",
        CHUNKED .. "zz\r\nhello\r\n0\r\n\r\n", stage = "body" },
      { "chunk data not followed by CRLF",
        CHUNKED .. "5\r\nhelloXX\r\n0\r\n\r\n", stage = "body" },
      { "a chunk size that overflows 64 bits (10000000000000000)",
        CHUNKED .. "10000000000000000\r\nhello\r\n0\r\n\r\n", stage = "body" },
      { "a chunk size of 32 hex digits",
        CHUNKED .. "ffffffffffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", stage = "body" },
      { "a chunk size line ending in a bare LF",
        CHUNKED .. "5\nhello\r\n0\r\n\r\n", stage = "body" },
      { "chunk data ending in a bare LF",
        CHUNKED .. "5\r\nhello\n0\r\n\r\n", stage = "body" },
      { "a last chunk and end of trailers in bare LFs",
        CHUNKED .. "5\r\nhello\r\n0\n\n", stage = "body" },
    }
  end)

  describe("when a header field is malformed (RFC 9112 §5.1, §5.2, RFC 9110 §5.5)", function()
    refused_with_400 {
      { "a space between field name and colon", GET .. "X-Test : value\r\n\r\n" },
      { "a tab between field name and colon", GET .. "X-Test\t: value\r\n\r\n" },
      { "a space before the colon of Content-Length",
        POST .. "Content-Length : 5\r\n\r\nhello" },
      { "an obs-fold continuation line starting with a space",
        GET .. "X-Test: one\r\n two\r\n\r\n" },
      { "an obs-fold continuation line starting with a tab",
        GET .. "X-Test: one\r\n\ttwo\r\n\r\n" },
      { "a \\x01 in a field value", GET .. "X-Test: a\1b\r\n\r\n" },
      { "a \\x7f (DEL) in a field value", GET .. "X-Test: a\127b\r\n\r\n" },
      { "a NUL in a field value", GET .. "X-Test: a\0b\r\n\r\n" },
    }
  end)

  describe("when lines end in a bare LF (RFC 9112 §2.2)", function()
    refused_with_400 {
      { "a request line ending in a bare LF",
        "GET /echo HTTP/1.1\nHost: example.test\r\n\r\n" },
      { "a field line ending in a bare LF",
        GET .. "X-Test: value\n\r\n" },
      { "a request whose every line ends in a bare LF",
        "GET /echo HTTP/1.1\nHost: example.test\nX-Test: value\n\n" },
      { "a head whose final empty line is a bare LF",
        GET .. "X-Test: value\r\n\n" },
      { "an HTTP/1.0 request line ending in a bare LF, with no fields",
        "GET /echo HTTP/1.0\n\r\n" },
      { "an HTTP/1.0 request of a request line and an empty line, both bare LF",
        "GET /echo HTTP/1.0\n\n" },
    }
  end)

  describe("when Host is missing or repeated (RFC 9112 §3.2)", function()
    refused_with_400 {
      { "an HTTP/1.1 request without Host", "GET /echo HTTP/1.1\r\nX-Test: value\r\n\r\n" },
      { "two Host fields with different values",
        "GET /echo HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n" },
      { "two Host fields with the same value",
        "GET /echo HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n" },
    }
  end)

  describe("when the request line is invalid (RFC 9112 §3)", function()
    refused_with_400 {
      { "a request line of garbage bytes", "\1\2\3\255 garbage\r\n\r\n" },
      { "a request line without an HTTP version", "GET /echo\r\nHost: example.test\r\n\r\n" },
    }
  end)

  describe("when a request is framed correctly", function()
    -- The client got the echo of what the origin logged, and the origin
    -- logged exactly one request: the one returned.
    local function forwarded(raw)
      local conn = assert(h.connect(proxy.port))
      finally(function() conn:close() end)
      assert(conn:send(raw))
      local resp = assert(conn:read_response())
      assert.equals(200, resp.status)
      local reqs = origin:requests(1)
      assert.equals(1, #reqs)
      assert.equals(reqs[1], resp.body)
      return parse_raw(reqs[1])
    end

    it("re-frames a chunked body with extensions and trailers as clean chunked", function()
      local msg = forwarded(POST .. "Transfer-Encoding: chunked\r\n\r\n"
        .. "5;name=value\r\nhello\r\n6;a;b=\"c d\"\r\n world\r\n0;last=1\r\nX-Trailer: t\r\n\r\n")
      assert.same({ "chunked" }, values(msg, "transfer-encoding"))
      assert.same({}, values(msg, "content-length"))
      local data, trailer = decode_clean_chunked(msg.body)
      assert.equals("hello world", data)
      -- Trailers may be dropped or passed on (RFC 9110 §6.5.1), nothing else.
      assert.is_true(trailer == "\r\n" or trailer == "X-Trailer: t\r\n\r\n",
        "unexpected trailer section: " .. trailer)
    end)

    for _, coding in ipairs { "Chunked", "CHUNKED", "cHuNkEd" } do
      it("accepts Transfer-Encoding: " .. coding .. " (codings are case-insensitive) and forwards it as chunked", function()
        local msg = forwarded(POST .. "Transfer-Encoding: " .. coding .. "\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        assert.equals(1, #values(msg, "transfer-encoding"))
        assert.equals("chunked", values(msg, "transfer-encoding")[1]:lower())
        assert.same({}, values(msg, "content-length"))
        local data, trailer = decode_clean_chunked(msg.body)
        assert.equals("hello", data)
        assert.equals("\r\n", trailer)
      end)
    end

    it("forwards a Content-Length body intact", function()
      local body = "hello world\r\n0\r\n\r\n\0\255"
      local msg = forwarded(POST .. "Content-Length: " .. #body .. "\r\n\r\n" .. body)
      assert.same({ tostring(#body) }, values(msg, "content-length"))
      assert.same({}, values(msg, "transfer-encoding"))
      assert.equals(body, msg.body)
    end)

    it("forwards an HTTP/1.0 request without Host (only HTTP/1.1 requires it)", function()
      local conn = assert(h.connect(proxy.port))
      finally(function() conn:close() end)
      assert(conn:send("GET /echo HTTP/1.0\r\nX-Test: value\r\n\r\n"))
      local resp = assert(conn:read_response())
      assert.equals(200, resp.status)
      local reqs = origin:requests(1)
      assert.equals(1, #reqs)
      assert.matches("^GET /echo HTTP/1%.[01]\r\n", reqs[1])
      assert.same({ "value" }, values(parse_raw(reqs[1]), "x-test"))
    end)

    -- Sends raw one byte at a time from byte `from` on, so that every field,
    -- chunk size and CRLF is split across reads.
    local trickled = {
      { name = "a Content-Length body arriving byte by byte",
        raw = POST .. "Content-Length: 11\r\n\r\nhello world", body_only = true,
        check = function(msg)
          assert.same({ "11" }, values(msg, "content-length"))
          assert.equals("hello world", msg.body)
        end },
      { name = "a chunked body with an extension arriving byte by byte",
        raw = POST .. "Transfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        body_only = true,
        check = function(msg)
          assert.equals("hello world", (decode_clean_chunked(msg.body)))
        end },
      { name = "a whole request, head included, arriving byte by byte",
        raw = POST .. "X-Long: " .. string.rep("v", 40) .. "\r\nTransfer-Encoding: chunked\r\n\r\n"
          .. "b\r\nhello world\r\n0\r\n\r\n",
        check = function(msg)
          assert.same({ string.rep("v", 40) }, values(msg, "x-long"))
          assert.equals("hello world", (decode_clean_chunked(msg.body)))
        end },
    }
    for _, case in ipairs(trickled) do
      it("forwards " .. case.name, function()
        local conn = assert(h.connect(proxy.port))
        finally(function() conn:close() end)
        local from = 1
        if case.body_only then
          from = case.raw:find("\r\n\r\n", 1, true) + 4
          assert(conn:send(case.raw:sub(1, from - 1)))
        end
        for i = from, #case.raw do
          assert(conn:send(case.raw:sub(i, i)))
          h.sleep(0.005)
        end
        local resp = assert(conn:read_response())
        assert.equals(200, resp.status)
        local reqs = origin:requests(1)
        assert.equals(1, #reqs)
        assert.equals(reqs[1], resp.body)
        case.check(parse_raw(reqs[1]))
      end)
    end
  end)
end)
