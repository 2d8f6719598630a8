/* Reading jobs back: acp_get_job, acp_get_results and the streaming reads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "job.h"
#include "platform_state.h"
#include "retention.h"
#include "scratch.h"
#include "workspace.h"

static int check_args(acp_platform *p, const acp_job_id *id, const void *out, const char *what)
{
    if (!p || !id || !out)
        return error_set(ACP_EINVAL, "%s: NULL argument", what);
    return 0;
}

static int not_found(const acp_job_id *id)
{
    char hex[ACP_JOB_ID_STRLEN];
    return error_set(ACP_ENOTFOUND, "job %s: not found", acp_job_id_format(id, hex));
}

/* A job only S3 knows: status and times from its flags. */
static int fill_unowned(acp_platform *p, const acp_job_id *id, acp_job *job)
{
    object_list list;
    int rc = objects_list(p->objects, id, &list);
    if (rc)
        return rc;
    bool found = workspace_status_from_flags(&list, job);
    object_list_free(&list);
    if (!found) {
        memset(job, 0, sizeof *job);
        return not_found(id);
    }
    job->id = *id;
    return 0;
}

int acp_get_job(acp_platform *p, const acp_job_id *id, acp_job *job)
{
    int rc = check_args(p, id, job, "acp_get_job");
    if (rc)
        return rc;
    memset(job, 0, sizeof *job);
    store_job row;
    rc = store_get(p->store, id, &row);
    if (rc == 0 && retention_taken_over(p, id, row.status)) {
        store_job_free(&row);
        rc = ACP_ENOTFOUND;
    }
    /* Native: the root is this database's, so no row means no job. */
    if (rc == ACP_ENOTFOUND)
        return p->layout == ACP_LAYOUT_LCP ? fill_unowned(p, id, job) : not_found(id);
    if (rc)
        return rc;
    /* Reading a job is an access: it postpones its expiration. */
    if (store_touch(p->store, id) != 0)
        log_warn(&p->log, "updating last access: %s", acp_last_error());
    job_from_row(job, &row);
    store_job_free(&row);
    return 0;
}

static int compare_files(const void *a, const void *b)
{
    return strcmp(((const acp_result_file *)a)->name, ((const acp_result_file *)b)->name);
}

static int add_files(acp_result_list *out, char **names, const uint64_t *sizes, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        char *name = strdup(names[i]);
        if (!name)
            return error_set(ACP_ENOMEM, "out of memory");
        out->files[out->count].name = name;
        out->files[out->count].size = sizes ? sizes[i] : 0;
        out->count++;
    }
    return 0;
}

/* A native run's files, from its row: no S3 request. An expired run has
 * none left. */
static int results_from_row(const store_job *row, acp_result_list *out)
{
    bool expired = row->status == ACP_STATUS_EXPIRED;
    size_t count = expired ? 0 : row->input_count + row->output_count;
    out->files = calloc(count ? count : 1, sizeof *out->files);
    if (!out->files)
        return error_set(ACP_ENOMEM, "out of memory");
    int rc = expired ? 0 : add_files(out, row->inputs, row->input_sizes, row->input_count);
    if (!rc && !expired)
        rc = add_files(out, row->outputs, row->output_sizes, row->output_count);
    if (rc) {
        acp_result_list_clear(out);
        return rc;
    }
    qsort(out->files, out->count, sizeof *out->files, compare_files);
    return 0;
}

static int results_from_listing(acp_platform *p, const acp_job_id *id, acp_result_list *out);

int acp_get_results(acp_platform *p, const acp_job_id *id, acp_result_list *out)
{
    int rc = check_args(p, id, out, "acp_get_results");
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    store_job row;
    rc = store_get(p->store, id, &row);
    if (rc == 0 && row.layout != ACP_LAYOUT_LCP) {
        rc = results_from_row(&row, out);
        store_job_free(&row);
        return rc;
    }
    if (rc == 0)
        store_job_free(&row);
    else if (rc != ACP_ENOTFOUND)
        return rc;
    else if (p->layout != ACP_LAYOUT_LCP)
        return not_found(id);
    return results_from_listing(p, id, out);
}

/* An lcp workspace's files: a listing without the reserved names. */
static int results_from_listing(acp_platform *p, const acp_job_id *id, acp_result_list *out)
{
    int rc;
    object_list list;
    if ((rc = objects_list(p->objects, id, &list)))
        return rc;
    bool marker = false;
    out->files = calloc(list.count ? list.count : 1, sizeof *out->files);
    if (!out->files) {
        object_list_free(&list);
        return error_set(ACP_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < list.count; i++) {
        object_entry *e = &list.items[i];
        if (strcmp(e->name, WORKSPACE_MARKER) == 0)
            marker = true;
        if (workspace_is_reserved(e->name))
            continue;
        out->files[out->count].name = e->name; /* ownership moves */
        out->files[out->count].size = e->size;
        e->name = NULL;
        out->count++;
    }
    object_list_free(&list);
    if (!marker) {
        acp_result_list_clear(out);
        char hex[ACP_JOB_ID_STRLEN];
        return error_set(ACP_ENOTFOUND, "job %s: no workspace", acp_job_id_format(id, hex));
    }
    qsort(out->files, out->count, sizeof *out->files, compare_files);
    return 0;
}

/* The library's own sinks, which fail with ACP_E* codes worth passing on. */
static int read_result(acp_platform *p, const acp_job_id *id, const char *name, acp_read_fn sink,
                       void *userdata)
{
    if (!p || !id || !sink)
        return error_set(ACP_EINVAL, "acp_read_result: NULL argument");
    if (!name || !config_name_is_safe(name, 255))
        return error_set(ACP_EINVAL, "file name '%.255s' is not a valid result name",
                         name ? name : "(null)");
    return objects_read(p->objects, id, name, sink, userdata);
}

/* A caller's sink, whose value would otherwise be mistaken for one of our
 * codes (-3 reads as ACP_ENOTFOUND). */
typedef struct user_sink {
    acp_read_fn sink;
    void *userdata;
    int rc;
} user_sink;

static int call_user_sink(void *userdata, const void *data, size_t len)
{
    user_sink *u = userdata;
    u->rc = u->sink(u->userdata, data, len);
    return u->rc ? ACP_EUSER : 0;
}

int acp_read_result(acp_platform *p, const acp_job_id *id, const char *name, acp_read_fn sink,
                    void *userdata)
{
    if (!sink)
        return error_set(ACP_EINVAL, "acp_read_result: NULL argument");
    user_sink u = {sink, userdata, 0};
    int rc = read_result(p, id, name, call_user_sink, &u);
    if (u.rc) {
        char hex[ACP_JOB_ID_STRLEN];
        return error_set(ACP_EUSER, "job %s, file '%s': the read sink returned %d",
                         acp_job_id_format(id, hex), name, u.rc);
    }
    return rc;
}

static int sink_to_fd(void *userdata, const void *data, size_t len)
{
    return scratch_write_all(*(int *)userdata, data, len);
}

int acp_read_result_fd(acp_platform *p, const acp_job_id *id, const char *name, int fd)
{
    if (fd < 0)
        return error_set(ACP_EINVAL, "acp_read_result_fd: bad file descriptor %d", fd);
    return read_result(p, id, name, sink_to_fd, &fd);
}

int acp_read_result_buffer(acp_platform *p, const acp_job_id *id, const char *name, size_t max_size,
                           void **data, size_t *size)
{
    if (!data || !size)
        return error_set(ACP_EINVAL, "acp_read_result_buffer: NULL argument");
    *data = NULL;
    *size = 0;
    buf_bounded b = {BUF_INIT, max_size, "result"};
    int rc = read_result(p, id, name, buf_bounded_append, &b);
    if (!rc && !b.data.data)
        rc = buf_append(&b.data, "", 0); /* an empty file is an empty string */
    if (rc) {
        buf_free(&b.data);
        return rc;
    }
    *data = b.data.data;
    *size = b.data.len;
    return 0;
}
