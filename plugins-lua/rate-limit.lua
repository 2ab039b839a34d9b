-- plugins-lua/rate-limit.lua: a token bucket per client (its address, a
-- header, or the route), kept in a shared dict so that every worker
-- counts against the same bucket. Over the limit the proxy answers 429
-- with a JSON body and Retry-After; every response the plugin saw the
-- request of carries RateLimit-Limit, RateLimit-Remaining and
-- RateLimit-Reset (draft-ietf-httpapi-ratelimit-headers).
--
-- The bucket holds `burst` tokens and gains `rate` tokens per `per`; a
-- request takes one. It is kept as one number per key, the GCRA form of a
-- token bucket: the "theoretical arrival time" (TAT) at which the bucket
-- would be full again, on the monotonic clock. A request at `now` is
-- allowed when TAT' = max(TAT, now) + interval lies at most burst *
-- interval ahead of now, and then TAT' is stored. The read-compute-write
-- goes through the dict's compare-and-set (d:cas), retried when another
-- worker changed the key in between: no request is ever lost or counted
-- twice, whatever the number of workers. The key expires when its bucket
-- is full again, so idle clients cost nothing.
--
-- Priority 910 (Kong's rate-limiting): after authentication, so a key
-- header can name the consumer, before transformations.

local sluice = require "sluice"

local request, response = sluice.request, sluice.response
local get_client_ip, get_header, get_route = request.get_client_ip, request.get_header,
  request.get_route
local set_header, exit = response.set_header, response.exit
local monotonic_ms = sluice.time.monotonic_ms
local log = sluice.log

local type, tostring = type, tostring
local floor, ceil = math.floor, math.ceil
local find = string.find

local PERIOD_MS = { second = 1000, minute = 60000, hour = 3600000 }
local ATTEMPTS = 64            -- cas retries before giving up on one request
local EPSILON = 1e-6           -- ms: sums of intervals carry rounding errors

local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"

local function check_rate(v)
  if v > 0 and v <= 1e9 then return true end
  return nil, "must be more than 0 and at most 1000000000"
end

local function check_header(v)
  if find(v, TOKEN) then return true end
  return nil, "expected a header name"
end

local function check_conf(conf)
  if conf.key == "header" and conf.header_name == nil then
    return nil, "key is 'header': set header_name"
  end
  return true
end

-- What init derives from the configuration.
local dict              -- the shared dict
local interval          -- ms between two tokens
local tolerance         -- burst * interval: how far ahead of now the TAT may run
local limit_text        -- RateLimit-Limit
local prefix            -- of every key this instance uses

local plugin = {
  name = "rate-limit",
  version = "1.0.0",
  priority = 910,
  schema = {
    type = "record",
    custom_validator = check_conf,
    fields = {
      { rate = { type = "number", required = true, custom_validator = check_rate,
                 description = "tokens added per period" } },
      { per = { type = "string", one_of = { "second", "minute", "hour" }, default = "second" } },
      { burst = { type = "integer", between = { 1, 1000000000 },
                  description = "the bucket's size; default: rate, rounded up" } },
      { key = { type = "string", one_of = { "ip", "header", "route" }, default = "ip" } },
      { header_name = { type = "string", custom_validator = check_header } },
      { dict = { type = "string", default = "ratelimit", len_min = 1 } },
      { namespace = { type = "string", default = "",
                      description = "separates instances whose settings are the same" } },
      { message = { type = "string", default = "API rate limit exceeded" } },
      { hide_client_headers = { type = "boolean", default = false } },
      { fault_tolerant = { type = "boolean", default = true,
                           description = "let requests through when the dict fails" } },
    },
  },
}

function plugin.init(conf)
  -- Raises when the configuration declares no such dict: the plugin (and
  -- so the configuration) is refused at load, not at the first request.
  dict = sluice.shared.dict(conf.dict)
  local burst = conf.burst or ceil(conf.rate)
  interval = PERIOD_MS[conf.per] / conf.rate
  tolerance = burst * interval
  limit_text = tostring(burst)
  -- Buckets of instances with other limits never mix.
  prefix = "rate-limit:" .. conf.namespace .. ":" .. tostring(conf.rate) .. "/" .. conf.per
           .. "/" .. burst .. ":"
end

-- The key of the request's bucket.
local function identify(conf)
  local kind = conf.key
  if kind == "header" then
    local v = get_header(conf.header_name)
    if v ~= nil and v ~= "" then return "h:" .. v end
    -- no header: fall back to the client's address, as Kong does
  elseif kind == "route" then
    local path, host = get_route()
    if path == nil then return "r:" end
    return "r:" .. (host or "*") .. path
  end
  return "ip:" .. get_client_ip()
end

-- take(key, now) -> allowed, remaining, reset_ms, retry_ms; or nil, err.
local function take(key, now)
  for _ = 1, ATTEMPTS do
    local stored, err = dict:get(key)
    if err then return nil, err end
    local tat = type(stored) == "number" and stored or now
    if tat < now then tat = now end
    local new_tat = tat + interval
    local ahead = new_tat - now
    if ahead > tolerance + EPSILON then
      return false, 0, tat - now, ahead - tolerance
    end
    local ok, cerr = dict:cas(key, stored, new_tat, ahead / 1000)
    if ok then
      return true, floor((tolerance - ahead) / interval + EPSILON), ahead, 0
    end
    if ok == nil then return nil, cerr end
  end
  return nil, "the bucket changed " .. ATTEMPTS .. " times in a row"
end

local function seconds(ms)
  return tostring(ceil(ms / 1000 - EPSILON / 1000))
end

function plugin.request_headers(conf, ctx)
  local allowed, remaining, reset_ms, retry_ms = take(prefix .. identify(conf), monotonic_ms())
  if allowed == nil then
    if not conf.fault_tolerant then error("rate-limit: dict " .. conf.dict .. ": " .. remaining) end
    log.err("dict ", conf.dict, ": ", remaining, "; letting the request through")
    return
  end
  if not conf.hide_client_headers then
    ctx.remaining = tostring(remaining)
    ctx.reset = seconds(reset_ms)
  end
  if allowed then return end
  local retry = ceil(retry_ms / 1000)
  if retry < 1 then retry = 1 end
  local headers = { ["Retry-After"] = tostring(retry) }
  if ctx.remaining then
    headers["RateLimit-Limit"] = limit_text
    headers["RateLimit-Remaining"] = ctx.remaining
    headers["RateLimit-Reset"] = ctx.reset
  end
  return exit(429, { message = conf.message, retry_after = retry }, headers)
end

-- Every response of a counted request, the 429 included (response phases
-- run on local replies too), carries the counters.
function plugin.response_headers(_, ctx)
  if ctx.remaining then
    set_header("RateLimit-Limit", limit_text)
    set_header("RateLimit-Remaining", ctx.remaining)
    set_header("RateLimit-Reset", ctx.reset)
  end
end

return plugin
