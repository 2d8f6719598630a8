-- The statements of job control on 100,000 queued jobs of one queue (five
-- priorities, one in ten delayed by an hour): the queue position of
-- acp_get_job, the claim, and the next due time. Run on a test database:
--   psql "host=127.0.0.1 port=55432 user=acp dbname=acp_test" -f bench/queue_position.sql
-- (docs/performance.adoc, "Job control at 100,000 queued jobs").
\timing off
DELETE FROM compute.jobs WHERE queue = 'posbench';
INSERT INTO compute.jobs (job_id, status, queue, input_files, created, last_accessed, priority, not_before, layout)
SELECT decode(md5('posbench' || g), 'hex'), 'queued', 'posbench', '{}', now() - make_interval(secs => 100000 - g), now(),
       (g % 5) * 20 + 10, now() - make_interval(secs => 100000 - g) + CASE WHEN g % 10 = 0 THEN interval '1 hour' ELSE interval '0' END, 'native'
FROM generate_series(1, 100000) g;
ANALYZE compute.jobs;
-- A job far back (priority 10, 20,000 of its priority ahead) and the first of the highest priority.

EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT CASE WHEN j.status = 'queued' THEN least(1000,
  (SELECT count(*) FROM (SELECT 1 FROM compute.jobs q WHERE q.queue = j.queue AND q.status = 'queued' AND q.priority > j.priority LIMIT 1000) higher) +
  (SELECT count(*) FROM (SELECT 1 FROM compute.jobs q WHERE q.queue = j.queue AND q.status = 'queued' AND q.priority = j.priority AND (q.not_before, q.job_id) < (j.not_before, j.job_id) LIMIT 1000) earlier)) ELSE -1 END
FROM compute.jobs j WHERE j.job_id = decode(md5('posbench' || 99995), 'hex');
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT CASE WHEN j.status = 'queued' THEN least(1000,
  (SELECT count(*) FROM (SELECT 1 FROM compute.jobs q WHERE q.queue = j.queue AND q.status = 'queued' AND q.priority > j.priority LIMIT 1000) higher) +
  (SELECT count(*) FROM (SELECT 1 FROM compute.jobs q WHERE q.queue = j.queue AND q.status = 'queued' AND q.priority = j.priority AND (q.not_before, q.job_id) < (j.not_before, j.job_id) LIMIT 1000) earlier)) ELSE -1 END
FROM compute.jobs j WHERE j.job_id = decode(md5('posbench' || 4), 'hex');
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT job_id FROM compute.jobs WHERE queue = 'posbench' AND status = 'queued' AND not_before <= now() ORDER BY priority DESC, not_before, job_id LIMIT 1 FOR UPDATE SKIP LOCKED;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT (extract(epoch FROM not_before) * 1000000)::bigint FROM compute.jobs WHERE status = 'queued' AND dispatched IS NULL AND not_before > now() AND queue = ANY('{posbench}'::varchar[]) ORDER BY not_before LIMIT 1;
DELETE FROM compute.jobs WHERE queue = 'posbench';
