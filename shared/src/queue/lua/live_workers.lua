-- live_workers: the heartbeats of the workers still live, and the index pruned of the gone.
-- A worker is live while its heartbeat key exists: the worker gives the key the lifetime
-- `workers::fresh_for(HEARTBEAT_INTERVAL)`, so that lifetime is the one freshness rule.
--
-- KEYS[1]  the index of workers (ic:workers)
-- ARGV[1]  the prefix of a worker's heartbeat key (ic:worker:)
--
-- Returns the heartbeats' JSON. Pruning inside the script is atomic: a worker whose beat lands
-- between the read and the removal can never be dropped from the index.
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local beat = redis.call('GET', ARGV[1] .. id)
  if beat then
    out[#out + 1] = beat
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
