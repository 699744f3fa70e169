-- start: a worker takes a job it was delivered.
--
-- KEYS[1]  the job hash (ic:job:{id})
-- KEYS[2]  the job's queue stream (ic:jobs:{model})
-- ARGV[1]  JSON {group, entry_id, set = [first, last]}
-- ARGV[first..last]  job-hash field/value pairs to write (status processing, started_ms, worker)
--
-- Returns the attempt number (1-based), or -1 when the job is already finished or its record
-- expired: the stream entry is then acknowledged and deleted, since nobody can use it.
local doc = cjson.decode(ARGV[1])
local cur = redis.call('HGET', KEYS[1], 'status')
if cur == false or cur == 'done' or cur == 'failed' then
  redis.call('XACK', KEYS[2], doc.group, doc.entry_id)
  redis.call('XDEL', KEYS[2], doc.entry_id)
  return -1
end
redis.call('HSET', KEYS[1], unpack(ARGV, doc.set[1], doc.set[2]))
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
