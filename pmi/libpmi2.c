/* libpmi2.so: the PMI-2 API over the PMI-2 wire protocol on PMI_FD.
 *
 * What MPICH's "simple" PMI-2 client speaks and Slurm's --mpi=pmi2 (and our job
 * shell) serve: a PMI-1 style line "cmd=init pmi_version=2 pmi_subversion=0"
 * answered by "cmd=response_to_init ... rc=0", then messages framed by a
 * 6-byte space-padded decimal length, each a run of "key=value;" pairs with ';'
 * in a value doubled (see src/flux_launch/proto/pmi2.py). Every call here is one
 * request and one response. Without PMI_FD, PMI2_Init makes a singleton (rank 0
 * of 1) with a process-local KVS, as other PMI libraries do.
 *
 * Single-threaded: calls from several threads must be serialized by the caller.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pmi2.h"

#define HEADER_LEN 6
#define BODY_MAX (4 * PMI2_MAX_VALLEN + 1024)  /* a value whose every byte is an escaped ';' fits */
#define JOBID_MAX 256
#define LOCAL_MAX 64

static struct {
    int initialized;
    int fd;          /* -1: singleton */
    int rank, size, appnum;
    char jobid[JOBID_MAX];
    char body[BODY_MAX + 1];
    /* singleton KVS and node attributes: a few keys are enough for one process */
    struct { char key[PMI2_MAX_KEYLEN + 8]; char val[PMI2_MAX_VALLEN + 1]; } local[LOCAL_MAX];
    int nlocal;
} ctx = { .fd = -1 };

static int write_all (const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write (ctx.fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

static int read_all (char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = read (ctx.fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* Send "cmd=CMD;" then the NULL-terminated (key, value) string pairs. */
static int send_msg (const char *cmd, ...)
{
    char msg[HEADER_LEN + BODY_MAX + 1];
    char *body = msg + HEADER_LEN;
    size_t len = 0;
    va_list ap;
    const char *key;
    int n = snprintf (body, BODY_MAX, "cmd=%s;", cmd);
    if (n < 0 || n >= BODY_MAX)
        return -1;
    len = (size_t)n;
    va_start (ap, cmd);
    while ((key = va_arg (ap, const char *))) {
        const char *val = va_arg (ap, const char *);
        size_t klen = strlen (key);
        if (len + klen + 2 > BODY_MAX)
            goto toolong;
        memcpy (body + len, key, klen);
        len += klen;
        body[len++] = '=';
        for (; *val; val++) {
            if (len + 3 > BODY_MAX)
                goto toolong;
            if (*val == ';')
                body[len++] = ';';
            body[len++] = *val;
        }
        body[len++] = ';';
    }
    va_end (ap);
    char head[HEADER_LEN + 1];
    snprintf (head, sizeof (head), "%-6d", (int)len);
    memcpy (msg, head, HEADER_LEN);
    return write_all (msg, HEADER_LEN + len);
toolong:
    va_end (ap);
    return -1;
}

/* Read one message body into ctx.body (NUL-terminated). */
static int recv_msg (void)
{
    char head[HEADER_LEN + 1] = { 0 };
    if (read_all (head, HEADER_LEN) < 0)
        return -1;
    for (int i = 0; i < HEADER_LEN; i++)
        if (head[i] != ' ' && (head[i] < '0' || head[i] > '9'))
            return -1;
    int len = atoi (head);
    if (len <= 0 || len > BODY_MAX)
        return -1;
    if (read_all (ctx.body, (size_t)len) < 0)
        return -1;
    ctx.body[len] = '\0';
    return 0;
}

/* The unescaped value of key in ctx.body into out: its length, -1 if absent,
 * -2 if it does not fit in outlen (with its NUL). */
static int field (const char *key, char *out, size_t outlen)
{
    const char *p = ctx.body;
    size_t klen = strlen (key);
    while (*p) {
        const char *eq = strchr (p, '=');
        if (!eq)
            return -1;
        int match = (size_t)(eq - p) == klen && !strncmp (p, key, klen);
        size_t n = 0;
        const char *v = eq + 1;
        for (;;) {
            if (!*v)
                return -1;  /* value not ended by ';' */
            if (*v == ';') {
                if (v[1] != ';')
                    break;
                v++;
            }
            if (match) {
                if (n + 1 >= outlen)
                    return -2;
                out[n] = *v;
            }
            n++;
            v++;
        }
        if (match) {
            out[n] = '\0';
            return (int)n;
        }
        p = v + 1;
    }
    return -1;
}

static int field_int (const char *key, int *out)
{
    char v[32];
    char *end;
    if (field (key, v, sizeof (v)) <= 0)
        return -1;
    long n = strtol (v, &end, 10);
    if (*end)
        return -1;
    *out = (int)n;
    return 0;
}

static int field_true (const char *key)
{
    char v[8];
    return field (key, v, sizeof (v)) > 0 && !strcmp (v, "TRUE");
}

/* Read the response to a request just sent: check its cmd, return its rc. */
static int response (const char *expect)
{
    char cmd[64];
    int rc;
    if (recv_msg () < 0 || field ("cmd", cmd, sizeof (cmd)) < 0)
        return PMI2_FAIL;
    if (strncmp (cmd, expect, sizeof (cmd)) != 0 || field_int ("rc", &rc) < 0)
        return PMI2_FAIL;
    return rc;
}

#define RPC(expect, ...) (send_msg (__VA_ARGS__, NULL) < 0 ? PMI2_FAIL : response (expect))

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

static int init_line (void)
{
    static const char req[] = "cmd=init pmi_version=2 pmi_subversion=0\n";
    char line[1024];
    size_t len = 0;
    if (write_all (req, sizeof (req) - 1) < 0)
        return -1;
    for (;;) {  /* byte by byte: what follows the line is the server's first frame */
        if (len + 1 >= sizeof (line) || read_all (line + len, 1) < 0)
            return -1;
        if (line[len] == '\n')
            break;
        len++;
    }
    line[len] = '\0';
    if (strncmp (line, "cmd=response_to_init", 20) != 0 || !strstr (line, " rc=0")
        || !strstr (line, "pmi_version=2"))
        return -1;
    return 0;
}

int PMI2_Init (int *spawned, int *size, int *rank, int *appnum)
{
    char rankstr[32];
    const char *jobid;
    int rc;
    if (!ctx.initialized) {
        ctx.size = 1;
        ctx.rank = 0;
        ctx.appnum = 0;
        if (env_int ("PMI_FD", &ctx.fd) < 0) {
            ctx.fd = -1;
            snprintf (ctx.jobid, sizeof (ctx.jobid), "singleton");
        } else {
            if (env_int ("PMI_RANK", &ctx.rank) < 0 && env_int ("PMI_ID", &ctx.rank) < 0)
                return PMI2_ERR_INIT;
            snprintf (rankstr, sizeof (rankstr), "%d", ctx.rank);
            if (init_line () < 0)
                return PMI2_ERR_INIT;
            jobid = getenv ("PMI_JOBID");
            if (jobid && *jobid)
                rc = RPC ("fullinit-response", "fullinit", "pmirank", rankstr, "pmijobid", jobid,
                          "threaded", "FALSE");
            else
                rc = RPC ("fullinit-response", "fullinit", "pmirank", rankstr, "threaded", "FALSE");
            if (rc != PMI2_SUCCESS || field_int ("rank", &ctx.rank) < 0
                || field_int ("size", &ctx.size) < 0)
                return PMI2_ERR_INIT;
            if (field_int ("appnum", &ctx.appnum) < 0 || ctx.appnum < 0)
                ctx.appnum = 0;
        }
        ctx.initialized = 1;
    }
    if (spawned)
        *spawned = 0;
    if (size)
        *size = ctx.size;
    if (rank)
        *rank = ctx.rank;
    if (appnum)
        *appnum = ctx.appnum;
    return PMI2_SUCCESS;
}

int PMI2_Initialized (void)
{
    return ctx.initialized;
}

int PMI2_Set_threaded (int is_threaded)
{
    return is_threaded ? PMI2_FAIL : PMI2_SUCCESS;
}

int PMI2_Finalize (void)
{
    int rc = PMI2_SUCCESS;
    if (!ctx.initialized)
        return PMI2_ERR_INIT;
    if (ctx.fd >= 0) {
        rc = RPC ("finalize-response", "finalize");
        shutdown (ctx.fd, SHUT_RDWR);
        close (ctx.fd);
        ctx.fd = -1;
    }
    ctx.initialized = 0;
    return rc;
}

int PMI2_Abort (int flag, const char msg[])
{
    char text[PMI2_MAX_VALLEN];
    snprintf (text, sizeof (text), "%s", msg ? msg : "");
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (ctx.fd >= 0)
        send_msg ("abort", "isworld", flag ? "TRUE" : "FALSE", "msg", text, NULL);  /* no reply */
    if (*text)
        fprintf (stderr, "PMI2_Abort: %s\n", text);
    exit (1);
}

int PMI2_Job_GetId (char jobid[], int jobid_size)
{
    if (!ctx.initialized)
        return PMI2_ERR_INIT;
    if (!jobid || jobid_size <= 0)
        return PMI2_ERR_INVALID_ARG;
    if (!ctx.jobid[0]) {
        int rc = RPC ("job-getid-response", "job-getid");
        if (rc != PMI2_SUCCESS)
            return rc;
        if (field ("jobid", ctx.jobid, sizeof (ctx.jobid)) <= 0)
            return PMI2_FAIL;
    }
    if ((int)strlen (ctx.jobid) >= jobid_size)
        return PMI2_ERR_INVALID_LENGTH;
    strcpy (jobid, ctx.jobid);
    return PMI2_SUCCESS;
}

int PMI2_Job_GetRank (int *rank)
{
    if (!ctx.initialized)
        return PMI2_ERR_INIT;
    if (!rank)
        return PMI2_ERR_INVALID_ARG;
    *rank = ctx.rank;
    return PMI2_SUCCESS;
}

int PMI2_Info_GetSize (int *size)
{
    if (!ctx.initialized)
        return PMI2_ERR_INIT;
    if (!size)
        return PMI2_ERR_INVALID_ARG;
    *size = ctx.size;
    return PMI2_SUCCESS;
}

/* Singleton store: KVS keys and node attributes ("node:" prefix) in one table. */
static int local_put (const char *key, const char *value)
{
    for (int i = 0; i < ctx.nlocal; i++)
        if (!strcmp (ctx.local[i].key, key)) {
            strcpy (ctx.local[i].val, value);
            return PMI2_SUCCESS;
        }
    if (ctx.nlocal == LOCAL_MAX)
        return PMI2_ERR_NOMEM;
    snprintf (ctx.local[ctx.nlocal].key, sizeof (ctx.local[0].key), "%s", key);
    strcpy (ctx.local[ctx.nlocal++].val, value);
    return PMI2_SUCCESS;
}

static const char *local_get (const char *key)
{
    for (int i = 0; i < ctx.nlocal; i++)
        if (!strcmp (ctx.local[i].key, key))
            return ctx.local[i].val;
    return NULL;
}

static int check_kv (const char *key, const char *value)
{
    if (!key || !*key || strchr (key, '=') || strchr (key, ';') || strchr (key, ' '))
        return PMI2_ERR_INVALID_KEY;
    if (strlen (key) > PMI2_MAX_KEYLEN)
        return PMI2_ERR_INVALID_KEY_LENGTH;
    if (!value || strchr (value, '\n'))
        return PMI2_ERR_INVALID_VAL;
    if (strlen (value) > PMI2_MAX_VALLEN)
        return PMI2_ERR_INVALID_VAL_LENGTH;
    return PMI2_SUCCESS;
}

int PMI2_KVS_Put (const char key[], const char value[])
{
    int rc;
    if (!ctx.initialized)
        return PMI2_ERR_INIT;
    if ((rc = check_kv (key, value)) != PMI2_SUCCESS)
        return rc;
    if (ctx.fd < 0)
        return local_put (key, value);
    return RPC ("kvs-put-response", "kvs-put", "key", key, "value", value);
}

int PMI2_KVS_Fence (void)
{
    if (!ctx.initialized)
        return PMI2_ERR_INIT;
    if (ctx.fd < 0)
        return PMI2_SUCCESS;
    return RPC ("kvs-fence-response", "kvs-fence");
}

/* Copy a found value: its length, or minus the needed length when it does not fit. */
static int copy_value (const char *value, char out[], int maxvalue, int *vallen)
{
    int len = (int)strlen (value);
    if (vallen)
        *vallen = len < maxvalue ? len : -len;
    if (len >= maxvalue) {
        memcpy (out, value, (size_t)maxvalue - 1);
        out[maxvalue - 1] = '\0';
        return PMI2_ERR_INVALID_VAL_LENGTH;
    }
    strcpy (out, value);
    return PMI2_SUCCESS;
}

/* The value of a found=TRUE response into out (PMI2_FAIL when found=FALSE). */
static int found_value (char out[], int maxvalue, int *vallen)
{
    static char value[PMI2_MAX_VALLEN + 1];
    if (!field_true ("found"))
        return PMI2_FAIL;
    if (field ("value", value, sizeof (value)) < 0)
        return PMI2_FAIL;
    return copy_value (value, out, maxvalue, vallen);
}

int PMI2_KVS_Get (const char *jobid, int src_pmi_id, const char key[], char value[],
                  int maxvalue, int *vallen)
{
    char id[JOBID_MAX], src[32];
    int rc;
    if (!ctx.initialized)
        return PMI2_ERR_INIT;
    if (!key || !value || maxvalue <= 0)
        return PMI2_ERR_INVALID_ARG;
    if (ctx.fd < 0) {
        const char *v = local_get (key);
        return v ? copy_value (v, value, maxvalue, vallen) : PMI2_FAIL;
    }
    if (!jobid) {
        if ((rc = PMI2_Job_GetId (id, sizeof (id))) != PMI2_SUCCESS)
            return rc;
        jobid = id;
    }
    snprintf (src, sizeof (src), "%d", src_pmi_id);
    rc = RPC ("kvs-get-response", "kvs-get", "jobid", jobid, "srcid", src, "key", key);
    return rc != PMI2_SUCCESS ? rc : found_value (value, maxvalue, vallen);
}

int PMI2_Info_PutNodeAttr (const char name[], const char value[])
{
    char key[PMI2_MAX_KEYLEN + 8];
    int rc;
    if (!ctx.initialized)
        return PMI2_ERR_INIT;
    if ((rc = check_kv (name, value)) != PMI2_SUCCESS)
        return rc;
    if (ctx.fd < 0) {
        snprintf (key, sizeof (key), "node:%s", name);
        return local_put (key, value);
    }
    return RPC ("info-putnodeattr-response", "info-putnodeattr", "key", name, "value", value);
}

int PMI2_Info_GetNodeAttr (const char name[], char value[], int valuelen, int *found, int waitfor)
{
    char key[PMI2_MAX_KEYLEN + 8];
    int rc;
    if (!ctx.initialized)
        return PMI2_ERR_INIT;
    if (!name || !value || valuelen <= 0 || !found)
        return PMI2_ERR_INVALID_ARG;
    *found = 0;
    if (ctx.fd < 0) {
        snprintf (key, sizeof (key), "node:%s", name);
        const char *v = local_get (key);
        if (!v)
            return waitfor ? PMI2_FAIL : PMI2_SUCCESS;  /* nobody else could ever put it */
        *found = 1;
        return copy_value (v, value, valuelen, NULL);
    }
    rc = RPC ("info-getnodeattr-response", "info-getnodeattr", "key", name, "wait",
              waitfor ? "TRUE" : "FALSE");
    if (rc != PMI2_SUCCESS || !field_true ("found"))
        return rc;
    *found = 1;
    return found_value (value, valuelen, NULL);
}

int PMI2_Info_GetJobAttr (const char name[], char value[], int valuelen, int *found)
{
    int rc;
    if (!ctx.initialized)
        return PMI2_ERR_INIT;
    if (!name || !value || valuelen <= 0 || !found)
        return PMI2_ERR_INVALID_ARG;
    *found = 0;
    if (ctx.fd < 0) {
        const char *v = !strcmp (name, "universeSize") ? "1"
                      : !strcmp (name, "PMI_process_mapping") ? "(vector,(0,1,1))" : NULL;
        if (!v)
            return PMI2_SUCCESS;
        *found = 1;
        return copy_value (v, value, valuelen, NULL);
    }
    rc = RPC ("info-getjobattr-response", "info-getjobattr", "key", name);
    if (rc != PMI2_SUCCESS || !field_true ("found"))
        return rc;
    *found = 1;
    return found_value (value, valuelen, NULL);
}

/* "1,2,3" into array: the number of integers read. */
static int int_array (const char *text, int array[], int arraylen)
{
    int n = 0;
    while (*text && n < arraylen) {
        char *end;
        long v = strtol (text, &end, 10);
        if (end == text)
            break;
        array[n++] = (int)v;
        text = *end == ',' ? end + 1 : end;
    }
    return n;
}

int PMI2_Info_GetJobAttrIntArray (const char name[], int array[], int arraylen, int *outlen,
                                  int *found)
{
    char value[PMI2_MAX_VALLEN + 1];
    int rc = PMI2_Info_GetJobAttr (name, value, sizeof (value), found);
    if (rc == PMI2_SUCCESS && *found && outlen)
        *outlen = int_array (value, array, arraylen);
    return rc;
}

int PMI2_Info_GetNodeAttrIntArray (const char name[], int array[], int arraylen, int *outlen,
                                   int *found)
{
    char value[PMI2_MAX_VALLEN + 1];
    int rc = PMI2_Info_GetNodeAttr (name, value, sizeof (value), found, 0);
    if (rc == PMI2_SUCCESS && *found && outlen)
        *outlen = int_array (value, array, arraylen);
    return rc;
}

/* Not served by the job shell (nor by Slurm for most of them): fail cleanly. */
int PMI2_Job_Spawn (int count, const char *cmds[], int argcs[], const char **argvs[],
                    const int maxprocs[], const int info_keyval_sizes[],
                    const PMI2_keyval_t *info_keyval_vectors[], int preput_keyval_size,
                    const PMI2_keyval_t preput_keyval_vector[], char jobId[], int jobIdSize,
                    int errors[])
{
    (void)count; (void)cmds; (void)argcs; (void)argvs; (void)maxprocs; (void)info_keyval_sizes;
    (void)info_keyval_vectors; (void)preput_keyval_size; (void)preput_keyval_vector;
    (void)jobId; (void)jobIdSize; (void)errors;
    return PMI2_FAIL;
}
int PMI2_Job_Connect (const char jobid[], PMI2_Connect_comm_t *conn) { (void)jobid; (void)conn; return PMI2_FAIL; }
int PMI2_Job_Disconnect (const char jobid[]) { (void)jobid; return PMI2_FAIL; }
int PMI2_Nameserv_publish (const char service_name[], const PMI2_keyval_t *info_ptr, const char port[])
{
    (void)service_name; (void)info_ptr; (void)port;
    return PMI2_FAIL;
}
int PMI2_Nameserv_lookup (const char service_name[], const PMI2_keyval_t *info_ptr, char port[], int portLen)
{
    (void)service_name; (void)info_ptr; (void)port; (void)portLen;
    return PMI2_FAIL;
}
int PMI2_Nameserv_unpublish (const char service_name[], const PMI2_keyval_t *info_ptr)
{
    (void)service_name; (void)info_ptr;
    return PMI2_FAIL;
}
