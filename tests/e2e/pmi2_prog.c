/* Exercises libpmi2.so (the PMI-2 API) through the job shell: put, fence, get of
 * every rank's key (values with ';' in them), a missing key, the job attributes,
 * and a node attribute the first task of each node puts while the others wait
 * for it. Prints one line per rank; exit 1 on any error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmi2.h"

#define CHECK(x) do { int rc_ = (x); if (rc_ != PMI2_SUCCESS) { \
    fprintf (stderr, "%s failed: %d\n", #x, rc_); return 1; } } while (0)

int main (void)
{
    int spawned, size, rank, appnum, found, len;
    char jobid[256], key[64], val[1024], want[1024], map[1024], usize[32], leader[64];
    const char *local = getenv ("FLUX_TASK_LOCAL_ID");

    CHECK (PMI2_Init (&spawned, &size, &rank, &appnum));
    CHECK (PMI2_Job_GetId (jobid, sizeof (jobid)));
    snprintf (key, sizeof (key), "key-%d", rank);
    snprintf (val, sizeof (val), "value;of rank %d;", rank);
    CHECK (PMI2_KVS_Put (key, val));
    CHECK (PMI2_KVS_Fence ());
    for (int r = 0; r < size; r++) {
        snprintf (key, sizeof (key), "key-%d", r);
        snprintf (want, sizeof (want), "value;of rank %d;", r);
        CHECK (PMI2_KVS_Get (r % 2 ? jobid : NULL, r, key, val, sizeof (val), &len));
        if (strcmp (val, want) != 0 || len != (int)strlen (want)) {
            fprintf (stderr, "rank %d: got '%s' (%d) for %s\n", rank, val, len, key);
            return 1;
        }
    }
    if (PMI2_KVS_Get (jobid, PMI2_ID_NULL, "no-such-key", val, sizeof (val), &len) == PMI2_SUCCESS) {
        fprintf (stderr, "a missing key was found\n");
        return 1;
    }
    CHECK (PMI2_Info_GetJobAttr ("PMI_process_mapping", map, sizeof (map), &found));
    if (!found)
        return fprintf (stderr, "no PMI_process_mapping\n"), 1;
    CHECK (PMI2_Info_GetJobAttr ("universeSize", usize, sizeof (usize), &found));
    if (!found)
        return fprintf (stderr, "no universeSize\n"), 1;
    if (local && !strcmp (local, "0")) {
        snprintf (val, sizeof (val), "rank %d", rank);
        CHECK (PMI2_Info_PutNodeAttr ("leader", val));
    }
    CHECK (PMI2_Info_GetNodeAttr ("leader", leader, sizeof (leader), &found, 1));
    printf ("rank %d of %d: %d keys ok, map %s, universe %s, node leader %s\n",
            rank, size, size, map, usize, leader);
    CHECK (PMI2_Finalize ());
    return 0;
}
