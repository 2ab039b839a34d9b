-- lua/sluice/init.lua: the API a plugin gets from `require "sluice"` (and
-- as the global `sluice`): one module per area. The host hands it to the
-- sandbox, which gives plugins read-only views of these tables.

local json = require "sluice.json"
local response = require "sluice.response"

return {
  request = require "sluice.request",
  response = response,
  ctx = require "sluice.ctx",
  log = require "sluice.log",
  time = require "sluice.time",
  json = json,
  shared = require "sluice.shared",
  random = require "sluice.random",
  metrics = require "sluice.metrics",
  balancer = require "sluice.balancer",
  null = json.null,
  --- respond(status, body, headers): the same as sluice.response.exit.
  respond = response.exit,
}
