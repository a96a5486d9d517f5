/*
 * buffer.c — persistor_buffer growth.  Sizes are uint32_t because they
 * cross the ABI; growth refuses to wrap instead of overflowing.
 */
#include "buffer.h"

#include <stdlib.h>
#include <string.h>

int32_t buffer_reserve(persistor_buffer *buf, uint32_t extra)
{
    if (extra > UINT32_MAX - buf->len)
        return PERSISTOR_E_NOMEM;
    uint32_t need = buf->len + extra;
    if (need <= buf->capacity)
        return PERSISTOR_OK;
    uint64_t cap = buf->capacity ? buf->capacity : 64;
    while (cap < need)
        cap *= 2;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    uint8_t *grown = realloc(buf->data, (size_t)cap);
    if (grown == NULL)
        return PERSISTOR_E_NOMEM;
    buf->data = grown;
    buf->capacity = (uint32_t)cap;
    return PERSISTOR_OK;
}

int32_t buffer_append(persistor_buffer *buf, const void *data, uint32_t len)
{
    if (len == 0)
        return PERSISTOR_OK;
    int32_t rc = buffer_reserve(buf, len);
    if (rc != PERSISTOR_OK)
        return rc;
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    return PERSISTOR_OK;
}

int32_t buffer_set(persistor_buffer *buf, const void *data, uint32_t len)
{
    buf->len = 0;
    return buffer_append(buf, data, len);
}

void buffer_reset(persistor_buffer *buf)
{
    buf->len = 0;
}

void buffer_free(persistor_buffer *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->capacity = 0;
}
