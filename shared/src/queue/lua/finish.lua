-- finish: records the outcome of one or more jobs, each exactly once. A job whose record is
-- already done or failed (another worker finished it after a reclaim) is left untouched.
--
-- KEYS[1]  the results stream (ic:results)
-- KEYS[2]  the dead-letter hash (ic:dead)
-- then three keys per job i = 1..n:
--   KEYS[3i]    the job hash (ic:job:{id})
--   KEYS[3i+1]  its queue stream (ic:jobs:{model})
--   KEYS[3i+2]  its cache hash (ic:cache:{model}:{sha256}:{top_k})
-- ARGV[1]  JSON {group, ttl, events, maxlen, jobs = [{job_id, entry_id, set, entry, cache?, dead?}]}
--          where set, entry, cache and dead are [first, last] ranges of ARGV holding
--          field/value pairs: set for the job hash, entry for the results stream entry,
--          cache for the cache hash (done jobs), dead for the dead-letter hash (job id, record).
--
-- Returns one number per job: 1 recorded, 0 already finished (no-op), -1 record expired.
-- In every case the job's stream entry is acknowledged and deleted.
local doc = cjson.decode(ARGV[1])
local function pairs_in(range)
  return unpack(ARGV, range[1], range[2])
end
local out = {}
for i, job in ipairs(doc.jobs) do
  local hash, queue, cache = KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2]
  redis.call('XACK', queue, doc.group, job.entry_id)
  redis.call('XDEL', queue, job.entry_id)
  local cur = redis.call('HGET', hash, 'status')
  if cur == false then
    out[i] = -1
  elseif cur == 'done' or cur == 'failed' then
    out[i] = 0
  else
    redis.call('HSET', hash, pairs_in(job.set))
    redis.call('EXPIRE', hash, doc.ttl)
    if job.cache then
      redis.call('HSET', cache, pairs_in(job.cache))
      redis.call('EXPIRE', cache, doc.ttl)
    end
    if job.dead then
      redis.call('HSET', KEYS[2], pairs_in(job.dead))
    end
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', doc.maxlen, '*', pairs_in(job.entry))
    redis.call('PUBLISH', doc.events, job.job_id)
    out[i] = 1
  end
end
return out
