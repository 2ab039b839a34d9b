-- plugins-lua/request-id.lua: gives every request an id, or keeps the one
-- the client sent, and passes it to the origin and back to the client.
--
-- Priority 100000: above every other bundled plugin, so the id is on the
-- request before anything else runs (a plugin that logs or rejects sees it)
-- and on every answer, local replies of other plugins included.
--
-- The id is also stored for the request's other plugins, Lua and native,
-- in the shared per-request space as "request_id" (sluice.ctx.get).

local sluice = require "sluice"

local request, response, shared = sluice.request, sluice.response, sluice.ctx
local get_header, set_header, get_id = request.get_header, request.set_header, request.get_id
local set_response_header = response.set_header
local ctx_set = shared.set

local random, randomseed, floor = math.random, math.randomseed, math.floor
local find, format, sub = string.find, string.format, string.sub
local tonumber = tonumber

-- A field name (RFC 9110 §5.6.2 token).
local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"

-- Incoming ids are kept only when they are visible ASCII (no spaces,
-- no control bytes, nothing a log line or a header could choke on).
local VISIBLE = "^[!-~]+$"

-- math.random is seeded per VM (one VM per plugin per worker) on the first
-- request: the wall clock in ms and the worker number (the top 16 bits of
-- sluice's own request id) keep workers and restarts apart. Good for
-- correlation ids, not for secrets.
local seeded = false

local function seed()
  local worker = tonumber(sub(get_id(), 1, 4), 16) or 0
  local now = floor(sluice.time.now())
  randomseed((now % 2 ^ 40) * 1024 + worker % 1024)
  seeded = true
end

-- A random (version 4) UUID, RFC 9562 §5.4.
local function uuid()
  if not seeded then seed() end
  return format("%08x-%04x-4%03x-%04x-%04x%08x",
                random(0, 0xffffffff), random(0, 0xffff), random(0, 0xfff),
                0x8000 + random(0, 0x3fff), random(0, 0xffff), random(0, 0xffffffff))
end

local plugin = {
  name = "request-id",
  version = "1.0.0",
  priority = 100000,
  schema = {
    type = "record",
    fields = {
      { header = { type = "string", default = "X-Request-Id", match = TOKEN,
                   description = "the header carrying the id, on the request and the response" } },
      { generator = { type = "string", one_of = { "uuid", "sluice" }, default = "uuid",
                      description = "uuid: a random UUID; sluice: the id in sluice's logs" } },
      { trust_incoming = { type = "boolean", default = true,
                           description = "keep a well-formed id the client sent" } },
      { max_length = { type = "integer", between = { 1, 1024 }, default = 200,
                       description = "longer incoming ids are replaced" } },
      { echo_downstream = { type = "boolean", default = true,
                            description = "also set the header on the response" } },
    },
  },
}

function plugin.request_headers(conf, ctx)
  local id
  if conf.trust_incoming then
    id = get_header(conf.header)
    if id and (#id > conf.max_length or not find(id, VISIBLE)) then id = nil end
  end
  if not id then
    if conf.generator == "uuid" then id = uuid() else id = get_id() end
  end
  -- set, not add: one field reaches the origin even if the client sent
  -- several, or a bad one.
  set_header(conf.header, id)
  ctx_set("request_id", id)
  ctx.id = id
end

function plugin.response_headers(conf, ctx)
  if conf.echo_downstream and ctx.id then
    set_response_header(conf.header, ctx.id)
  end
end

return plugin
