/*
 * fault_control.c — the control block of the fault adapter: one small file
 * mapped MAP_SHARED, read and written only with __atomic builtins (see the
 * layout in fault_control.h).
 *
 * Linked into fault.so (which obeys it) and into the fault tests (which
 * steer it).  It must stay free of locks and of anything persistor: two
 * processes, one of them perhaps killed half-way, share the file, so every
 * change is a single atomic store or compare-and-swap on one word.
 */
#include "fault_control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The file, exactly: see the layout in fault_control.h. */
typedef struct fault_block {
    uint64_t magic;
    uint64_t fault;
    uint64_t delay;
    uint64_t calls[4]; /* by kind: the bit number of FAULT_OP_* */
    uint64_t injected;
} fault_block;

_Static_assert(sizeof(fault_block) == 64, "the control file layout is 64 bytes");

#define FAULT_COUNT_MASK 0xffffffffull
#define FAULT_CODE_SHIFT 32
#define FAULT_OPS_SHIFT 48
#define FAULT_APPLIED_SHIFT 56
#define FAULT_DELAY_OPS_SHIFT 32

struct fault_control {
    fault_block *block;
};

/* A new file is zero-filled (healthy); the magic goes in with one
 * compare-and-swap, so a racing creator sees either nothing or all of it. */
fault_control *fault_control_open(const char *path)
{
    fault_control *c = malloc(sizeof *c);
    int fd = c != NULL ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
    if (fd < 0)
        goto fail;
    struct stat st;
    /* Growing a file another process has just grown to the same size
     * changes nothing, so the race between two creators is harmless. */
    if (fstat(fd, &st) != 0 || (st.st_size == 0 && ftruncate(fd, sizeof(fault_block)) != 0) ||
        fstat(fd, &st) != 0)
        goto fail;
    if (st.st_size != (off_t)sizeof(fault_block)) {
        errno = EINVAL;
        goto fail;
    }
    void *map = mmap(NULL, sizeof(fault_block), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        goto fail;
    close(fd);
    c->block = map;
    uint64_t expected = 0;
    __atomic_compare_exchange_n(&c->block->magic, &expected, FAULT_CONTROL_MAGIC, false,
                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&c->block->magic, __ATOMIC_SEQ_CST) != FAULT_CONTROL_MAGIC) {
        munmap(map, sizeof(fault_block));
        free(c);
        errno = EINVAL;
        return NULL;
    }
    return c;
fail:;
    int saved = c != NULL ? errno : ENOMEM;
    if (fd >= 0)
        close(fd);
    free(c);
    errno = saved;
    return NULL;
}

void fault_control_close(fault_control *c)
{
    if (c == NULL)
        return;
    munmap(c->block, sizeof(fault_block));
    free(c);
}

void fault_inject(fault_control *c, uint32_t ops, int32_t code, int32_t count, int applied)
{
    if ((ops & ~FAULT_OP_ALL) != 0 || code >= 0 || code < INT16_MIN) {
        fprintf(stderr, "fault_inject: ops 0x%x and code %d: want FAULT_OP_* bits and a "
                        "PERSISTOR_E_* error (< 0)\n", (unsigned)ops, (int)code);
        abort();
    }
    uint64_t word = 0;
    if (ops != 0 && count != 0)
        word = (uint64_t)(uint32_t)count |
               (uint64_t)(uint16_t)(int16_t)code << FAULT_CODE_SHIFT |
               (uint64_t)ops << FAULT_OPS_SHIFT | (uint64_t)(applied != 0) << FAULT_APPLIED_SHIFT;
    __atomic_store_n(&c->block->fault, word, __ATOMIC_SEQ_CST);
}

void fault_set_delay(fault_control *c, uint32_t ops, uint32_t delay_ms)
{
    uint64_t word = delay_ms != 0 ? (uint64_t)(ops & FAULT_OP_ALL) << FAULT_DELAY_OPS_SHIFT |
                                        delay_ms
                                  : 0;
    __atomic_store_n(&c->block->delay, word, __ATOMIC_SEQ_CST);
}

void fault_clear(fault_control *c)
{
    __atomic_store_n(&c->block->fault, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&c->block->delay, 0, __ATOMIC_SEQ_CST);
}

uint64_t fault_calls(const fault_control *c, uint32_t ops)
{
    uint64_t sum = 0;
    for (unsigned kind = 0; kind < 4; kind++)
        if (ops & (1u << kind))
            sum += __atomic_load_n(&c->block->calls[kind], __ATOMIC_SEQ_CST);
    return sum;
}

uint64_t fault_injected(const fault_control *c)
{
    return __atomic_load_n(&c->block->injected, __ATOMIC_SEQ_CST);
}

static void fault_sleep_ms(uint32_t ms)
{
    struct timespec left = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        continue;
}

int32_t fault_control_hit(fault_control *c, uint32_t op, int *applied)
{
    fault_block *b = c->block;
    __atomic_add_fetch(&b->calls[__builtin_ctz(op)], 1, __ATOMIC_SEQ_CST);

    uint64_t delay = __atomic_load_n(&b->delay, __ATOMIC_SEQ_CST);
    if ((delay >> FAULT_DELAY_OPS_SHIFT) & op)
        fault_sleep_ms((uint32_t)(delay & FAULT_COUNT_MASK));

    /* Take one call off the count; a forever fault (count < 0) stays. */
    uint64_t word = __atomic_load_n(&b->fault, __ATOMIC_SEQ_CST);
    for (;;) {
        int32_t left = (int32_t)(uint32_t)(word & FAULT_COUNT_MASK);
        if (left == 0 || ((word >> FAULT_OPS_SHIFT) & op) == 0)
            return 0;
        if (left < 0)
            break;
        uint64_t next = (word & ~FAULT_COUNT_MASK) | (uint32_t)(left - 1);
        if (__atomic_compare_exchange_n(&b->fault, &word, next, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            break;
    }
    __atomic_add_fetch(&b->injected, 1, __ATOMIC_SEQ_CST);
    *applied = (int)((word >> FAULT_APPLIED_SHIFT) & 1);
    return (int32_t)(int16_t)(uint16_t)(word >> FAULT_CODE_SHIFT);
}
