-- spec/helpers.lua: the integration harness every spec requires.
--
--   local h = require "spec.helpers"
--
-- busted runs from the repository root, so "./?.lua" on package.path finds
-- this file as "spec.helpers" (LuaJIT's default path has it; it is added
-- below in case a runner's path does not).
--
-- Processes: started in the background through /bin/sh with their output in
-- a temp file; their PID is the binary's own PID. A tiny waiting subshell
-- records the exit status, so stop() can report it. Every process and mock
-- socket is registered; h.cleanup() stops and closes what is left, and runs
-- by itself at the end of every spec file and at exit. Processes are only
-- ever signalled by PID.
--
-- Raw client: conn:read_response() parses what arrived, byte for byte, and
-- never "fixes" a response; a spec can always look at resp.raw.
--
-- Timeouts are in seconds and default to h.timeout (5).

if not package.path:find("./?.lua", 1, true) then
  package.path = "./?.lua;" .. package.path
end

local socket = require "socket"
local ffi = require "ffi"

-- Redeclaring is an error, and busted reloads this module for every file.
pcall(ffi.cdef, [[
  int kill(int pid, int sig);
  int fcntl(int fd, int cmd, ...);
]])

local h = {}

--- Path of the sluice binary under test: $SLUICE_BIN or "build/sluice".
h.bin = os.getenv("SLUICE_BIN") or "build/sluice"
--- Path of the bundled origin: $SLUICE_ORIGIN or "build/sluice-origin".
h.origin_bin = os.getenv("SLUICE_ORIGIN") or "build/sluice-origin"
--- Default timeout in seconds for waits and reads.
h.timeout = 5

local SIGNALS = { HUP = 1, INT = 2, QUIT = 3, KILL = 9, USR1 = 10, USR2 = 12, TERM = 15 }
local SANITIZER_MARKERS = { "AddressSanitizer", "LeakSanitizer", "runtime error:" }

local procs = {}     -- pid -> process, started and not yet stopped
local closers = {}   -- mock servers and other sockets to close at cleanup
local tmpfiles = {}  -- removed at cleanup
local ports_given = {}

local function now() return socket.gettime() end

local function quote(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Sockets must not leak into the processes we start: a proxy holding a copy
-- of a client socket would keep it open after the spec closes it.
local function cloexec(sock)
  local fd = sock:getfd()
  if fd and fd >= 0 then ffi.C.fcntl(fd, 2 --[[F_SETFD]], ffi.new("int", 1) --[[FD_CLOEXEC]]) end
end

local function tmpname()
  local path = os.tmpname()
  tmpfiles[#tmpfiles + 1] = path
  return path
end

--- h.now() -> wall-clock seconds as a float.
h.now = now

--- h.sleep(seconds): sleeps.
function h.sleep(s) socket.sleep(s) end

--- h.wait_until(fn, timeout, interval) -> the first truthy value fn()
-- returns, polling every `interval` (0.02 s) for up to `timeout`; nil if
-- none came.
function h.wait_until(fn, timeout, interval)
  local deadline = now() + (timeout or h.timeout)
  while true do
    local v = fn()
    if v then return v end
    if now() > deadline then return nil end
    socket.sleep(interval or 0.02)
  end
end

--- h.read_file(path) -> contents, or nil if it cannot be read.
h.read_file = read_file

--- h.write_tmp(content) -> path of a new temp file holding `content`
-- (removed at cleanup).
function h.write_tmp(content)
  local path = tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  return path
end

--- h.free_port() -> a 127.0.0.1 TCP port nobody listens on right now
-- (bound to port 0, read back, closed). Never returns the same port twice in
-- one file, so consecutive calls do not collide.
function h.free_port()
  for _ = 1, 50 do
    local s = socket.tcp()
    assert(s:bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    port = tonumber(port)
    if not ports_given[port] then
      ports_given[port] = true
      return port
    end
  end
  error("free_port: no fresh port found")
end

--- h.is_listening(port) -> true when some socket listens on TCP `port`.
-- Read from /proc/net/tcp{,6} rather than by connecting, so waiting for a
-- process to come up adds no connection to its logs or counters.
function h.is_listening(port)
  local want = string.format(":%04X", port)
  for _, file in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
    local f = io.open(file)
    if f then
      for line in f:lines() do
        local lport, st = line:match("^%s*%d+:%s+%x+(:%x+)%s+%x+:%x+%s+(%x+)")
        if lport == want and st == "0A" then
          f:close()
          return true
        end
      end
      f:close()
    end
  end
  return false
end

local function sanitizer_report(text)
  for _, m in ipairs(SANITIZER_MARKERS) do
    if text:find(m, 1, true) then return text end
  end
  return nil
end

--------------------------------------------------------------------------
-- Processes

local Proc = {}
Proc.__index = Proc

--- proc:exit_code() -> the exit status (128+N when killed by signal N), or
-- nil while the process runs.
function Proc:exit_code()
  local function recorded()
    local s = read_file(self.rc_path)
    return s and tonumber(s:match("%d+"))
  end
  if self.code == nil then
    self.code = recorded()
    -- Gone without a status: it was reaped a moment ago and the status file
    -- is on its way, or the waiting subshell was killed too (then -1).
    if self.code == nil and ffi.C.kill(self.pid, 0) ~= 0 then
      self.code = h.wait_until(recorded, 1) or -1
    end
  end
  return self.code
end

--- proc:alive() -> true while the process runs.
function Proc:alive() return self:exit_code() == nil end

--- proc:signal(sig): sends "TERM", "HUP", "KILL", … (or a number) to the PID.
function Proc:signal(sig)
  if self:alive() then ffi.C.kill(self.pid, SIGNALS[sig] or sig) end
end

--- proc:wait(timeout) -> the exit code once the process has exited, or nil.
function Proc:wait(timeout)
  return h.wait_until(function() return self:exit_code() end, timeout)
end

--- proc:log() -> everything the process wrote to stdout/stderr so far.
function Proc:log() return read_file(self.log_path) or "" end

--- proc:wait_log(pattern, timeout) -> the first capture (or match) of the Lua
-- pattern in the process output once it appears, or nil.
function Proc:wait_log(pattern, timeout)
  return h.wait_until(function() return self:log():match(pattern) end, timeout)
end

-- Stops without judging: SIGTERM (or `sig`), up to h.timeout for the exit,
-- then SIGKILL.
function Proc:_halt(sig)
  if self:alive() then
    self:signal(sig or "TERM")
    if not self:wait(h.timeout) then
      self:signal("KILL")
      self:wait(h.timeout)
    end
  end
  procs[self.pid] = nil
  return self:exit_code(), self:log()
end

--- proc:stop(sig) -> exit code, output text. Sends SIGTERM (or `sig`), waits
-- up to 5 s, then SIGKILL. Raises an error carrying the report when the output
-- holds an AddressSanitizer, LeakSanitizer or UBSan report (once; later calls
-- just return). Safe to call more than once.
function Proc:stop(sig)
  local code, text = self:_halt(sig)
  if not self.judged then
    self.judged = true
    if sanitizer_report(text) then
      error(string.format("%s (pid %d) printed a sanitizer report:\n%s", self.what, self.pid, text), 2)
    end
  end
  return code, text
end

-- Starts argv (a list) in the background; returns a Proc.
local function spawn(what, argv, env)
  local log_path = tmpname()
  local rc_path = log_path .. ".rc"
  tmpfiles[#tmpfiles + 1] = rc_path
  local words = {}
  for k, v in pairs(env or {}) do words[#words + 1] = k .. "=" .. quote(v) end
  for _, a in ipairs(argv) do words[#words + 1] = quote(a) end
  -- The subshell prints the binary's PID, drops the pipe (so popen returns),
  -- then waits to record the exit status; rename makes the status appear
  -- atomically.
  local cmd = string.format(
    "(%s >%s 2>&1 </dev/null & echo $!; exec >/dev/null 2>&1; wait $!; echo $? >%s.tmp; mv %s.tmp %s) &",
    table.concat(words, " "), quote(log_path), quote(rc_path), quote(rc_path), quote(rc_path))
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("*l"))
  p:close()
  if not pid then error("cannot start " .. what) end
  local proc = setmetatable({ what = what, pid = pid, log_path = log_path, rc_path = rc_path,
                              argv = argv }, Proc)
  procs[pid] = proc
  return proc
end

-- Waits until the process listens on `port` (or, without a port, that it is
-- still alive after 0.2 s); on failure stops it and raises with its output.
local function await_start(proc, port)
  local ok
  if port then
    ok = h.wait_until(function() return not proc:alive() or h.is_listening(port) end, h.timeout)
    ok = ok and proc:alive()
  else
    socket.sleep(0.2)
    ok = proc:alive()
  end
  if ok then return end
  local exited = not proc:alive()
  local code, text = proc:_halt("KILL")
  local why
  if exited then
    why = "exited with code " .. tostring(code) .. (port and (" before listening on port " .. port) or "")
  else
    why = "did not listen on port " .. tostring(port) .. " within " .. h.timeout .. " s"
  end
  error(string.format("%s (%s) %s; its output:\n%s", proc.what, table.concat(proc.argv, " "), why, text), 3)
end

local function parse_origin_log(path)
  local s = read_file(path) or ""
  local out = { requests = {}, partials = {}, connections = 0 }
  local pos = 1
  while pos <= #s do
    local e = s:find("\n", pos, true)
    if not e then break end
    local kind, len = s:sub(pos, e - 1):match("^%-%-%- sluice%-origin (%a+) ?(%d*)$")
    if kind == "connection" then
      out.connections = out.connections + 1
      pos = e + 1
    elseif (kind == "request" or kind == "partial") and len ~= "" then
      local n = tonumber(len)
      if e + n + 1 > #s then break end -- record still being written
      table.insert(kind == "request" and out.requests or out.partials, s:sub(e + 1, e + n))
      pos = e + n + 2
    else
      error("origin log " .. path .. ": unexpected line at byte " .. pos .. ": " .. s:sub(pos, e - 1))
    end
  end
  return out
end

--- h.start_origin{name=, log=true, port=, env=} -> origin
-- Starts build/sluice-origin on 127.0.0.1 and waits (up to 5 s) until it
-- listens; raises with its stderr if it does not.
--   origin.port, origin.pid, origin.name
--   origin:stop(sig)          -> exit code, stderr text (see proc:stop)
--   origin:requests(n, t)     -> list of raw requests as received (head and body bytes)
--   origin:partials(n, t)     -> list of raw bytes that never made a complete request
--   origin:connections(n, t)  -> number of connections accepted
-- With `n`, each of these first waits up to `t` (5 s) for at least n entries,
-- since the origin logs asynchronously from the spec's point of view.
-- log=false starts it without --log (then the three above raise).
-- Also: alive(), exit_code(), signal(sig), wait(t), log(), wait_log(pat, t).
function h.start_origin(opts)
  opts = opts or {}
  local port = opts.port or h.free_port()
  local name = opts.name or "origin"
  local argv = { h.origin_bin, "--listen", "127.0.0.1:" .. port, "--name", name }
  local reqlog
  if opts.log ~= false then
    reqlog = tmpname()
    argv[#argv + 1] = "--log"
    argv[#argv + 1] = reqlog
  end
  local o = spawn("sluice-origin " .. name, argv, opts.env)
  o.port, o.name, o.reqlog_path = port, name, reqlog
  await_start(o, port)

  local function view(n, timeout, get)
    if not reqlog then error("origin started with log=false", 3) end
    if n then
      h.wait_until(function() return get(parse_origin_log(reqlog)) >= n end, timeout)
    end
    return parse_origin_log(reqlog)
  end
  function o:requests(n, timeout)
    return view(n, timeout, function(l) return #l.requests end).requests
  end
  function o:partials(n, timeout)
    return view(n, timeout, function(l) return #l.partials end).partials
  end
  function o:connections(n, timeout)
    return view(n, timeout, function(l) return l.connections end).connections
  end
  return o
end

-- The port of the first listen address in a YAML config, best effort.
local function config_port(cfg)
  local i = cfg:find("listen", 1, true)
  if not i then return nil end
  local rest = cfg:sub(i, i + 300)
  return tonumber(rest:match("[%w%.%]%*\"' ]:(%d+)") or rest:match("^listen%s*:%s*(%d+)"))
end

--- h.start_proxy{config = "yaml", args = {...}, port = N, env = {...}} -> proxy
-- Writes `config` (the caller fills in the ports) to a temp file and starts
-- `h.bin -c FILE [args...]`, or `h.bin args...` without config. Waits until
-- `port` listens; without port=, the port of the first "listen" entry of the
-- config is used if one is found, else it only checks the process is alive
-- after 0.2 s. Raises with the process output if it does not come up.
--   proxy.port, proxy.pid, proxy.config_path
--   proxy:stop(sig) -> exit code, stderr text; raises on a sanitizer report
--   proxy:log()     -> stderr so far
--   proxy:signal("HUP"), proxy:alive(), proxy:exit_code(), proxy:wait(t),
--   proxy:wait_log(pattern, t)
function h.start_proxy(opts)
  opts = opts or {}
  local argv = { h.bin }
  local port = opts.port
  local config_path
  if opts.config then
    config_path = h.write_tmp(opts.config)
    argv[#argv + 1] = "-c"
    argv[#argv + 1] = config_path
    port = port or config_port(opts.config)
  end
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  local p = spawn("sluice", argv, opts.env)
  p.port, p.config_path = port, config_path
  await_start(p, port)
  return p
end

--------------------------------------------------------------------------
-- Raw client connections

local Conn = {}
Conn.__index = Conn

local function wrap(sock)
  cloexec(sock)
  sock:settimeout(0)
  sock:setoption("tcp-nodelay", true)
  return setmetatable({ sock = sock, buf = "", pos = 1, eof = false }, Conn)
end

-- Whatever the socket has, waiting up to `deadline`: a string, or nil and
-- "closed" (also after a reset; conn.reset is then true) or "timeout".
function Conn:_recv(deadline)
  if self.eof then return nil, "closed" end
  while true do
    local data, err, partial = self.sock:receive(65536)
    local got = data or partial
    if err and err ~= "timeout" then
      self.eof = true
      self.reset = err ~= "closed"
      if got and #got > 0 then return got end
      return nil, "closed"
    end
    if got and #got > 0 then return got end
    local left = deadline - now()
    if left <= 0 then return nil, "timeout" end
    socket.select({ self.sock }, nil, left)
  end
end

function Conn:_take(n)
  local s = self.buf:sub(self.pos, self.pos + n - 1)
  self.pos = self.pos + #s
  if self.rec then self.rec[#self.rec + 1] = s end
  return s
end

-- One line: text without CR LF, raw line; or nil, err.
function Conn:_line(deadline)
  while true do
    local i = self.buf:find("\n", self.pos, true)
    if i then
      local raw = self:_take(i - self.pos + 1)
      return (raw:gsub("\r?\n$", "")), raw
    end
    local chunk, err = self:_recv(deadline)
    if not chunk then return nil, err end
    self.buf = self.buf:sub(self.pos) .. chunk
    self.pos = 1
  end
end

-- Exactly n bytes; or nil, err, what arrived.
function Conn:_exact(n, deadline)
  local parts, have = {}, 0
  while true do
    local k = math.min(#self.buf - self.pos + 1, n - have)
    if k > 0 then
      parts[#parts + 1] = self:_take(k)
      have = have + k
    end
    if have >= n then return table.concat(parts) end
    local chunk, err = self:_recv(deadline)
    if not chunk then return nil, err, table.concat(parts) end
    self.buf, self.pos = chunk, 1
  end
end

-- Everything until the peer closes; or nil, "timeout", what arrived.
function Conn:_until_close(deadline)
  local parts = { self:_take(#self.buf - self.pos + 1) }
  while true do
    local chunk, err = self:_recv(deadline)
    if not chunk then
      if err == "closed" then return table.concat(parts) end
      return nil, err, table.concat(parts)
    end
    self.buf, self.pos = chunk, 1
    parts[#parts + 1] = self:_take(#chunk)
  end
end

--- conn:send(str) -> true, or nil and an error ("timeout" after 5 s of a
-- full socket, "closed", …).
function Conn:send(data, timeout)
  local deadline = now() + (timeout or h.timeout)
  local i = 1
  while i <= #data do
    local last, err, partial = self.sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = partial + 1
      local left = deadline - now()
      if left <= 0 then return nil, "timeout" end
      socket.select(nil, { self.sock }, left)
    else
      return nil, err
    end
  end
  return true
end

-- Header lines up to the empty line into msg.headers (lowercase name ->
-- value; repeats joined with ", ") and msg.header_list ({name=, value=} in
-- order, also as [1], [2]).
function Conn:_headers(msg, deadline)
  msg.headers, msg.header_list = {}, {}
  while true do
    local line, err = self:_line(deadline)
    if not line then return nil, err end
    if line == "" then return true end
    local name, value = line:match("^([^:]*):[ \t]*(.-)[ \t]*$")
    if not name then name, value = line, "" end
    msg.header_list[#msg.header_list + 1] = { name = name, value = value, name, value }
    local k = name:lower()
    msg.headers[k] = msg.headers[k] and (msg.headers[k] .. ", " .. value) or value
  end
end

local function content_length(msg)
  local n
  for _, hd in ipairs(msg.header_list) do
    if hd.name:lower() == "content-length" then
      local v = tonumber(hd.value:match("^%d+$"))
      if not v or (n and v ~= n) then return nil, "bad content-length" end
      n = v
    end
  end
  return n
end

-- Body framing of RFC 9112 §6: chunked, Content-Length, else (responses)
-- until close. Sets msg.body, msg.raw_body, msg.trailers.
function Conn:_body(msg, deadline, is_response)
  local te = msg.headers["transfer-encoding"]
  if te and te:lower():match("chunked%s*$") then
    local parts, raw_start = {}, self.rec and #self.rec + 1
    msg.trailers = {}
    while true do
      local line, err = self:_line(deadline)
      if not line then msg.body = table.concat(parts); return nil, err end
      local size = tonumber(line:match("^(%x+)"), 16)
      if not size then msg.body = table.concat(parts); return nil, "bad chunk size: " .. line end
      if size == 0 then
        local t = {}
        local ok, terr = self:_headers(t, deadline)
        msg.trailers = t.headers or {}
        msg.body = table.concat(parts)
        if not ok then return nil, terr end
        break
      end
      local data, derr, got = self:_exact(size, deadline)
      parts[#parts + 1] = data or got
      if not data then msg.body = table.concat(parts); return nil, derr end
      local crlf, cerr = self:_line(deadline)
      if crlf ~= "" then msg.body = table.concat(parts); return nil, cerr or "bad chunk end" end
    end
    if raw_start then msg.raw_body = table.concat(self.rec, "", raw_start) end
    return true
  end
  local n, err = content_length(msg)
  if err then return nil, err end
  if n then
    local data, derr, got = self:_exact(n, deadline)
    msg.body = data or got
    msg.raw_body = msg.body
    if not data then return nil, derr end
    return true
  end
  if not is_response then
    msg.body, msg.raw_body = "", ""
    return true
  end
  local data, derr, got = self:_until_close(deadline)
  msg.body = data or got
  msg.raw_body = msg.body
  if not data then return nil, derr end
  return true
end

--- conn:read_response{head = false, timeout = 5} -> resp
-- or nil, err[, partial resp]
-- Reads one HTTP/1.x response. resp = {
--   status (number), reason, version ("1.1"), status_line,
--   headers (lowercase name -> value, repeats joined with ", "),
--   header_list ({name=, value=} as received, in order),
--   body (decoded), raw_body (as on the wire, chunk framing included),
--   trailers (chunked only), head_raw, raw (all bytes of the response) }
-- head=true: the request was HEAD, so no body is read. A 1xx (including
-- 101) is returned on its own; call again for the final response. Bodies end
-- by chunked framing, Content-Length, or the peer closing (then resp.closed).
-- Errors: "closed" (peer closed before or during the response; the partial
-- response, body so far included, comes third), "timeout", "bad status
-- line: ...", "bad content-length", "bad chunk size: ...".
function Conn:read_response(opts)
  opts = opts or {}
  local deadline = now() + (opts.timeout or h.timeout)
  self.rec = {}
  local function fail(err, partial)
    if partial then partial.raw = table.concat(self.rec) end
    self.rec = nil
    return nil, err, partial
  end
  local line, err = self:_line(deadline)
  if not line then return fail(err) end
  local version, status, reason = line:match("^HTTP/(%d%.%d) (%d%d%d) ?(.*)$")
  local resp = { status = tonumber(status), reason = reason, version = version, status_line = line }
  if not status then return fail("bad status line: " .. line, resp) end
  local ok, herr = self:_headers(resp, deadline)
  if not ok then return fail(herr, resp) end
  resp.head_raw = table.concat(self.rec)
  local s = resp.status
  if opts.head or s < 200 or s == 204 or s == 304 then
    resp.body, resp.raw_body = "", ""
  else
    local bok, berr = self:_body(resp, deadline, true)
    if not bok then return fail(berr, resp) end
    resp.closed = self.eof
  end
  resp.raw = table.concat(self.rec)
  self.rec = nil
  return resp
end

--- conn:read_request{timeout = 5} -> req or nil, err[, partial req]
-- For mock origins: reads one request. req = { method, target, version,
-- request_line, headers, header_list, body (decoded), raw_body, trailers,
-- head_raw, raw } (see read_response). A body is read only when the request
-- has Content-Length or chunked Transfer-Encoding.
function Conn:read_request(opts)
  opts = opts or {}
  local deadline = now() + (opts.timeout or h.timeout)
  self.rec = {}
  local function fail(err, partial)
    if partial then partial.raw = table.concat(self.rec) end
    self.rec = nil
    return nil, err, partial
  end
  local line, err = self:_line(deadline)
  if not line then return fail(err) end
  local method, target, version = line:match("^(%S+) (%S+) HTTP/(%d%.%d)$")
  local req = { method = method, target = target, version = version, request_line = line }
  if not method then return fail("bad request line: " .. line, req) end
  local ok, herr = self:_headers(req, deadline)
  if not ok then return fail(herr, req) end
  req.head_raw = table.concat(self.rec)
  local bok, berr = self:_body(req, deadline, false)
  if not bok then return fail(berr, req) end
  req.raw = table.concat(self.rec)
  self.rec = nil
  return req
end

--- conn:read_all(timeout) -> every byte until the peer closes (buffered
-- bytes included); on timeout: nil, "timeout", what arrived.
function Conn:read_all(timeout)
  return self:_until_close(now() + (timeout or h.timeout))
end

--- conn:read_some(timeout) -> whatever bytes are buffered or arrive next;
-- nil, "closed" / "timeout".
function Conn:read_some(timeout)
  if self.pos <= #self.buf then return self:_take(#self.buf - self.pos + 1) end
  local chunk, err = self:_recv(now() + (timeout or h.timeout))
  if not chunk then return nil, err end
  return chunk
end

--- conn:is_closed(timeout) -> true when the peer closes or resets the
-- connection within `timeout`, false otherwise. Bytes arriving meanwhile are
-- kept for later reads.
function Conn:is_closed(timeout)
  local deadline = now() + (timeout or h.timeout)
  while true do
    local chunk, err = self:_recv(deadline)
    if chunk then
      self.buf = self.buf:sub(self.pos) .. chunk
      self.pos = 1
    elseif err == "closed" then
      return true
    else
      return false
    end
  end
end

--- conn:close(): closes the socket (idempotent).
function Conn:close()
  if not self.closed_by_us then
    self.closed_by_us = true
    self.sock:close()
  end
end

--- h.connect(port, host = "127.0.0.1") -> conn, or nil and an error.
-- conn:send, :read_response, :read_request, :read_all, :read_some,
-- :is_closed, :close; conn.sock is the luasocket object.
function h.connect(port, host)
  local sock = socket.tcp()
  sock:settimeout(h.timeout)
  local ok, err = sock:connect(host or "127.0.0.1", port)
  if not ok then
    sock:close()
    return nil, err
  end
  return wrap(sock)
end

--- h.build_request(method, target, headers, body) -> raw request bytes.
-- headers: a list of {name, value} pairs (order kept) or a map (sent sorted
-- by name). "Host: localhost" is added first unless a Host is given, and
-- Content-Length when there is a body and neither Content-Length nor
-- Transfer-Encoding is given.
function h.build_request(method, target, headers, body)
  local list = {}
  if headers and #headers > 0 then
    for _, p in ipairs(headers) do list[#list + 1] = { p[1] or p.name, p[2] or p.value } end
  elseif headers then
    local names = {}
    for k in pairs(headers) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do list[#list + 1] = { k, headers[k] } end
  end
  local has = {}
  for _, p in ipairs(list) do has[p[1]:lower()] = true end
  local lines = { method .. " " .. target .. " HTTP/1.1" }
  if not has.host then lines[#lines + 1] = "Host: localhost" end
  for _, p in ipairs(list) do lines[#lines + 1] = p[1] .. ": " .. tostring(p[2]) end
  if body and not has["content-length"] and not has["transfer-encoding"] then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

--- h.request(port, raw, opts) -> resp, or nil, err[, partial]
-- One shot: connect, send `raw`, read one response (opts as for
-- read_response; head= defaults to whether raw starts with "HEAD "), close.
-- A 1xx is skipped unless opts.interim is true.
function h.request(port, raw, opts)
  opts = opts or {}
  local conn, err = h.connect(port)
  if not conn then return nil, err end
  local ok, serr = conn:send(raw)
  if not ok then conn:close(); return nil, serr end
  local head = opts.head
  if head == nil then head = raw:sub(1, 5) == "HEAD " end
  local resp, rerr, partial
  repeat
    resp, rerr, partial = conn:read_response { head = head, timeout = opts.timeout }
  until not resp or opts.interim or resp.status >= 200 or resp.status == 101
  conn:close()
  return resp, rerr, partial
end

--- h.get(port, path, headers, opts) -> resp, or nil, err
-- "GET path HTTP/1.1" with Host: localhost and `headers` (see
-- build_request), through h.request.
function h.get(port, path, headers, opts)
  return h.request(port, h.build_request("GET", path, headers), opts)
end

--------------------------------------------------------------------------
-- In-spec mock origin

--- h.mock_origin{port = free} -> mock
-- A listening socket in the spec's own process, for crafting exact upstream
-- responses. Single-threaded: send the client request first, then
-- mock:accept(), conn:read_request(), conn:send(response bytes), then read
-- the client's response.
--   mock.port
--   mock:accept(timeout) -> conn (the h.connect API), or nil, "timeout"
--   mock:close()         closes the listener and every accepted conn
function h.mock_origin(opts)
  opts = opts or {}
  local srv = socket.tcp()
  srv:setoption("reuseaddr", true)
  assert(srv:bind("127.0.0.1", opts.port or 0))
  assert(srv:listen(128))
  cloexec(srv)
  local _, port = srv:getsockname()
  local m = { port = tonumber(port), server = srv, conns = {} }
  function m:accept(timeout)
    srv:settimeout(timeout or h.timeout)
    local c, err = srv:accept()
    if not c then return nil, err end
    local conn = wrap(c)
    self.conns[#self.conns + 1] = conn
    return conn
  end
  function m:close()
    if self.closed then return end
    self.closed = true
    for _, c in ipairs(self.conns) do c:close() end
    srv:close()
  end
  closers[#closers + 1] = m
  return m
end

--------------------------------------------------------------------------
-- Commands and cleanup

--- h.run(cmd) -> exit code, combined stdout+stderr. `cmd` is a shell
-- command line (quote arguments yourself, e.g. with h.quote).
function h.run(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"__sluice_rc=$?\""))
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.-)__sluice_rc=(%d+)\n?$")
  return tonumber(rc), body or out
end

--- h.quote(s) -> s quoted for /bin/sh.
h.quote = quote

--- h.cleanup(): stops every process still running (SIGTERM, then SIGKILL),
-- closes mock origins and removes temp files. Runs by itself at the end of
-- each spec file and at exit; a sanitizer report found here is printed and
-- counted as a failure by spec/support/summary.lua.
function h.cleanup()
  local report = package.loaded["sluice.harness_report"]
  for pid, p in pairs(procs) do
    local _, text = p:_halt("TERM")
    if not p.judged and sanitizer_report(text) then
      p.judged = true
      local msg = string.format("%s (pid %d, not stopped by its spec) printed a sanitizer report:\n%s",
        p.what, pid, text)
      io.stderr:write(msg, "\n")
      if report then report.failures[#report.failures + 1] = msg end
    end
  end
  for _, m in ipairs(closers) do m:close() end
  closers = {}
  for _, path in ipairs(tmpfiles) do os.remove(path) end
  tmpfiles = {}
end

do
  local ok, busted = pcall(require, "busted")
  if ok and type(busted) == "table" then
    pcall(busted.subscribe, { "file", "end" }, function()
      h.cleanup()
      return nil, true
    end)
  end
  -- At exit (lua_close runs finalizers) or when this module is dropped.
  local sentinel = newproxy(true)
  getmetatable(sentinel).__gc = function() h.cleanup() end
  h._sentinel = sentinel
end

return h
