/* MPIR process acquisition interface (the MPI Forum's "MPIR Process Acquisition
 * Interface" document) for flux job attach --debug.
 *
 * A parallel debugger (gdb, TotalView, DDT...) that runs or attaches to the
 * starter reads these globals by name from the process's symbol table, so they
 * are real exported data symbols, not cffi accessors; they keep the names and
 * types the interface fixes. The debugger sets a breakpoint on MPIR_Breakpoint():
 * the starter calls it once MPIR_proctable holds every task (host, executable,
 * pid, indexed by global task rank) and MPIR_debug_state is MPIR_DEBUG_SPAWNED.
 * MPIR_Breakpoint is never inlined, and its body has a compiler barrier so
 * that the call is not dropped either.
 *
 * Built with -g (see build_mpir.py): a debugger needs the MPIR_PROCDESC type
 * to print MPIR_proctable[i].pid.
 */
#include <stdlib.h>
#include <string.h>

#include "mpir.h"

#define MPIR_EXPORT __attribute__((visibility("default"))) __attribute__((used))

#define MPIR_NULL 0
#define MPIR_DEBUG_SPAWNED 1
#define MPIR_DEBUG_ABORTING 2

typedef struct {
    char *host_name;
    char *executable_name;
    int pid;
} MPIR_PROCDESC;

MPIR_EXPORT MPIR_PROCDESC *MPIR_proctable = NULL;
MPIR_EXPORT int MPIR_proctable_size = 0;
MPIR_EXPORT volatile int MPIR_debug_state = MPIR_NULL;
MPIR_EXPORT volatile int MPIR_being_debugged = 0;
MPIR_EXPORT char *MPIR_debug_abort_string = NULL;
/* this process started the job (it is not an MPI process itself) */
MPIR_EXPORT int MPIR_i_am_starter = 1;
/* the debugger need not attach to every task (the rest get SIGCONT) */
MPIR_EXPORT int MPIR_partial_attach_ok = 1;
/* tasks were stopped before main (in exec), the debugger may run them to main */
MPIR_EXPORT int MPIR_acquired_pre_main = 1;
MPIR_EXPORT int MPIR_force_to_main = 1;
/* TotalView shows the job's id */
MPIR_EXPORT char *totalview_jobid = NULL;

MPIR_EXPORT __attribute__((noinline)) void MPIR_Breakpoint(void)
{
    __asm__ __volatile__("" ::: "memory");
}

void mpir_proctable_free(void)
{
    if (MPIR_proctable) {
        for (int i = 0; i < MPIR_proctable_size; i++) {
            free(MPIR_proctable[i].host_name);
            free(MPIR_proctable[i].executable_name);
        }
        free(MPIR_proctable);
    }
    MPIR_proctable = NULL;
    MPIR_proctable_size = 0;
}

int mpir_proctable_alloc(int size)
{
    mpir_proctable_free();
    if (size <= 0)
        return size == 0 ? 0 : -1;
    MPIR_proctable = calloc((size_t)size, sizeof(MPIR_PROCDESC));
    if (!MPIR_proctable)
        return -1;
    MPIR_proctable_size = size;
    return 0;
}

int mpir_proctable_set(int index, const char *host, const char *executable, int pid)
{
    if (index < 0 || index >= MPIR_proctable_size)
        return -1;
    MPIR_PROCDESC *p = &MPIR_proctable[index];
    char *h = strdup(host ? host : "");
    char *e = strdup(executable ? executable : "");
    if (!h || !e) {
        free(h);
        free(e);
        return -1;
    }
    free(p->host_name);
    free(p->executable_name);
    p->host_name = h;
    p->executable_name = e;
    p->pid = pid;
    return 0;
}

int mpir_proctable_size(void)
{
    return MPIR_proctable_size;
}

int mpir_proctable_pid(int index)
{
    if (index < 0 || index >= MPIR_proctable_size)
        return -1;
    return MPIR_proctable[index].pid;
}

void mpir_set_being_debugged(int value)
{
    MPIR_being_debugged = value;
}

int mpir_get_being_debugged(void)
{
    return MPIR_being_debugged;
}

void mpir_set_debug_state(int state)
{
    MPIR_debug_state = state;
}

int mpir_get_debug_state(void)
{
    return MPIR_debug_state;
}

int mpir_set_totalview_jobid(const char *jobid)
{
    char *copy = strdup(jobid ? jobid : "");
    if (!copy)
        return -1;
    free(totalview_jobid);
    totalview_jobid = copy;
    return 0;
}
