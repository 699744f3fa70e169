-- finish: records the outcome of one or more jobs, each exactly once. A job whose record is
-- already done or failed (another worker finished it after a reclaim) is left untouched.
--
-- KEYS[1]  the results stream (ic:results)
-- KEYS[2]  the dead-letter hash (ic:dead)
-- then five keys per job i = 1..n (base b = 5i - 2):
--   KEYS[b]     the job hash (ic:job:{id})
--   KEYS[b+1]   its queue stream (ic:jobs:{model})
--   KEYS[b+2]   its owner's cache hash (ic:cache:{owner}:{model}:{sha256}:{top_k})
--   KEYS[b+3]   the uploaded bytes (ic:img:{sha256})
--   KEYS[b+4]   how many unfinished jobs use those bytes (ic:imgrefs:{sha256})
-- ARGV[1]  JSON {group, ttl, events, maxlen, quota_prefix,
--                jobs = [{job_id, entry_id, set, entry, cache?, dead?}]}
--          where set, entry, cache and dead are [first, last] ranges of ARGV holding
--          field/value pairs: set for the job hash, entry for the results stream entry,
--          cache for the cache hash (done jobs), dead for the dead-letter hash (job id, record).
--
-- Returns one number per job: 1 recorded, 0 already finished (no-op), -1 record expired.
-- In every case the job's stream entry is acknowledged and deleted.
--
-- A job recorded here also gives back its owner's quota (the hash quota_prefix .. owner,
-- fields jobs and bytes; the key is derived from the job hash's owner, so this script needs a
-- single Redis, not a cluster) and, unless it is dead-lettered (`worker dead-requeue` needs
-- them), its hold on the uploaded bytes, which are deleted when no unfinished job uses them.
local doc = cjson.decode(ARGV[1])
local function pairs_in(range)
  return unpack(ARGV, range[1], range[2])
end
local out = {}
for i, job in ipairs(doc.jobs) do
  local b = 5 * i - 2
  local hash, queue, cache, image, refs = KEYS[b], KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4]
  redis.call('XACK', queue, doc.group, job.entry_id)
  redis.call('XDEL', queue, job.entry_id)
  local cur = redis.call('HGET', hash, 'status')
  if cur == false then
    out[i] = -1
  elseif cur == 'done' or cur == 'failed' then
    out[i] = 0
  else
    local owner = redis.call('HGET', hash, 'owner')
    if owner then
      local quota = doc.quota_prefix .. owner
      local size = redis.call('STRLEN', image)
      if redis.call('HINCRBY', quota, 'jobs', -1) < 0 then redis.call('HSET', quota, 'jobs', 0) end
      if redis.call('HINCRBY', quota, 'bytes', 0 - size) < 0 then redis.call('HSET', quota, 'bytes', 0) end
    end
    if not job.dead and redis.call('DECR', refs) <= 0 then
      redis.call('DEL', image, refs)
    end
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
