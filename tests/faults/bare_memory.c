/*
 * bare_memory.c — the memory adapter with none of its OPTIONAL slots, as an
 * inner for the fault adapter's tests: count, stats, exists, expire and
 * describe then go the fault adapter's own way (the host's way for absent
 * slots) through the inner's query, get and write.
 *
 * It compiles plugins/memory/memory.c in, renaming that file's entry point,
 * so it never drifts from the real memory adapter.  Test-only: built into
 * lib/persistor-test/ beside fault.so.
 */
#define persistor_adapter_entry bare_memory_full_entry
#include "../../plugins/memory/memory.c"
#undef persistor_adapter_entry

static const persistor_adapter bare_adapter = {
    .abi_major = PERSISTOR_ABI_MAJOR,
    .abi_minor = PERSISTOR_ABI_MINOR,
    .struct_size = sizeof(persistor_adapter),
    .capabilities = 0,
    .name = "bare_memory",
    .version = "1.0.0",
    .description = "TESTS ONLY: the memory adapter without its optional slots",
    .options = mem_options,
    .n_options = sizeof mem_options / sizeof mem_options[0],
    .open = mem_open,
    .close = mem_close,
    .ping = mem_ping,
    .ensure_collection = mem_ensure_collection,
    .write = mem_write,
    .get = mem_get,
    .query = mem_query,
    .cursor_next = mem_cursor_next,
    .cursor_close = mem_cursor_close,
};

PERSISTOR_ADAPTER_EXPORT const persistor_adapter *persistor_adapter_entry(const persistor_host *host)
{
    return bare_memory_full_entry(host) != NULL ? &bare_adapter : NULL;
}
