#include "health.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slog.h"

#include "amqp_probe.h"

#define HEALTH_AMQP_TIMEOUT_MS 2000

/* The name, the state and the address; health_handle() drops the address
 * for a request without a valid token. The backends' error texts go to the
 * log only. */
static json_object *health_entry(const char *name, const char *host, long port, const char *state,
                                 const char *error)
{
    if (error)
        slog(ACP_LOG_WARN, "health: %s at %s:%ld is %s: %s", name, host, port, state, error);
    json_object *entry = json_object_new_object();
    json_object_object_add(entry, "name", json_object_new_string(name));
    json_object_object_add(entry, "state", json_object_new_string(state));
    char address[300];
    int v6 = strchr(host, ':') != NULL;
    snprintf(address, sizeof address, "%s%s%s:%ld", v6 ? "[" : "", host, v6 ? "]" : "", port);
    json_object_object_add(entry, "address", json_object_new_string(address));
    return entry;
}

/* What only a valid token sees: the version and the services' addresses
 * (docs/http-api.adoc, "Access control"). */
static void health_scope(json_object *doc, int authorised)
{
    if (authorised) {
        unsigned v = acp_version();
        char version[32];
        snprintf(version, sizeof version, "%u.%u.%u", v >> 16, (v >> 8) & 0xff, v & 0xff);
        json_object_object_add(doc, "version", json_object_new_string(version));
        return;
    }
    json_object *services = json_object_object_get(doc, "services");
    for (size_t i = 0; i < json_object_array_length(services); i++)
        json_object_object_del(json_object_array_get_idx(services, i), "address");
}

/* PostgreSQL: the cheapest statement the public API has. */
static int health_postgres(server *srv, json_object *services)
{
    const settings *cfg = srv->cfg;
    acp_job_filter filter;
    acp_job_filter_init(&filter, ACP_JOB_FILTER_VERSION);
    filter.limit = 1;
    acp_job_list list;
    memset(&list, 0, sizeof list);
    int rc = acp_list_jobs(srv->platform, &filter, &list);
    acp_job_list_clear(&list);
    long port = cfg->db_port != SETTINGS_UNSET ? cfg->db_port : 5432;
    json_object_array_add(services,
                          health_entry("postgres", cfg->db_host, port, rc == 0 ? "up" : "down",
                                       rc == 0 ? NULL : acp_last_error()));
    return rc == 0;
}

/* S3: listing a job id nobody has is one LIST request; "not found" means S3
 * answered. */
static int health_s3(server *srv, json_object *services)
{
    const settings *cfg = srv->cfg;
    acp_job_id id;
    acp_job_id_generate(&id);
    acp_result_list list;
    memset(&list, 0, sizeof list);
    int rc = acp_get_results(srv->platform, &id, &list);
    acp_result_list_clear(&list);
    int up = rc == 0 || rc == ACP_ENOTFOUND;
    long port = cfg->s3_port != SETTINGS_UNSET ? cfg->s3_port : 80;
    json_object_array_add(services, health_entry("s3", cfg->s3_host, port, up ? "up" : "down",
                                                 up ? NULL : acp_last_error()));
    return up;
}

static long health_amqp_port(const settings *cfg, const settings_queue *q)
{
    if (q->port != SETTINGS_UNSET)
        return q->port;
    return cfg->amqp_port != SETTINGS_UNSET ? cfg->amqp_port : 5672;
}

/* RabbitMQ: each distinct broker of the configured queues. */
static int health_rabbitmq(server *srv, json_object *services)
{
    const settings *cfg = srv->cfg;
    int all_up = 1;
    for (size_t i = 0; i < cfg->queue_count; i++) {
        const settings_queue *q = &cfg->queues[i];
        const char *host = q->host ? q->host : cfg->amqp_host;
        long port = health_amqp_port(cfg, q);
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            const settings_queue *p = &cfg->queues[j];
            seen = strcmp(p->host ? p->host : cfg->amqp_host, host) == 0 &&
                   health_amqp_port(cfg, p) == port;
        }
        if (seen)
            continue;
        char err[512];
        int up = amqp_probe(host, (int)port, HEALTH_AMQP_TIMEOUT_MS, err, sizeof err) == 0;
        json_object_array_add(
            services, health_entry("rabbitmq", host, port, up ? "up" : "down", up ? NULL : err));
        all_up &= up;
    }
    return all_up;
}

static double health_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The last probe's answer. Probing costs a query, a LIST and a connection
 * per broker, so answers are reused for health_cache_seconds, and callers
 * that arrive while a probe runs wait for it instead of starting their own. */
static pthread_mutex_t health_lock = PTHREAD_MUTEX_INITIALIZER;
static char *health_text;
static int health_up;
static double health_when;

static void health_probe(server *srv)
{
    json_object *services = json_object_new_array();
    int up = health_postgres(srv, services);
    up &= health_s3(srv, services);
    up &= health_rabbitmq(srv, services);
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "status", json_object_new_string(up ? "ok" : "unavailable"));
    json_object_object_add(doc, "services", services);
    char *text = strdup(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN));
    json_object_put(doc);
    if (!text)
        return;
    free(health_text);
    health_text = text;
    health_up = up;
    health_when = health_now();
}

enum MHD_Result health_handle(server *srv, struct MHD_Connection *conn, http_request *req)
{
    pthread_mutex_lock(&health_lock);
    double now = health_now();
    int cached = health_text && now - health_when < srv->cfg->health_cache_seconds;
    if (!cached)
        health_probe(srv);
    json_object *doc = health_text ? json_tokener_parse(health_text) : NULL;
    int up = health_up;
    double age = health_text ? health_now() - health_when : 0;
    pthread_mutex_unlock(&health_lock);
    if (!doc)
        return http_reply_error(conn, req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL,
                                "cannot build the health report");
    health_scope(doc, req->token != NULL);
    json_object_object_add(doc, "cached", json_object_new_boolean(cached));
    json_object_object_add(doc, "age_seconds", json_object_new_double(cached ? age : 0));
    return http_reply_json(conn, req, up ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, doc);
}

void health_release(void)
{
    pthread_mutex_lock(&health_lock);
    free(health_text);
    health_text = NULL;
    pthread_mutex_unlock(&health_lock);
}
