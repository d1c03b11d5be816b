/* Exercises libpmi.so (the PMI-1 API) through the job shell: put, barrier, get
 * of every rank's key, clique. Prints one line per rank; exit 1 on any error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int PMI_Init (int *spawned);
int PMI_Get_rank (int *rank);
int PMI_Get_size (int *size);
int PMI_KVS_Get_my_name (char kvsname[], int length);
int PMI_KVS_Put (const char kvsname[], const char key[], const char value[]);
int PMI_KVS_Commit (const char kvsname[]);
int PMI_KVS_Get (const char kvsname[], const char key[], char value[], int length);
int PMI_Barrier (void);
int PMI_Get_clique_size (int *size);
int PMI_Finalize (void);

#define CHECK(x) do { if ((x) != 0) { fprintf (stderr, "%s failed\n", #x); return 1; } } while (0)

int main (void)
{
    int spawned, rank, size, clique;
    char kvs[256], key[64], val[1024], want[1024];
    CHECK (PMI_Init (&spawned));
    CHECK (PMI_Get_rank (&rank));
    CHECK (PMI_Get_size (&size));
    CHECK (PMI_KVS_Get_my_name (kvs, sizeof (kvs)));
    snprintf (key, sizeof (key), "key-%d", rank);
    snprintf (val, sizeof (val), "value of rank %d with spaces", rank);
    CHECK (PMI_KVS_Put (kvs, key, val));
    CHECK (PMI_KVS_Commit (kvs));
    CHECK (PMI_Barrier ());
    for (int r = 0; r < size; r++) {
        snprintf (key, sizeof (key), "key-%d", r);
        snprintf (want, sizeof (want), "value of rank %d with spaces", r);
        CHECK (PMI_KVS_Get (kvs, key, val, sizeof (val)));
        if (strcmp (val, want) != 0) {
            fprintf (stderr, "rank %d: got '%s' for %s\n", rank, val, key);
            return 1;
        }
    }
    if (PMI_KVS_Get (kvs, "no-such-key", val, sizeof (val)) == 0) {
        fprintf (stderr, "a missing key was found\n");
        return 1;
    }
    CHECK (PMI_Get_clique_size (&clique));
    printf ("rank %d of %d: %d keys ok, clique %d\n", rank, size, size, clique);
    CHECK (PMI_Finalize ());
    return 0;
}
