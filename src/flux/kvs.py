"""``flux.kvs``: the KVS from a client under flux-core's name (``flux_launch.client.kvs``)."""

from flux_launch.client.kvs import (KVSDir, KVSTxn, commit, commit_async, dropcache, exists, get, get_dir,
                                    get_key_direct, isdir, join, namespace_create, namespace_list, namespace_remove,
                                    put, put_mkdir, put_symlink, put_unlink, walk)

__all__ = ["get", "get_key_direct", "put", "put_mkdir", "put_unlink", "put_symlink", "commit", "commit_async",
           "exists", "isdir", "get_dir", "dropcache", "namespace_create", "namespace_remove", "namespace_list",
           "KVSTxn", "KVSDir", "walk", "join"]
