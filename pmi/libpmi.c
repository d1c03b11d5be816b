/* libpmi.so: the PMI-1 API over the simple wire protocol (Flux RFC 13).
 *
 * For MPI libraries that load a PMI library instead of speaking the protocol
 * (Open MPI's flux component dlopens $FLUX_PMI_LIBRARY_PATH; Intel MPI reads
 * I_MPI_PMI_LIBRARY). The job shell hands each task one end of a socketpair in
 * PMI_FD with PMI_RANK and PMI_SIZE; every call here is one request line and one
 * reply line on it. Without PMI_FD, PMI_Init makes a singleton (rank 0 of 1) with
 * a process-local KVS, as other PMI libraries do.
 *
 * Values are limited to 1024 bytes (vallen_max): some MPIs break above it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PMI_SUCCESS 0
#define PMI_FAIL -1
#define PMI_ERR_INIT 1
#define PMI_ERR_NOMEM 2
#define PMI_ERR_INVALID_ARG 3
#define PMI_ERR_INVALID_KEY 4
#define PMI_ERR_INVALID_VAL 6
#define PMI_ERR_INVALID_LENGTH 8

#define LINE_MAX_BYTES 2048
#define KVSNAME_MAX 256
#define KEY_MAX 64
#define VAL_MAX 1024

static struct {
    int initialized;
    int fd;          /* -1: singleton */
    int rank, size, universe, appnum;
    char kvsname[KVSNAME_MAX];
    char buf[LINE_MAX_BYTES * 2];
    size_t buflen;
    /* singleton KVS: a few keys are enough for an MPI of one */
    struct { char key[KEY_MAX]; char val[VAL_MAX]; } local[64];
    int nlocal;
} ctx = { .fd = -1 };

static int send_line (const char *line)
{
    size_t len = strlen (line), off = 0;
    while (off < len) {
        ssize_t n = write (ctx.fd, line + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

/* Read one reply line (without its newline) into out. */
static int recv_line (char *out, size_t outlen)
{
    for (;;) {
        char *nl = memchr (ctx.buf, '\n', ctx.buflen);
        if (nl) {
            size_t len = (size_t)(nl - ctx.buf);
            if (len >= outlen)
                return -1;
            memcpy (out, ctx.buf, len);
            out[len] = '\0';
            ctx.buflen -= len + 1;
            memmove (ctx.buf, nl + 1, ctx.buflen);
            return 0;
        }
        if (ctx.buflen == sizeof (ctx.buf))
            return -1;
        ssize_t n = read (ctx.fd, ctx.buf + ctx.buflen, sizeof (ctx.buf) - ctx.buflen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        ctx.buflen += (size_t)n;
    }
}

/* The value of key in a reply line; value= (and msg=) run to the end of the line. */
static int field (const char *line, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen (key);
    const char *p = line;
    while ((p = strstr (p, key))) {
        if ((p == line || p[-1] == ' ') && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t len;
            if (!strcmp (key, "value") || !strcmp (key, "msg"))
                len = strlen (v);
            else
                len = strcspn (v, " ");
            if (len >= outlen)
                return -1;
            memcpy (out, v, len);
            out[len] = '\0';
            return 0;
        }
        p += klen;
    }
    return -1;
}

static int field_int (const char *line, const char *key, int *out)
{
    char v[32];
    if (field (line, key, v, sizeof (v)) < 0)
        return -1;
    *out = atoi (v);
    return 0;
}

/* Send a request, read the reply, check cmd= and rc=. */
static int rpc (const char *request, const char *expect, char *reply, size_t replylen)
{
    char cmd[64];
    int rc;
    if (ctx.fd < 0)
        return PMI_FAIL;
    if (send_line (request) < 0 || recv_line (reply, replylen) < 0)
        return PMI_FAIL;
    if (field (reply, "cmd", cmd, sizeof (cmd)) < 0 || strcmp (cmd, expect) != 0)
        return PMI_FAIL;
    if (field_int (reply, "rc", &rc) < 0)
        return PMI_FAIL;
    return rc == 0 ? PMI_SUCCESS : PMI_FAIL;
}

static int env_int (const char *name, int *out)
{
    const char *s = getenv (name);
    char *end;
    if (!s || !*s)
        return -1;
    long v = strtol (s, &end, 10);
    if (*end)
        return -1;
    *out = (int)v;
    return 0;
}

int PMI_Init (int *spawned)
{
    char reply[LINE_MAX_BYTES];
    if (spawned)
        *spawned = 0;
    if (ctx.initialized)
        return PMI_SUCCESS;
    ctx.universe = 1;
    ctx.size = 1;
    if (env_int ("PMI_FD", &ctx.fd) < 0) {
        ctx.fd = -1;
        ctx.rank = 0;
        snprintf (ctx.kvsname, sizeof (ctx.kvsname), "singleton");
        ctx.initialized = 1;
        return PMI_SUCCESS;
    }
    if (env_int ("PMI_RANK", &ctx.rank) < 0 || env_int ("PMI_SIZE", &ctx.size) < 0)
        return PMI_ERR_INIT;
    if (rpc ("cmd=init pmi_version=1 pmi_subversion=1\n", "response_to_init", reply, sizeof (reply)) != 0)
        return PMI_ERR_INIT;
    if (rpc ("cmd=get_my_kvsname\n", "my_kvsname", reply, sizeof (reply)) != 0
        || field (reply, "kvsname", ctx.kvsname, sizeof (ctx.kvsname)) < 0)
        return PMI_ERR_INIT;
    ctx.universe = ctx.size;
    if (rpc ("cmd=get_universe_size\n", "universe_size", reply, sizeof (reply)) == 0)
        field_int (reply, "size", &ctx.universe);
    if (rpc ("cmd=get_appnum\n", "appnum", reply, sizeof (reply)) == 0)
        field_int (reply, "appnum", &ctx.appnum);
    ctx.initialized = 1;
    return PMI_SUCCESS;
}

int PMI_Initialized (int *initialized)
{
    if (!initialized)
        return PMI_ERR_INVALID_ARG;
    *initialized = ctx.initialized;
    return PMI_SUCCESS;
}

int PMI_Finalize (void)
{
    char reply[LINE_MAX_BYTES];
    int rc = PMI_SUCCESS;
    if (!ctx.initialized)
        return PMI_ERR_INIT;
    if (ctx.fd >= 0) {
        rc = rpc ("cmd=finalize\n", "finalize_ack", reply, sizeof (reply));
        close (ctx.fd);
        ctx.fd = -1;
    }
    ctx.initialized = 0;
    return rc;
}

#define GETTER(fn, member) \
    int fn (int *out) { \
        if (!ctx.initialized) return PMI_ERR_INIT; \
        if (!out) return PMI_ERR_INVALID_ARG; \
        *out = ctx.member; \
        return PMI_SUCCESS; \
    }
GETTER (PMI_Get_size, size)
GETTER (PMI_Get_rank, rank)
GETTER (PMI_Get_universe_size, universe)
GETTER (PMI_Get_appnum, appnum)

int PMI_Barrier (void)
{
    char reply[LINE_MAX_BYTES];
    if (!ctx.initialized)
        return PMI_ERR_INIT;
    if (ctx.fd < 0)
        return PMI_SUCCESS;
    return rpc ("cmd=barrier_in\n", "barrier_out", reply, sizeof (reply));
}

int PMI_Abort (int exit_code, const char *error_msg)
{
    char line[LINE_MAX_BYTES];
    if (ctx.fd >= 0) {
        char msg[VAL_MAX];
        snprintf (msg, sizeof (msg), "%s", error_msg ? error_msg : "");
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
        snprintf (line, sizeof (line), "cmd=abort exitcode=%d error_msg=%s\n", exit_code, msg);
        send_line (line);  /* no reply comes: the job is ending */
    }
    if (error_msg && *error_msg)
        fprintf (stderr, "PMI_Abort: %s\n", error_msg);
    exit (exit_code);
}

int PMI_KVS_Get_my_name (char kvsname[], int length)
{
    if (!ctx.initialized)
        return PMI_ERR_INIT;
    if (!kvsname || length <= (int)strlen (ctx.kvsname))
        return PMI_ERR_INVALID_LENGTH;
    strcpy (kvsname, ctx.kvsname);
    return PMI_SUCCESS;
}

int PMI_KVS_Get_name_length_max (int *length) { if (!length) return PMI_ERR_INVALID_ARG; *length = KVSNAME_MAX; return PMI_SUCCESS; }
int PMI_KVS_Get_key_length_max (int *length) { if (!length) return PMI_ERR_INVALID_ARG; *length = KEY_MAX; return PMI_SUCCESS; }
int PMI_KVS_Get_value_length_max (int *length) { if (!length) return PMI_ERR_INVALID_ARG; *length = VAL_MAX; return PMI_SUCCESS; }
int PMI_Get_id_length_max (int *length) { return PMI_KVS_Get_name_length_max (length); }

int PMI_KVS_Put (const char kvsname[], const char key[], const char value[])
{
    char line[LINE_MAX_BYTES], reply[LINE_MAX_BYTES];
    if (!ctx.initialized)
        return PMI_ERR_INIT;
    if (!key || !value || strlen (key) >= KEY_MAX || strchr (key, ' ') || strchr (key, '='))
        return PMI_ERR_INVALID_KEY;
    if (strlen (value) >= VAL_MAX || strchr (value, '\n'))
        return PMI_ERR_INVALID_VAL;
    if (ctx.fd < 0) {
        for (int i = 0; i < ctx.nlocal; i++)
            if (!strcmp (ctx.local[i].key, key)) {
                strcpy (ctx.local[i].val, value);
                return PMI_SUCCESS;
            }
        if (ctx.nlocal == 64)
            return PMI_ERR_NOMEM;
        strcpy (ctx.local[ctx.nlocal].key, key);
        strcpy (ctx.local[ctx.nlocal++].val, value);
        return PMI_SUCCESS;
    }
    snprintf (line, sizeof (line), "cmd=put kvsname=%s key=%s value=%s\n",
              kvsname ? kvsname : ctx.kvsname, key, value);
    return rpc (line, "put_result", reply, sizeof (reply));
}

int PMI_KVS_Commit (const char kvsname[])
{
    (void)kvsname;  /* puts reach the shell at once; the barrier makes them visible */
    return ctx.initialized ? PMI_SUCCESS : PMI_ERR_INIT;
}

int PMI_KVS_Get (const char kvsname[], const char key[], char value[], int length)
{
    char line[LINE_MAX_BYTES], reply[LINE_MAX_BYTES];
    if (!ctx.initialized)
        return PMI_ERR_INIT;
    if (!key || strlen (key) >= KEY_MAX)
        return PMI_ERR_INVALID_KEY;
    if (!value || length <= 0)
        return PMI_ERR_INVALID_LENGTH;
    if (ctx.fd < 0) {
        for (int i = 0; i < ctx.nlocal; i++)
            if (!strcmp (ctx.local[i].key, key)) {
                if ((int)strlen (ctx.local[i].val) >= length)
                    return PMI_ERR_INVALID_LENGTH;
                strcpy (value, ctx.local[i].val);
                return PMI_SUCCESS;
            }
        return PMI_FAIL;
    }
    snprintf (line, sizeof (line), "cmd=get kvsname=%s key=%s\n", kvsname ? kvsname : ctx.kvsname, key);
    if (rpc (line, "get_result", reply, sizeof (reply)) != 0)
        return PMI_FAIL;
    if (field (reply, "value", value, (size_t)length) < 0)
        return PMI_ERR_INVALID_LENGTH;
    return PMI_SUCCESS;
}

/* The ranks on this node, from PMI_process_mapping "(vector,(node,nnodes,ppn),...)":
 * each block places ppn consecutive ranks on each of nnodes nodes from node on. */
static int clique (int *ranks, int maxranks)
{
    char map[VAL_MAX];
    int n = 0;
    if (ctx.fd < 0 || PMI_KVS_Get (ctx.kvsname, "PMI_process_mapping", map, sizeof (map)) != PMI_SUCCESS) {
        if (ranks && maxranks > 0)
            ranks[0] = ctx.rank;
        return 1;
    }
    /* first pass: the node of every rank; find my node, then list its ranks */
    int nodes[4096], base = 0, total = 0;
    const char *p = map;
    while ((p = strchr (p, '(')) && total < 4096) {
        int node, nnodes, ppn;
        p++;
        if (sscanf (p, "%d,%d,%d", &node, &nnodes, &ppn) != 3)
            continue;
        for (int i = 0; i < nnodes; i++)
            for (int j = 0; j < ppn && total < 4096; j++)
                nodes[total++] = node + i;
        base += nnodes * ppn;
    }
    if (ctx.rank >= total) {
        if (ranks && maxranks > 0)
            ranks[0] = ctx.rank;
        return 1;
    }
    for (int r = 0; r < total; r++)
        if (nodes[r] == nodes[ctx.rank]) {
            if (ranks && n < maxranks)
                ranks[n] = r;
            n++;
        }
    (void)base;
    return n;
}

int PMI_Get_clique_size (int *size)
{
    if (!ctx.initialized)
        return PMI_ERR_INIT;
    if (!size)
        return PMI_ERR_INVALID_ARG;
    *size = clique (NULL, 0);
    return PMI_SUCCESS;
}

int PMI_Get_clique_ranks (int ranks[], int length)
{
    if (!ctx.initialized)
        return PMI_ERR_INIT;
    if (!ranks || clique (NULL, 0) > length)
        return PMI_ERR_INVALID_LENGTH;
    clique (ranks, length);
    return PMI_SUCCESS;
}

int PMI_Publish_name (const char service_name[], const char port[]) { (void)service_name; (void)port; return PMI_FAIL; }
int PMI_Unpublish_name (const char service_name[]) { (void)service_name; return PMI_FAIL; }
int PMI_Lookup_name (const char service_name[], char port[]) { (void)service_name; (void)port; return PMI_FAIL; }
int PMI_Spawn_multiple (int count, const char *cmds[], const char **argvs[], const int maxprocs[],
                        const int info_keyval_sizesp[], const void *info_keyval_vectors[],
                        int preput_keyval_size, const void *preput_keyval_vector, int errors[])
{
    (void)count; (void)cmds; (void)argvs; (void)maxprocs; (void)info_keyval_sizesp;
    (void)info_keyval_vectors; (void)preput_keyval_size; (void)preput_keyval_vector; (void)errors;
    return PMI_FAIL;
}
