-- requeue: hands a job back to the end of its queue (shutdown, panic, timeout). It keeps its
-- attempt count, so a job that keeps failing is dead-lettered in the end.
--
-- KEYS[1]  the job hash (ic:job:{id})
-- KEYS[2]  the job's queue stream (ic:jobs:{model})
-- ARGV[1]  JSON {group, entry_id, set = [first, last], entry = [first, last]}
--          set: job-hash field/value pairs (status queued, last_error);
--          entry: the new queue entry's field/value pairs
--
-- Returns 1 when requeued, 0 when the job had already finished or expired. The old stream
-- entry is acknowledged and deleted either way.
local doc = cjson.decode(ARGV[1])
redis.call('XACK', KEYS[2], doc.group, doc.entry_id)
redis.call('XDEL', KEYS[2], doc.entry_id)
local cur = redis.call('HGET', KEYS[1], 'status')
if cur == false or cur == 'done' or cur == 'failed' then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, doc.set[1], doc.set[2]))
redis.call('XADD', KEYS[2], '*', unpack(ARGV, doc.entry[1], doc.entry[2]))
return 1
