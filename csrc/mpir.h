/* The MPIR process acquisition interface of a starter process (flux job attach
 * --debug), as parallel debuggers read it: the MPIR_* symbols are defined in
 * mpir.c as exported globals; these functions fill them (cffi declarations). */
#ifndef FLUX_LAUNCH_MPIR_H
#define FLUX_LAUNCH_MPIR_H

int mpir_proctable_alloc(int size);
int mpir_proctable_set(int index, const char *host, const char *executable, int pid);
void mpir_proctable_free(void);
int mpir_proctable_size(void);
int mpir_proctable_pid(int index);
void mpir_set_being_debugged(int value);
int mpir_get_being_debugged(void);
void mpir_set_debug_state(int state);
int mpir_get_debug_state(void);
int mpir_set_totalview_jobid(const char *jobid);
void MPIR_Breakpoint(void);

#endif
