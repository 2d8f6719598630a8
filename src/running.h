/* The running set: the runs this process executes now, from their claim
 * until their end is recorded: the only leases it renews, and where a
 * cancellation or a timeout reaches a run (its flag and descriptor). */
#ifndef ACP_RUNNING_H
#define ACP_RUNNING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "async_platform.h"
#include "store.h"

struct joblog_run;

/* Where a run is; changed under the platform's lock. */
typedef enum running_state {
    RUNNING_EXECUTING, /* the executor runs */
    RUNNING_RECORDING, /* the worker records its end */
    RUNNING_TAKEN,     /* the watchdog records its end, the executor still runs */
    RUNNING_DONE       /* the watchdog recorded it: the worker records nothing */
} running_state;

/* One run, owned by its worker thread (on its stack), linked into the
 * platform's set between running_add and running_remove. */
typedef struct running_job {
    const store_job *row; /* the claim's row; the worker's, valid while linked */
    int cancel_fd;        /* eventfd, readable once asked to stop */
    atomic_int reason;    /* acp_cancel_reason: set once, never cleared */
    int64_t deadline_ms;  /* monotonic: when the attempt times out; 0 never */
    int64_t signalled_ms; /* monotonic: when @reason was set; under the lock */
    running_state state;  /* under the platform's lock */
    acp_platform *platform;
    /* The run's log and progress (joblog.h): NULL until the executor first
     * logs or reports progress; made under the platform's lock. */
    _Atomic(struct joblog_run *) log;
} running_job;

/* Link @run (its row set) into the set, with a new descriptor and the
 * deadline of the row's timeout. ACP_ENOMEM or ACP_EIO (no eventfd): then
 * nothing is linked. */
int running_add(acp_platform *p, running_job *run);
/* Unlink @run and close its descriptor. */
void running_remove(acp_platform *p, running_job *run);
/* The ids of the runs whose leases are renewed (executing or recording):
 * *@ids is malloc'd (free it; NULL when empty). */
int running_copy(acp_platform *p, acp_job_id **ids, size_t *count);

/* Ask the run of @id (if this process has it) to stop for @reason: sets
 * its flag and makes its descriptor readable. A run keeps its first
 * reason. Returns whether this process runs the job. */
bool running_signal(acp_platform *p, const acp_job_id *id, acp_cancel_reason reason);
/* Signal ACP_CANCEL_TIMEOUT to every executing run past its deadline. */
void running_check_deadlines(acp_platform *p);

/* The executing runs asked to stop more than @grace_ms ago become TAKEN,
 * at most @max of them into @out: the watchdog records them, then calls
 * running_release for each. */
size_t running_take_overdue(acp_platform *p, int64_t grace_ms, running_job **out, size_t max);
/* The watchdog is done with @run: DONE when @recorded (the worker then
 * records nothing), else back to EXECUTING (the worker records it when the
 * executor returns, or the watchdog tries again). Wakes the worker. */
void running_release(acp_platform *p, running_job *run, bool recorded);
/* The executor returned: EXECUTING becomes RECORDING and true is returned
 * (the worker records the run). While the watchdog holds the run, waits
 * for it; false when the watchdog recorded it. */
bool running_end(acp_platform *p, running_job *run);
/* Executors still running whose attempt the watchdog recorded. */
size_t running_overdue_count(acp_platform *p);

#endif
