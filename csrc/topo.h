#ifndef FLUX_LAUNCH_TOPO_H
#define FLUX_LAUNCH_TOPO_H
void *flx_topo_load (const char *xmlpath, char *err, int errlen);
void flx_topo_destroy (void *t);
int flx_topo_ncores (void *t);
int flx_topo_npus (void *t);
int flx_topo_nnuma (void *t);
int flx_topo_core_pus (void *t, int core, int *pus, int max);
int flx_topo_nosdev (void *t);
int flx_topo_osdev (void *t, int index, char *name, int namelen, char *busid, int buslen,
                    unsigned *vendor, int *kind);
int flx_topo_kind_gpu (void);
int flx_topo_kind_coproc (void);
#endif
