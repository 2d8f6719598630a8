/* The scratch root (issue 11, point 3): acp_init refuses a root that
 * someone else could change, creates a missing one private, and removes
 * scratch trees of any depth. No service is needed: the root is checked
 * before the first connection, and the connections here go to a closed
 * port. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "async_platform.h"
#include "scratch.h"

static int create_nothing(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    (void)userdata;
    (void)ctx;
    (void)out;
    return -1;
}

static const acp_executor_factory factory = {ACP_EXECUTOR_FACTORY_VERSION, NULL, create_nothing,
                                             NULL};
static acp_config config;
static acp_queue_config queue;
static char base[64]; /* a private directory of this run */

static int setup(void **state)
{
    (void)state;
    acp_config_init(&config, ACP_CONFIG_VERSION);
    config.db.host = "127.0.0.1";
    config.db.port = 1;
    config.db.dbname = "jobs";
    config.db.user = "svc";
    config.db.password = "secret";
    config.s3.host = "127.0.0.1";
    config.s3.port = 1;
    config.s3.bucket = "results";
    config.s3.access_key = "AK";
    config.s3.secret_key = "SK";
    acp_queue_config_init(&queue, ACP_QUEUE_CONFIG_VERSION);
    queue.id = "render";
    queue.host = "127.0.0.1";
    queue.port = 1;
    queue.user = "guest";
    queue.password = "guest";
    config.queues = &queue;
    config.queue_count = 1;
    config.executor_factory = &factory;
    config.log_level = ACP_LOG_ERROR;
    snprintf(base, sizeof base, "/tmp/acp-unit-root-XXXXXX");
    assert_non_null(mkdtemp(base));
    return 0;
}

static void remove_all(const char *path)
{
    char command[256];
    snprintf(command, sizeof command, "rm -rf '%s'", path);
    assert_int_equal(system(command), 0);
}

static int teardown(void **state)
{
    (void)state;
    remove_all(base);
    return 0;
}

/* acp_init with @root must fail with @code and a message containing @text. */
static void expect_init(const char *root, int code, const char *text)
{
    config.workspace_root = root;
    acp_platform *p = NULL;
    int rc = acp_init(&p, &config);
    const char *message = acp_last_error();
    if (rc != code || !strstr(message, text))
        fail_msg("acp_init(%s) returned %d (%s), expected %d naming '%s'", root ? root : "NULL", rc,
                 message, code, text);
    assert_null(p);
}

static void path_in(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", base, name);
}

static void unsafe_root_symlink_is_refused(void **state)
{
    (void)state;
    char target[128], link[128];
    path_in(target, sizeof target, "real");
    path_in(link, sizeof link, "link");
    assert_int_equal(mkdir(target, 0700), 0);
    assert_int_equal(symlink(target, link), 0);
    expect_init(link, ACP_EINVAL, "is a symbolic link");
}

static void unsafe_root_writable_by_others_is_refused(void **state)
{
    (void)state;
    char root[128];
    path_in(root, sizeof root, "open");
    assert_int_equal(mkdir(root, 0700), 0);
    assert_int_equal(chmod(root, 0777), 0);
    expect_init(root, ACP_EINVAL, "is writable by group or others (mode 0777)");
    assert_int_equal(chmod(root, 0770), 0);
    expect_init(root, ACP_EINVAL, "is writable by group or others (mode 0770)");
}

static void unsafe_root_of_another_user_is_refused(void **state)
{
    (void)state;
    if (geteuid() != 0)
        return; /* only root can give a directory away; the check is the same */
    char root[128];
    path_in(root, sizeof root, "theirs");
    assert_int_equal(mkdir(root, 0700), 0);
    assert_int_equal(chown(root, 65534, 65534), 0);
    expect_init(root, ACP_EINVAL, "belongs to uid 65534, not to this process's user");
}

static void unsafe_parent_is_refused(void **state)
{
    (void)state;
    char parent[128], root[160];
    path_in(parent, sizeof parent, "shared");
    assert_int_equal(mkdir(parent, 0700), 0);
    assert_int_equal(chmod(parent, 0777), 0); /* not sticky: others may rename in it */
    snprintf(root, sizeof root, "%s/ws", parent);
    expect_init(root, ACP_EINVAL, "above the scratch root, is writable by group or others");
    /* Sticky, as /tmp: others cannot rename what is ours. */
    assert_int_equal(chmod(parent, 01777), 0);
    expect_init(root, ACP_EDB, "");
    if (geteuid() == 0) {
        assert_int_equal(chmod(parent, 0755), 0);
        assert_int_equal(chown(parent, 65534, 65534), 0);
        expect_init(root, ACP_EINVAL, "above the scratch root, belongs to uid 65534");
    }
}

static void missing_root_is_created_private(void **state)
{
    (void)state;
    char root[160];
    path_in(root, sizeof root, "new/deeper/ws");
    /* The database is the next step, and it is closed. */
    expect_init(root, ACP_EDB, "");
    struct stat st;
    assert_int_equal(lstat(root, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(st.st_uid, geteuid());
}

static void default_root_is_private(void **state)
{
    (void)state;
    const char *saved = getenv("XDG_RUNTIME_DIR");
    char *copy = saved ? strdup(saved) : NULL;
    setenv("XDG_RUNTIME_DIR", base, 1);
    expect_init(NULL, ACP_EDB, "");
    char root[160];
    path_in(root, sizeof root, "async-platform");
    struct stat st;
    assert_int_equal(lstat(root, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    if (copy)
        setenv("XDG_RUNTIME_DIR", copy, 1);
    else
        unsetenv("XDG_RUNTIME_DIR");
    free(copy);
}

/* A job may nest directories as deep as it likes; the removal must not
 * give up (it used to stop at 128 levels and leave the tree for ever). */
static void deep_scratch_tree_is_removed(void **state)
{
    (void)state;
    int root = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(root >= 0);
    assert_int_equal(mkdirat(root, "job.1", 0700), 0);
    int fd = openat(root, "job.1", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (int depth = 0; depth < 300; depth++) {
        assert_true(fd >= 0);
        int file = openat(fd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(file >= 0);
        close(file);
        assert_int_equal(mkdirat(fd, "d", 0700), 0);
        int next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        close(fd);
        fd = next;
    }
    close(fd);
    assert_int_equal(scratch_remove_at(root, "job.1", "job.1"), 0);
    /* Nothing left: neither the tree nor what was moved up to remove it. */
    int count = 0;
    int dup_fd = dup(root);
    DIR *dir = fdopendir(dup_fd);
    assert_non_null(dir);
    for (struct dirent *e; (e = readdir(dir));)
        count += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(dir);
    close(root);
    assert_int_equal(count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(unsafe_root_symlink_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unsafe_root_writable_by_others_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unsafe_root_of_another_user_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unsafe_parent_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_root_is_created_private, setup, teardown),
        cmocka_unit_test_setup_teardown(default_root_is_private, setup, teardown),
        cmocka_unit_test_setup_teardown(deep_scratch_tree_is_removed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
