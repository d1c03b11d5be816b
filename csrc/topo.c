/* hwloc through cffi: the few facts flux_launch needs from a topology.
 * Each function has a Python twin (flux_launch/resource/_sysfs.py reads /sys,
 * without GPUs). */
#include <stdio.h>
#include <string.h>
#include <hwloc.h>
#include "topo.h"

void *flx_topo_load (const char *xmlpath, char *err, int errlen)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init (&topo) < 0) {
        snprintf (err, errlen, "hwloc_topology_init failed");
        return NULL;
    }
    hwloc_topology_set_io_types_filter (topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (xmlpath && hwloc_topology_set_xml (topo, xmlpath) < 0) {
        snprintf (err, errlen, "cannot read hwloc XML: %s", strerror (errno));
        hwloc_topology_destroy (topo);
        return NULL;
    }
    if (hwloc_topology_load (topo) < 0) {
        snprintf (err, errlen, "cannot load the topology: %s", strerror (errno));
        hwloc_topology_destroy (topo);
        return NULL;
    }
    return topo;
}

void flx_topo_destroy (void *t)
{
    hwloc_topology_destroy ((hwloc_topology_t)t);
}

static int count (void *t, hwloc_obj_type_t type)
{
    int n = hwloc_get_nbobjs_by_type ((hwloc_topology_t)t, type);
    return n < 0 ? 0 : n;
}

int flx_topo_ncores (void *t) { return count (t, HWLOC_OBJ_CORE); }
int flx_topo_npus (void *t) { return count (t, HWLOC_OBJ_PU); }
int flx_topo_nnuma (void *t) { return count (t, HWLOC_OBJ_NUMANODE); }

int flx_topo_core_pus (void *t, int core, int *pus, int max)
{
    hwloc_obj_t obj = hwloc_get_obj_by_type ((hwloc_topology_t)t, HWLOC_OBJ_CORE, (unsigned)core);
    int n = 0, i;
    if (!obj || !obj->cpuset)
        return -1;
    hwloc_bitmap_foreach_begin (i, obj->cpuset)
        if (n < max)
            pus[n] = i;
        n++;
    hwloc_bitmap_foreach_end ();
    return n;
}

int flx_topo_nosdev (void *t)
{
    int n = 0;
    hwloc_obj_t obj = NULL;
    while ((obj = hwloc_get_next_osdev ((hwloc_topology_t)t, obj)))
        n++;
    return n;
}

int flx_topo_osdev (void *t, int index, char *name, int namelen, char *busid, int buslen,
                    unsigned *vendor, int *kind)
{
    hwloc_obj_t obj = NULL, p;
    int i = 0;
    while ((obj = hwloc_get_next_osdev ((hwloc_topology_t)t, obj)) && i < index)
        i++;
    if (!obj)
        return -1;
    snprintf (name, namelen, "%s", obj->name ? obj->name : "");
    *kind = (int)obj->attr->osdev.type;
    busid[0] = '\0';
    *vendor = 0;
    for (p = obj->parent; p; p = p->parent)
        if (p->type == HWLOC_OBJ_PCI_DEVICE) {
            snprintf (busid, buslen, "%04x:%02x:%02x.%01x", p->attr->pcidev.domain, p->attr->pcidev.bus,
                      p->attr->pcidev.dev, p->attr->pcidev.func);
            *vendor = p->attr->pcidev.vendor_id;
            break;
        }
    return 0;
}

int flx_topo_kind_gpu (void) { return HWLOC_OBJ_OSDEV_GPU; }
int flx_topo_kind_coproc (void) { return HWLOC_OBJ_OSDEV_COPROC; }
